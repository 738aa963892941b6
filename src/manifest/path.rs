//! JSON paths into a manifest, shown the way users read them (`pipelines[1].stages[3].options`)
//! and serialised the way upstream's validation errors carry them (`["pipelines", 1, ...]`).

use serde_json::Value;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Seg {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct JsonPath(pub Vec<Seg>);

impl JsonPath {
    pub fn root() -> Self {
        Self(Vec::new())
    }

    pub fn key(&self, k: impl Into<String>) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.into()));
        Self(v)
    }

    pub fn index(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        Self(v)
    }

    pub fn join(&self, other: &JsonPath) -> Self {
        let mut v = self.0.clone();
        v.extend(other.0.iter().cloned());
        Self(v)
    }

    pub fn to_json(&self) -> Value {
        Value::Array(
            self.0
                .iter()
                .map(|s| match s {
                    Seg::Key(k) => Value::String(k.clone()),
                    Seg::Index(i) => Value::from(*i),
                })
                .collect(),
        )
    }

    /// Upstream's `ValidationError.id`: the key errors are sorted by.
    pub fn upstream_id(&self) -> String {
        if self.0.is_empty() {
            return ".".into();
        }
        let mut s = String::new();
        for seg in &self.0 {
            match seg {
                Seg::Key(k) if k.contains(' ') => s.push_str(&format!(".'{k}'")),
                Seg::Key(k) => {
                    s.push('.');
                    s.push_str(k);
                }
                Seg::Index(i) => s.push_str(&format!("[{i}]")),
            }
        }
        s
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("<manifest>");
        }
        for (n, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if n == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_a_user_reads_it() {
        let p = JsonPath::root().key("pipelines").index(2).key("stages").index(0).key("inputs").key("tree");
        assert_eq!(p.to_string(), "pipelines[2].stages[0].inputs.tree");
        assert_eq!(p.upstream_id(), ".pipelines[2].stages[0].inputs.tree");
        assert_eq!(p.to_json(), serde_json::json!(["pipelines", 2, "stages", 0, "inputs", "tree"]));
        assert_eq!(JsonPath::root().upstream_id(), ".");
    }
}
