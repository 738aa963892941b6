//! What upstream's NetworkManager stages get from Python's `configparser` (with
//! `optionxform` = identity and `space_around_delimiters=False`): sections and keys in
//! insertion order, a key set twice keeps its first position and its last value, output
//! `[section]` / `key=value` lines with a blank line after each section, newlines in values
//! continued with a tab. Python's value rules are here too: a list is joined with `,`, a
//! boolean is `true`/`false`, anything else is `str(value)`.

use serde_json::Value;

#[derive(Debug, Default)]
pub struct Ini {
    sections: Vec<(String, Vec<(String, String)>)>,
}

impl Ini {
    /// Add `name` unless it exists (configparser's `has_section` / `add_section`).
    pub fn ensure_section(&mut self, name: &str) -> Result<(), String> {
        if name == "DEFAULT" {
            return Err("invalid section name: 'DEFAULT'".into());
        }
        if !self.sections.iter().any(|(n, _)| n == name) {
            self.sections.push((name.to_owned(), Vec::new()));
        }
        Ok(())
    }

    /// Set `key` in an existing `section`. Like configparser's basic interpolation, a `%`
    /// that is not part of `%%` or of a `%(name)s` reference is an error.
    pub fn set(&mut self, section: &str, key: &str, value: String) -> Result<(), String> {
        static REFERENCE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        let reference = REFERENCE.get_or_init(|| regex::Regex::new(r"%\(([^)]+)\)s").expect("valid regex"));
        if let Some(pos) = reference.replace_all(&value.replace("%%", ""), "").find('%') {
            return Err(format!("invalid interpolation syntax in {value:?} at position {pos}"));
        }
        let (_, items) =
            self.sections.iter_mut().find(|(n, _)| n == section).ok_or_else(|| format!("no section: {section:?}"))?;
        match items.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => items.push((key.to_owned(), value)),
        }
        Ok(())
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, items) in &self.sections {
            out.push_str(&format!("[{name}]\n"));
            for (k, v) in items {
                out.push_str(&format!("{k}={}\n", v.replace('\n', "\n\t")));
            }
            out.push('\n');
        }
        out
    }
}

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

/// Python's `repr(float)`: shortest round-trip digits, scientific below 1e-4 and from 1e16.
pub fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let sci = format!("{:e}", f.abs()); // e.g. "1.5e-7", shortest digits
    let (mantissa, exp) = sci.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let body = if exp < 0 {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        } else {
            let point = exp as usize + 1;
            if digits.len() <= point {
                format!("{digits}{}.0", "0".repeat(point - digits.len()))
            } else {
                format!("{}.{}", &digits[..point], &digits[point..])
            }
        };
        format!("{sign}{body}")
    } else {
        let m = if digits.len() > 1 { format!("{}.{}", &digits[..1], &digits[1..]) } else { digits };
        format!("{sign}{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    }
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

    #[test]
    fn renders_like_configparser() {
        let mut ini = Ini::default();
        ini.ensure_section("main").unwrap();
        ini.set("main", "a", "1".into()).unwrap();
        ini.set("main", "B", "x\ny".into()).unwrap();
        ini.set("main", "a", "2".into()).unwrap();
        ini.ensure_section("other").unwrap();
        ini.ensure_section("main").unwrap();
        ini.set("main", "p", "100%%".into()).unwrap();
        assert_eq!(ini.render(), "[main]\na=2\nB=x\n\ty\np=100%%\n\n[other]\n\n");
        assert!(ini.set("main", "p", "100%".into()).unwrap_err().starts_with("invalid interpolation syntax"));
        ini.set("main", "r", "%(home)s/x".into()).unwrap();
        assert!(ini.set("main", "r", "%(home)/x".into()).is_err());
        assert!(ini.ensure_section("DEFAULT").is_err());
    }
}
