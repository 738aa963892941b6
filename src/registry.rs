//! The tables of built-in modules the engine looks up by their upstream name (inputs, devices,
//! mounts): one entry per module, holding the function that runs it with typed options.

/// One module: its upstream name (e.g. `org.osbuild.loopback`) and what runs it.
pub struct Entry<F: 'static> {
    pub name: &'static str,
    pub run: F,
}

/// Every module of one kind.
pub struct Registry<F: 'static>(pub &'static [Entry<F>]);

impl<F> Registry<F> {
    pub fn find(&self, kind: &str) -> Option<&'static F> {
        self.0.iter().find(|e| e.name == kind).map(|e| &e.run)
    }

    pub fn is_supported(&self, kind: &str) -> bool {
        self.find(kind).is_some()
    }
}
