//! `org.osbuild.noop`: does nothing; logs its options and inputs (useful for tests and to
//! pull inputs into a pipeline).

use super::{StageArgs, StageResult};

/// Anything at all is accepted.
pub type Options = serde_json::Value;

pub fn run(args: &StageArgs) -> StageResult {
    let options = if args.options.is_null() { serde_json::json!({}) } else { args.options.clone() };
    println!("Not doing anything with these options: {options}");
    for (name, desc) in &args.inputs {
        println!("Not doing anything with Input '{name}' {desc}");
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::testutil::args;
    use serde_json::json;

    #[test]
    fn accepts_anything_and_changes_nothing() {
        let t = tempfile::tempdir().unwrap();
        let a = args(t.path(), json!({"anything": [1, 2, {"x": null}]}));
        assert!(run(&a).unwrap().is_none());
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
    }
}
