//! Text identical to Python's `json.dumps(value, sort_keys=True)`.
//!
//! Upstream osbuild hashes that text to derive every stage, input, device and mount id,
//! so any difference here (a separator, an escape, a float's digits) changes ids and
//! breaks cache sharing with upstream. Numbers arrive with `arbitrary_precision`, so we
//! see the manifest's original digits and can keep big integers exact like Python does.

use serde_json::{Number, Value};
use sha2::{Digest, Sha256};

/// Serialise `value` the way Python's `json.dumps(value, sort_keys=True)` does.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, true);
    out
}

/// Python's `json.dumps(value)` without `sort_keys`: keys in insertion order (what
/// upstream's monitor writes), otherwise the same text.
pub fn to_string_unsorted(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, false);
    out
}

/// Incremental sha256 over several canonical JSON documents, as upstream's `calc_id`s do.
#[derive(Default)]
pub struct IdHasher(Sha256);

impl IdHasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, value: &Value) -> &mut Self {
        self.0.update(to_string(value).as_bytes());
        self
    }

    pub fn update_object(&mut self, map: &serde_json::Map<String, Value>) -> &mut Self {
        let mut out = String::new();
        write_object(&mut out, map, true);
        self.0.update(out.as_bytes());
        self
    }

    pub fn update_str(&mut self, s: &str) -> &mut Self {
        self.update(&Value::String(s.to_owned()))
    }

    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

fn write_value(out: &mut String, value: &Value, sort: bool) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item, sort);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map, sort),
    }
}

fn write_object(out: &mut String, map: &serde_json::Map<String, Value>, sort: bool) {
    let mut keys: Vec<&String> = map.keys().collect();
    if sort {
        // Python compares str keys by code point; UTF-8 byte order is the same order.
        keys.sort();
    }
    out.push('{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_string(out, key);
        out.push_str(": ");
        write_value(out, &map[key], sort);
    }
    out.push('}');
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
            // ensure_ascii escapes everything outside ' '..='~', DEL included.
            ' '..='~' => out.push(c),
            _ => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{:04x}", unit));
                }
            }
        }
    }
    out.push('"');
}

fn write_number(out: &mut String, n: &Number) {
    let text = n.to_string();
    if !text.contains(['.', 'e', 'E']) {
        // A JSON integer: Python keeps it exact at any size; "-0" parses to int 0.
        let digits = text.strip_prefix('-').unwrap_or(&text);
        if digits.bytes().all(|b| b == b'0') {
            out.push('0');
        } else {
            out.push_str(&text);
        }
        return;
    }
    match text.parse::<f64>() {
        Ok(f) => out.push_str(&python_float_repr(f)),
        Err(_) => out.push_str(&text),
    }
}

/// Python's `repr(float)`: shortest round-trip digits, scientific notation when the
/// decimal exponent is below -4 or at least 16, exponent with sign and two digits.
pub fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    // Rust's `{:e}` already yields the shortest round-trip digits, e.g. "-1.2345e8".
    let sci = format!("{:e}", f);
    let (mantissa, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("exponent is an integer");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();

    let body = if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let esign = if exp < 0 { '-' } else { '+' };
        if rest.is_empty() {
            format!("{first}e{esign}{:02}", exp.abs())
        } else {
            format!("{first}.{rest}e{esign}{:02}", exp.abs())
        }
    } else if exp >= 0 {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            format!("{}{}.0", digits, "0".repeat(int_len - digits.len()))
        } else {
            format!("{}.{}", &digits[..int_len], &digits[int_len..])
        }
    } else {
        format!("0.{}{}", "0".repeat((-exp - 1) as usize), digits)
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(text: &str) -> String {
        to_string(&serde_json::from_str(text).unwrap())
    }

    #[test]
    fn separators_and_sorting() {
        assert_eq!(canon(r#"{"b": [1, {"d": 1, "c": 2}], "a": {}}"#), r#"{"a": {}, "b": [1, {"c": 2, "d": 1}]}"#);
        assert_eq!(canon("[]"), "[]");
        assert_eq!(canon("{}"), "{}");
    }

    #[test]
    fn escapes_like_ensure_ascii() {
        assert_eq!(to_string(&json!("é")), r#""\u00e9""#);
        assert_eq!(to_string(&json!("😀")), r#""\ud83d\ude00""#);
        assert_eq!(to_string(&json!("a\"b\\c\n\t\u{7f}\u{1}")), r#""a\"b\\c\n\t\u007f\u0001""#);
        assert_eq!(to_string(&json!("/")), r#""/""#);
    }

    #[test]
    fn numbers_like_python() {
        assert_eq!(canon("-0"), "0");
        assert_eq!(canon("123456789012345678901234567890"), "123456789012345678901234567890");
        assert_eq!(canon("1.0"), "1.0");
        assert_eq!(canon("1E16"), "1e+16");
        assert_eq!(canon("1e15"), "1000000000000000.0");
        assert_eq!(canon("1e-7"), "1e-07");
        assert_eq!(canon("0.0001"), "0.0001");
        assert_eq!(canon("-0.0"), "-0.0");
        assert_eq!(canon("123456789.123456789"), "123456789.12345679");
        assert_eq!(canon("1.5e300"), "1.5e+300");
    }

    #[test]
    fn id_hasher_concatenates_documents() {
        let mut h = IdHasher::new();
        h.update_str("a").update(&json!(null));
        let direct = hex::encode(Sha256::digest(b"\"a\"null"));
        assert_eq!(h.finish(), direct);
    }
}
