//! JSON text as Python's `json.dumps(value)` writes it (keys in insertion order,
//! `", "` and `": "` separators, `ensure_ascii`), so records are plain ASCII lines.

use serde_json::{Map, Number, Value};

use crate::canonical_json::python_float_repr;

pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// The length `s` takes once escaped as a JSON string body (quotes excluded).
pub fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{08}' | '\u{0c}' => 2,
        ' '..='~' => 1,
        _ => 6 * c.len_utf16(),
    }
}

/// Upstream's `omitempty`: drop `null` and `""` members of objects, recursing into
/// objects only (arrays are kept as they are).
pub fn omitempty(map: &mut Map<String, Value>) {
    map.retain(|_, v| !(v.is_null() || v.as_str() == Some("")));
    for v in map.values_mut() {
        if let Value::Object(inner) = v {
            omitempty(inner);
        }
    }
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(out, key);
                out.push_str(": ");
                write_value(out, v);
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

fn write_number(out: &mut String, n: &Number) {
    let text = n.to_string();
    if !text.contains(['.', 'e', 'E']) {
        out.push_str(&text);
        return;
    }
    match text.parse::<f64>() {
        Ok(f) => out.push_str(&python_float_repr(f)),
        Err(_) => out.push_str(&text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_style() {
        let v = json!({"b": [1, 2.5, "é\n"], "a": {"x": null}});
        assert_eq!(to_string(&v), r#"{"b": [1, 2.5, "\u00e9\n"], "a": {"x": null}}"#);
        assert_eq!(to_string(&json!(1731589338.8252223f64)), "1731589338.8252223");
    }

    #[test]
    fn omitempty_recurses_into_objects_only() {
        let mut v = json!({"a": null, "b": "", "c": {"d": null, "e": 0}, "f": [null, ""], "g": {}});
        omitempty(v.as_object_mut().unwrap());
        assert_eq!(v, json!({"c": {"e": 0}, "f": [null, ""], "g": {}}));
    }

    #[test]
    fn escaped_lengths() {
        for s in ["a", "\"", "\n", "é", "😀", "\u{1}"] {
            let n: usize = s.chars().map(escaped_len).sum();
            assert_eq!(n + 2, to_string(&json!(s)).len(), "{s:?}");
        }
    }
}
