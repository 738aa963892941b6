//! `org.osbuild.noop`: does nothing; logs its options and inputs (useful for tests and to
//! pull inputs into a pipeline).

use super::{Stage, StageArgs, StageResult};

/// Anything at all is accepted.
pub type Options = serde_json::Value;

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct Noop;

impl Stage for Noop {
    const NAME: &'static str = "org.osbuild.noop";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        println!("Not doing anything with these options: {options}");
        for (name, desc) in &args.inputs {
            println!("Not doing anything with Input '{name}' {desc}");
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn accepts_anything_and_changes_nothing() {
        let t = tempfile::tempdir().unwrap();
        let a = args(t.path(), json!({"anything": [1, 2, {"x": null}]}));
        assert!(Noop::execute(&a).unwrap().is_none());
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
    }
}
