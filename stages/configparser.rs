//! Unit and drop-in files (`configparser`-style writing; `ini` is the round-trip editor) in the format upstream's stages write them with Python's
//! `configparser` (`space_around_delimiters=False`): `[Section]`, one `key=value` per line,
//! a blank line after every section, continuation lines of multi-line values indented with
//! a tab. Upstream writes repeated keys (e.g. several `ExecStart=`) as *value-less keys*
//! named `ExecStart=<value>`; like a dict, setting a key again replaces its value in place,
//! so an exact repeat is written once.

use super::StageError;
use serde_json::Value;

/// One section: its name and its keys with their values (`None`: a bare key).
type Section = (String, Vec<(String, Option<String>)>);

#[derive(Debug, Default)]
pub struct Ini {
    sections: Vec<Section>,
}

impl Ini {
    /// Add `name` unless it exists (`configparser` refuses a section called `DEFAULT`).
    pub fn add_section(&mut self, name: &str) -> Result<(), StageError> {
        if name == "DEFAULT" {
            return Err(StageError::Invalid(format!("invalid section name: {name:?}")));
        }
        if !self.sections.iter().any(|(n, _)| n == name) {
            self.sections.push((name.to_owned(), Vec::new()));
        }
        Ok(())
    }

    /// Set `key` in `section` (which must have been added); `None` writes the bare key.
    pub fn set(&mut self, section: &str, key: String, value: Option<String>) {
        let entries = &mut self.sections.iter_mut().find(|(n, _)| n == section).expect("section added").1;
        match entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => entries.push((key, value)),
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, entries) in &self.sections {
            out.push_str(&format!("[{name}]\n"));
            for (key, value) in entries {
                out.push_str(key);
                if let Some(v) = value {
                    out.push('=');
                    out.push_str(&v.replace('\n', "\n\t"));
                }
                out.push('\n');
            }
            out.push('\n');
        }
        out
    }
}

/// Python's `str()` of a JSON value, as upstream formats option values.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => osbuild_stage_api::pyrepr::repr(other),
    }
}

/// `configparser`'s default ("basic") interpolation refuses a `%` that is not `%%` or
/// `%(name)s` when a value is set; upstream's journald and logind stages use it.
pub fn check_basic_interpolation(value: &str) -> Result<(), StageError> {
    // configparser's BasicInterpolation: after dropping `%%` and `%(name)s` references, no
    // `%` may remain.
    static REFERENCE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let reference = REFERENCE.get_or_init(|| regex::Regex::new(r"%\(([^)]+)\)s").expect("valid regex"));
    if let Some(pos) = reference.replace_all(&value.replace("%%", ""), "").find('%') {
        return Err(StageError::Invalid(format!("invalid interpolation syntax in {value:?} at position {pos}")));
    }
    Ok(())
}

/// Upstream's section writer shared by `systemd.unit` and `systemd.unit.create`: scalar
/// values are set as `key=value`; list items become value-less keys `key=item`, where an
/// `Environment` item `{key, value}` becomes `Environment="KEY=VALUE"`.
pub fn unit_from_config(config: &Value) -> Result<Ini, StageError> {
    ini_from_config(config, |ini, section, option, value| {
        match value {
            Value::Array(items) => {
                for v in items {
                    let v = if option == "Environment" {
                        let key = v.get("key").ok_or_else(|| {
                            StageError::Invalid(format!("an Environment entry in [{section}] has no key"))
                        })?;
                        let value = v.get("value").ok_or_else(|| {
                            StageError::Invalid(format!("Environment entry {} has no value", py_str(key)))
                        })?;
                        format!("\"{}={}\"", py_str(key), py_str(value))
                    } else {
                        py_str(v)
                    };
                    ini.set(section, format!("{option}={v}"), None);
                }
            }
            v => ini.set(section, option.to_owned(), Some(py_str(v))),
        }
        Ok(())
    })
}

/// Add `section` with every `(key, value)` set as NetworkManager's stages set them: the
/// value as Python prints it, under basic interpolation (`nm.conf`, `nm.conn`).
pub fn set_py_values<'a>(
    ini: &mut Ini,
    section: &str,
    values: impl IntoIterator<Item = (&'a String, &'a Value)>,
) -> Result<(), String> {
    ini.add_section(section).map_err(|e| e.to_string())?;
    for (key, value) in values {
        let value = super::pyfmt::py_value(value).map_err(|e| format!("{section}.{key}: {e}"))?;
        check_basic_interpolation(&value).map_err(|e| e.to_string())?;
        ini.set(section, key.to_string(), Some(value));
    }
    Ok(())
}

/// Upstream's plain drop-in writer (journald, logind): every option set as `key=value` with
/// Python's `str()` of its value, under basic interpolation.
pub fn dropin_from_config(config: &Value) -> Result<Ini, StageError> {
    ini_from_config(config, |ini, section, option, value| {
        let value = py_str(value);
        check_basic_interpolation(&value)?;
        ini.set(section, option.to_owned(), Some(value));
        Ok(())
    })
}

