//! Python's `str()` of JSON values, as upstream's stages format option values into files.

use serde_json::Value;

/// Upstream's `make_value`: a list of strings joined with `,`, `true`/`false`, or `str()`.
pub fn py_value(value: &Value) -> Result<String, String> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned).ok_or_else(|| format!("list items must be strings, not {i}")))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join(",")),
        Value::Bool(b) => Ok(if *b { "true" } else { "false" }.to_owned()),
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(py_number(n)),
        Value::Null => Ok("None".to_owned()),
        Value::Object(_) => Err(format!("unsupported value {value}: an object")),
    }
}

/// Python's `str()` of a JSON number: integers as they are, floats in `repr` form.
pub fn py_number(n: &serde_json::Number) -> String {
    let text = n.to_string();
    if !text.contains(['.', 'e', 'E']) {
        return text.parse::<i128>().map(|i| i.to_string()).unwrap_or(text);
    }
    py_float(text.parse::<f64>().unwrap_or(f64::NAN))
}

/// Python's `repr(float)` (`nan`, `inf` for the non-finite ones).
pub fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    crate::canonical_json::python_float_repr(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_like_python() {
        for (f, s) in [
            (0.3, "0.3"),
            (1.0, "1.0"),
            (100.0, "100.0"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1234567890123456.7, "1234567890123456.8"),
            (-2.5, "-2.5"),
            (1.25e100, "1.25e+100"),
        ] {
            assert_eq!(py_float(f), s, "{f}");
        }
    }

    #[test]
    fn values_like_python() {
        assert_eq!(py_value(&json!(["a", "b"])).unwrap(), "a,b");
        assert_eq!(py_value(&json!(false)).unwrap(), "false");
        assert_eq!(py_value(&json!(0)).unwrap(), "0");
        assert_eq!(py_value(&serde_json::from_str::<Value>("2.50").unwrap()).unwrap(), "2.5");
        assert!(py_value(&json!([1])).is_err());
    }
}
