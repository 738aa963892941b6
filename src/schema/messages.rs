//! Error messages worded the way upstream osbuild prints them: Python's `jsonschema`
//! (Draft 4) with every value shown as Python's `repr()` would show it, so that
//! `--inspect` gives the same error list as upstream, message for message.

use jsonschema::error::{TypeKind, ValidationErrorKind as K};
use osbuild_stage_api::pyrepr::{repr, repr_str};
use serde_json::Value;

/// Python's message for one validation error. `schema` is the document the error came
/// from; some messages quote parts of it (types, regexes, `oneOf` branches).
pub fn python_message(err: &jsonschema::ValidationError, schema: &Value) -> String {
    let inst = err.instance();
    let r = repr(inst);
    let at = |suffix: &str| -> Option<&Value> {
        let p = err.schema_path().as_str();
        let parent = p.rsplit_once('/').map(|(a, _)| a).unwrap_or("");
        schema.pointer(&format!("{parent}{suffix}"))
    };
    match err.kind() {
        K::Type { kind } => {
            let names: Vec<String> = match at("/type") {
                Some(Value::String(s)) => vec![repr_str(s)],
                Some(Value::Array(a)) => a.iter().map(repr).collect(),
                _ => match kind {
                    TypeKind::Single(t) => vec![repr_str(&t.to_string())],
                    TypeKind::Multiple(ts) => ts.iter().map(|t| repr_str(&t.to_string())).collect(),
                },
            };
            format!("{r} is not of type {}", names.join(", "))
        }
        K::Required { property } => format!("{} is a required property", repr(property)),
        K::Enum { options } => format!("{r} is not one of {}", repr(options)),
        // the schema's own text: the validator was built from a rewritten copy
        K::Pattern { pattern } => {
            let text = match at("/pattern").and_then(Value::as_str) {
                Some(t) => t.to_owned(),
                None => pattern.replace("(?:\\n?$)", "$"),
            };
            format!("{r} does not match {}", repr_str(&text))
        }
        K::AdditionalProperties { unexpected } => additional_properties(unexpected, at("")),
        K::AdditionalItems { limit } => {
            let extra: Vec<String> =
                inst.as_array().map(|a| a.iter().skip(*limit).map(repr).collect()).unwrap_or_default();
            let verb = if extra.len() == 1 { "was" } else { "were" };
            format!("Additional items are not allowed ({} {verb} unexpected)", extra.join(", "))
        }
        K::AnyOf { .. } | K::OneOfNotValid { .. } => format!("{r} is not valid under any of the given schemas"),
        K::OneOfMultipleValid { .. } => {
            let branches: Vec<&Value> =
                at("/oneOf").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default();
            let valid: Vec<&Value> = branches.into_iter().filter(|b| branch_accepts(schema, b, inst)).collect();
            // Python lists the valid branches after the first one, then the first.
            let mut order: Vec<&Value> = valid.iter().skip(1).copied().collect();
            order.extend(valid.first().copied());
            format!("{r} is valid under each of {}", order.iter().map(|v| repr(v)).collect::<Vec<_>>().join(", "))
        }
        K::Not { schema } => format!("{r} should not be valid under {}", repr(schema)),
        K::MinItems { limit } | K::MinLength { limit } => {
            format!("{r} {}", if *limit == 1 { "should be non-empty" } else { "is too short" })
        }
        K::MaxItems { limit } | K::MaxLength { limit } => {
            format!("{r} {}", if *limit == 0 { "is expected to be empty" } else { "is too long" })
        }
        K::MinProperties { limit } => {
            format!("{r} {}", if *limit == 1 { "should be non-empty" } else { "does not have enough properties" })
        }
        K::MaxProperties { limit } => {
            format!("{r} {}", if *limit == 0 { "is expected to be empty" } else { "has too many properties" })
        }
        K::Minimum { limit } => format!("{r} is less than the minimum of {}", repr(limit)),
        K::Maximum { limit } => format!("{r} is greater than the maximum of {}", repr(limit)),
        K::ExclusiveMinimum { limit } => format!("{r} is less than or equal to the minimum of {}", repr(limit)),
        K::ExclusiveMaximum { limit } => format!("{r} is greater than or equal to the maximum of {}", repr(limit)),
        K::UniqueItems => format!("{r} has non-unique elements"),
        K::Constant { expected_value } => format!("{} was expected", repr(expected_value)),
        _ => err.to_string(),
    }
}

/// Python's message for keys that `additionalProperties: false` refuses; `schema` is the
/// object schema holding that keyword.
pub fn additional_properties(unexpected: &[String], schema: Option<&Value>) -> String {
    let mut extra: Vec<&String> = unexpected.iter().collect();
    extra.sort();
    let joined = extra.iter().map(|s| repr_str(s)).collect::<Vec<_>>().join(", ");
    match schema.and_then(|s| s.get("patternProperties")).and_then(Value::as_object) {
        Some(pp) => {
            let mut pats: Vec<&String> = pp.keys().collect();
            pats.sort();
            let pats = pats.iter().map(|s| repr_str(s)).collect::<Vec<_>>().join(", ");
            let verb = if extra.len() == 1 { "does" } else { "do" };
            format!("{joined} {verb} not match any of the regexes: {pats}")
        }
        None => {
            let verb = if extra.len() == 1 { "was" } else { "were" };
            format!("Additional properties are not allowed ({joined} {verb} unexpected)")
        }
    }
}

/// Whether one `oneOf` branch accepts `inst` (its `$ref`s resolve in the whole document).
fn branch_accepts(root: &Value, branch: &Value, inst: &Value) -> bool {
    let mut doc = branch.clone();
    if let (Some(o), Some(defs)) = (doc.as_object_mut(), root.get("definitions")) {
        o.entry("definitions").or_insert_with(|| defs.clone());
    }
    jsonschema::draft4::new(&super::python_patterns(&doc)).map(|v| v.is_valid(inst)).unwrap_or(false)
}
