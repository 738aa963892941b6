//! `org.osbuild.treeinfo`: write a `.treeinfo` file (productmd's format) from the
//! `treeinfo` option: every object a section, every list of `{name, config}` items sections
//! named `<key>-<name>`, a `[header]` with `version=1.0`, and, for the files named in
//! `checksums`, a `[checksums]` section of their SHA-256 sums. Written as Python's
//! `configparser` writes it for upstream (`key=value`, keys as given, mode 0600).

use super::configparser::{check_basic_interpolation, Ini};
use super::util::{create_parents, tree_path, write_file_chmod};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// The file to write, in the tree.
    pub path: String,
    /// Sections, in order (the manifest's).
    pub treeinfo: Map<String, Value>,
}

/// The stage itself: its name and options, as the registry lists it.
pub struct Treeinfo;

impl Stage for Treeinfo {
    const NAME: &'static str = "org.osbuild.treeinfo";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let mut treeinfo = with_header(options.treeinfo);
        let files = match treeinfo.get("checksums") {
            None => vec![],
            Some(Value::Array(files)) => files
                .iter()
                .map(|f| f.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| StageError::Invalid("checksums must list file paths".into()))?,
            Some(_) => return Err(StageError::Invalid("checksums must list file paths".into())),
        };
        if !files.is_empty() {
            let mut sums = Map::new();
            for f in files {
                let sum = sha256_of(args, &f)?;
                sums.insert(f, Value::String(format!("sha256:{sum}")));
            }
            treeinfo.insert("checksums".into(), Value::Object(sums));
        }
        let text = render(&treeinfo)?;
        let path = tree_path(args, options.path.trim_start_matches('/'), true)?;
        create_parents(&path)?;
        write_file_chmod(&path, text.as_bytes(), 0o600)?;
        Ok(None)
    }
}

/// `treeinfo` with its `[header]`: a `header` given is replaced where it stands, else it
/// comes last.
fn with_header(mut treeinfo: Map<String, Value>) -> Map<String, Value> {
    treeinfo.insert("header".into(), serde_json::json!({"version": "1.0"}));
    treeinfo
}

/// The SHA-256 of the tree's file `file` (resolved inside the tree), in hex.
fn sha256_of(args: &StageArgs, file: &str) -> Result<String, StageError> {
    let path = tree_path(args, file.trim_start_matches('/'), true)?;
    let mut file = std::fs::File::open(&path).map_err(StageError::io("cannot read", &path))?;
    let mut hasher = sha2::Sha256::default();
    std::io::copy(&mut file, &mut hasher).map_err(StageError::io("cannot read", &path))?;
    Ok(hex::encode(sha2::Digest::finalize(hasher)))
}

/// Upstream's `make_value`: a list of strings joined with `,`, `true`/`false`, else `str()`.
fn value(section: &str, key: &str, v: &Value) -> Result<String, StageError> {
    let text = match v {
        Value::Object(_) => osbuild_stage_api::pyrepr::repr(v),
        other => super::pyfmt::py_value(other).map_err(|e| StageError::Invalid(format!("[{section}] {key}: {e}")))?,
    };
    check_basic_interpolation(&text)?;
    Ok(text)
}

fn add(ini: &mut Ini, section: &str, config: &Value) -> Result<(), StageError> {
    let Some(config) = config.as_object() else {
        return Err(StageError::Invalid(format!("section {section} must be an object")));
    };
    ini.add_section(section)?;
    for (k, v) in config {
        ini.set(section, k.clone(), Some(value(section, k, v)?));
    }
    Ok(())
}

fn render(treeinfo: &Map<String, Value>) -> Result<String, StageError> {
    let mut ini = Ini::default();
    for (name, items) in treeinfo {
        match items {
            Value::Object(_) => add(&mut ini, name, items)?,
            Value::Array(list) => {
                for item in list {
                    let config = item
                        .get("config")
                        .ok_or_else(|| StageError::Invalid(format!("an item of {name} has no config")))?;
                    let section = match item.get("name") {
                        Some(Value::String(s)) if !s.is_empty() => format!("{name}-{s}"),
                        None | Some(Value::Null) | Some(Value::Bool(false)) => name.clone(),
                        Some(Value::String(_)) => name.clone(),
                        Some(other) => format!("{name}-{}", super::configparser::py_str(other)),
                    };
                    add(&mut ini, &section, config)?;
                }
            }
            other => {
                return Err(StageError::Invalid(format!("invalid section type of {name}: {}", kind(other))));
            }
        }
    }
    Ok(ini.render())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        _ => "null",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn upstream_test_manifest() {
        // options of upstream's test/data/stages/treeinfo/b.json; the text is what upstream wrote
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("testfile1"), "test\n").unwrap();
        let a = args(
            t.path(),
            json!({"path": "/.treeinfo", "treeinfo": {"checksums": ["testfile1"], "general": {"arch": "x86_64",
                "family": "Fedora", "name": "Fedora 21", "packagedir": "Packages", "platforms": ["x86_64", "xen"],
                "repository": ".", "timestamp": 1417653911, "variant": "Server", "version": "21"}}}),
        );
        Treeinfo::execute(&a).unwrap();
        let path = t.path().join(".treeinfo");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[checksums]\ntestfile1=sha256:f2ca1bb6c7e907d06dafe4687e579fce76b37e4e93b7605022da52e6ccc26fd2\n\n\
             [general]\narch=x86_64\nfamily=Fedora\nname=Fedora 21\npackagedir=Packages\nplatforms=x86_64,xen\n\
             repository=.\ntimestamp=1417653911\nvariant=Server\nversion=21\n\n[header]\nversion=1.0\n\n"
        );
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn named_sections_values_and_errors() {
        let ti = |v: Value| -> Map<String, Value> { serde_json::from_value(v).unwrap() };
        // upstream's text for these options
        let text =
            render(&with_header(ti(json!({"header": {"x": 1}, "images-x86_64": {"kernel": "images/pxeboot/vmlinuz"},
            "images": [{"name": "x86_64", "config": {"initrd": "i", "kernel": "k"}}, {"config": {"a": true}}],
            "tree": {"build_timestamp": 1.5, "variants": []}}))))
            .unwrap();
        assert_eq!(
            text,
            "[header]\nversion=1.0\n\n[images-x86_64]\nkernel=k\ninitrd=i\n\n[images]\na=true\n\n\
             [tree]\nbuild_timestamp=1.5\nvariants=\n\n"
        );
        assert!(render(&ti(json!({"DEFAULT": {}}))).is_err());
        assert!(render(&ti(json!({"general": "x"}))).is_err());
        assert!(render(&ti(json!({"general": {"name": "100%"}}))).is_err());
    }

    #[test]
    fn checksummed_files_stay_in_the_tree() {
        let t = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/hostname", t.path().join("link")).unwrap();
        let a = args(t.path(), json!({"path": "x/.treeinfo", "treeinfo": {"checksums": ["link"]}}));
        // the link points at the tree's /etc/hostname, which is not there: never the host's
        let e = crate::error_chain(&Treeinfo::execute(&a).unwrap_err());
        assert!(e.starts_with(&format!("cannot read {}/etc/hostname", t.path().display())), "{e}");
    }
}