/// The `config` option's sections, in order, each added to a new `Ini` and its options handed
/// to `set` one by one.
fn ini_from_config(
    config: &Value,
    mut set: impl FnMut(&mut Ini, &str, &str, &Value) -> Result<(), StageError>,
) -> Result<Ini, StageError> {
    let mut ini = Ini::default();
    for (section, opts) in config_object(config)? {
        ini.add_section(section)?;
        let Some(opts) = opts.as_object() else {
            return Err(StageError::Invalid(format!("section {section} must be an object")));
        };
        for (option, value) in opts {
            set(&mut ini, section, option, value)?;
        }
    }
    Ok(ini)
}

/// Whether a drop-in may replace a file of the same name.
#[derive(Clone, Copy, PartialEq)]
pub enum Existing {
    Replace,
    /// Upstream opens the file with mode `x`.
    Refuse,
}

/// Write `ini` as the tree's file `path` with mode 0644, creating missing parent directories
/// (0755) as upstream's drop-in stages do.
pub fn write_dropin(args: &super::StageArgs, path: &str, ini: &Ini, existing: Existing) -> Result<(), StageError> {
    // An exclusive create does not follow a symlink at the file (`O_EXCL`), so it is not
    // resolved either.
    let path = super::util::tree_path(args, path, existing == Existing::Replace)?;
    super::util::create_parents(&path)?;
    match existing {
        Existing::Replace => super::util::write_file(&path, ini.render().as_bytes(), 0o644),
        Existing::Refuse => super::util::write_new_file(&path, ini.render().as_bytes(), 0o644),
    }
}

/// The sections of a (typed, ordered) options object as `(section, [(key, value)])`, each
/// value made a string by `value`. Every section must be an object (the options' types make
/// sure of that).
pub fn string_sections(
    map: serde_json::Map<String, Value>,
    value: impl Fn(Value) -> String,
) -> Vec<(String, Vec<(String, String)>)> {
    map.into_iter()
        .map(|(section, options)| {
            let Value::Object(options) = options else { unreachable!("sections are objects") };
            (section, options.into_iter().map(|(k, v)| (k, value(v))).collect())
        })
        .collect()
}

/// The `config` option (typed, in the manifest's order) as the object the writers take.
fn config_object(config: &Value) -> Result<&serde_json::Map<String, Value>, StageError> {
    config.as_object().ok_or_else(|| StageError::Invalid("option config must be an object".into()))
}

/// File `name` in the tree's existing directory `dir`, resolved inside the tree (following a
/// symlink at the file, as Python's `open` does). Upstream opens files in these directories
/// without creating them, so a missing directory is an error there too.
pub fn file_in_existing_dir(args: &super::StageArgs, dir: &str, name: &str) -> Result<std::path::PathBuf, StageError> {
    check_file_name("file name", name)?;
    if !super::util::tree_path(args, dir, true)?.is_dir() {
        return Err(StageError::Invalid(format!("directory {dir} does not exist in the tree")));
    }
    super::util::tree_path(args, format!("{dir}/{name}"), true)
}

/// A file name option that must not name a path.
pub fn check_file_name(what: &str, name: &str) -> Result<(), StageError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(StageError::Invalid(format!("{what} {name:?} is not a valid file name")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_like_configparser() {
        let cfg = json!({
            "Unit": {"Description": "x\ny", "DefaultDependencies": false, "After": ["a", "b", "a"]},
            "Service": {"Environment": [{"key": "K", "value": "v"}], "ExecStart": ["/bin/true"]},
        });
        let ini = unit_from_config(&cfg).unwrap();
        assert_eq!(
            ini.render(),
            "[Unit]\nDescription=x\n\ty\nDefaultDependencies=False\nAfter=a\nAfter=b\n\n\
             [Service]\nEnvironment=\"K=v\"\nExecStart=/bin/true\n\n"
        );
        assert_eq!(py_str(&json!([1, "a'b", null, {"k": true}])), r#"[1, "a'b", None, {'k': True}]"#);
    }

    #[test]
    fn interpolation_check() {
        assert!(check_basic_interpolation("100%%").is_ok());
        assert!(check_basic_interpolation("%(x)s").is_ok());
        assert!(check_basic_interpolation("50%").is_err());
    }

    #[test]
    fn renders_like_configparser_and_checks_interpolation() {
        let mut ini = Ini::default();
        ini.add_section("main").unwrap();
        ini.set("main", "a".into(), Some("1".into()));
        ini.set("main", "B".into(), Some("x\ny".into()));
        ini.set("main", "a".into(), Some("2".into()));
        ini.add_section("other").unwrap();
        ini.add_section("main").unwrap();
        ini.set("main", "p".into(), Some("100%%".into()));
        assert_eq!(ini.render(), "[main]\na=2\nB=x\n\ty\np=100%%\n\n[other]\n\n");
        assert!(check_basic_interpolation("100%%").is_ok());
        assert!(check_basic_interpolation("%(home)s/x").is_ok());
        assert!(check_basic_interpolation("100%").unwrap_err().to_string().contains("invalid interpolation syntax"));
        assert!(check_basic_interpolation("%(home)/x").is_err());
        assert!(ini.add_section("DEFAULT").is_err());
    }
}
