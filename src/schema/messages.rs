//! Error messages worded the way upstream osbuild prints them: Python's `jsonschema`
//! (Draft 4) with every value shown as Python's `repr()` would show it, so that
//! `--inspect` gives the same error list as upstream, message for message.

use jsonschema::error::{TypeKind, ValidationErrorKind as K};
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

/// Python's `repr()` of a value as `json.load` gives it.
pub fn repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => repr_number(&n.to_string()),
        Value::String(s) => repr_str(s),
        Value::Array(a) => format!("[{}]", a.iter().map(repr).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => {
            format!(
                "{{{}}}",
                o.iter().map(|(k, v)| format!("{}: {}", repr_str(k), repr(v))).collect::<Vec<_>>().join(", ")
            )
        }
    }
}

/// JSON integers stay integers (of any size); everything else is a float.
fn repr_number(text: &str) -> String {
    if !text.contains(['.', 'e', 'E']) {
        return text.trim_start_matches('+').to_owned();
    }
    match text.parse::<f64>() {
        Ok(f) => repr_float(f),
        Err(_) => text.to_owned(),
    }
}

/// `repr(float)`: the shortest round-tripping digits, in exponent form below 1e-4 and
/// from 1e16 on.
fn repr_float(f: f64) -> String {
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f.is_nan() {
        return "nan".into();
    }
    let sci = format!("{f:e}"); // e.g. "-1.5e-7", "1e16"
    let (mant, exp) = sci.split_once('e').unwrap();
    let exp: i32 = exp.parse().unwrap();
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let sign = if neg { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        let point = exp + 1; // digits before the decimal point
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point >= n {
            format!("{}{}.0", digits, "0".repeat((point - n) as usize))
        } else {
            format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
        };
        format!("{sign}{body}")
    } else {
        let m = if digits.len() > 1 { format!("{}.{}", &digits[..1], &digits[1..]) } else { digits };
        format!("{sign}{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

/// `repr(str)`: single quotes unless the text has a single quote and no double quote.
pub fn repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !printable(c) => {
                let n = c as u32;
                if n < 0x100 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n < 0x10000 {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// An approximation of Python's `str.isprintable()` for one character: control and
/// format characters, separators other than the space and unassigned surrogates are not.
fn printable(c: char) -> bool {
    let n = c as u32;
    !(n < 0x20
        || (0x7f..=0xa0).contains(&n)
        || n == 0xad
        || (0x2000..=0x200f).contains(&n)
        || (0x2028..=0x202f).contains(&n)
        || (0x205f..=0x206f).contains(&n)
        || n == 0x1680
        || n == 0x3000
        || n == 0xfeff
        || (0xfff9..=0xfffb).contains(&n)
        || (0xe000..=0xf8ff).contains(&n)
        || n >= 0xf0000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reprs_like_python() {
        assert_eq!(
            repr(&json!({"a": [1, 1.5, true, null], "b'": "it's"})),
            r#"{'a': [1, 1.5, True, None], "b'": "it's"}"#
        );
        assert_eq!(repr(&json!("a'\"b\\")), r#"'a\'"b\\'"#);
        for (text, want) in [
            ("1.0", "1.0"),
            ("1e16", "1e+16"),
            ("1.5e-7", "1.5e-07"),
            ("0.0001", "0.0001"),
            ("123456789012345.6", "123456789012345.6"),
            ("-2.50", "-2.5"),
            ("12345678901234567890", "12345678901234567890"),
        ] {
            assert_eq!(repr_number(text), want, "{text}");
        }
    }
}
