//! JSON text as Python's `json.dumps(value)` writes it (keys in insertion order,
//! `", "` and `": "` separators, `ensure_ascii`), so records are plain ASCII lines.

use serde_json::{Map, Value};

pub fn to_string(value: &Value) -> String {
    crate::canonical_json::to_string_unsorted(value)
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
