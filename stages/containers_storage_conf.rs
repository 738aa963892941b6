//! `org.osbuild.containers.storage.conf`: write the containers-storage configuration
//! (`/etc/containers/storage.conf` or `/usr/share/containers/storage.conf`) as TOML.
//!
//! As upstream: the document starts as the file `filebase` names (read in the build root,
//! like upstream) or empty; if the target exists, its `storage` table — only that table —
//! is merged in; then the options' `storage` table is merged in (tables merge recursively,
//! anything else replaces; new keys go last). The result is written, after a comment
//! header and the options' `comment` lines, the way Python's `tomli_w` formats TOML: `[a.b]`
//! headers, arrays one item per line, strings in double quotes. The directory must exist;
//! a new file gets mode 0644, an existing one keeps its mode.
//!
//! Deviation: date and time values and `inf`/`nan` floats in an existing file are an error
//! here; upstream would write them back.

use super::pyfmt::py_number;
use super::util::NonEmptyObject as NonEmpty;
use super::util::{tree_path, typed_in_order, write_file};
use super::{StageError, StageResult};
use crate::Stage;
use crate::StageArgs;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

const DEFAULT_LOCATION: &str = "/etc/containers/storage.conf";
const HEADER: &[&str] = &[
    "This file is the configuration file for all tools that",
    "use the containers/storage library.",
    "See 'man 5 containers-storage.conf' for more information.",
    "This file was created by osbuild.",
];

/// The options, checked against upstream's interface, with the config kept in order.
#[derive(Debug, Deserialize)]
#[serde(try_from = "Value")]
pub struct Options {
    pub filename: String,
    pub filebase: Option<String>,
    pub comment: Vec<String>,
    pub config: Map<String, Value>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Checked {
    filename: Option<Location>,
    filebase: Option<String>,
    #[serde(default)]
    comment: Vec<String>,
    config: NonEmpty<Config>,
}

#[derive(Deserialize, Serialize)]
enum Location {
    #[serde(rename = "/etc/containers/storage.conf")]
    Etc,
    #[serde(rename = "/usr/share/containers/storage.conf")]
    UsrShare,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Config {
    storage: Option<NonEmpty<Storage>>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Storage {
    driver: Option<Driver>,
    graphroot: Option<String>,
    runroot: Option<String>,
    transient_store: Option<bool>,
    options: Option<NonEmpty<StorageOptions>>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum Driver {
    Overlay,
    Vfs,
    Devmapper,
    Aufs,
    Btrfs,
    Zfs,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct StorageOptions {
    additionalimagestores: Option<Vec<String>>,
    pull_options: Option<NonEmpty<PullOptions>>,
    overlay: Option<NonEmpty<Overlay>>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct PullOptions {
    enable_partial_images: Option<TrueFalse>,
    use_hard_links: Option<TrueFalse>,
    convert_images: Option<TrueFalse>,
}

/// `"true"` or `"false"`, as strings.
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum TrueFalse {
    True,
    False,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Overlay {
    mountopt: Option<String>,
}

impl TryFrom<Value> for Options {
    type Error = String;
    fn try_from(v: Value) -> Result<Self, String> {
        let (checked, map) = typed_in_order::<Checked>(v).map_err(|e| e.to_string())?;
        let v = Value::Object(map);
        let filename = match checked.filename {
            None | Some(Location::Etc) => DEFAULT_LOCATION,
            Some(Location::UsrShare) => "/usr/share/containers/storage.conf",
        };
        let config = v["config"].as_object().cloned().unwrap_or_default();
        Ok(Options { filename: filename.into(), filebase: checked.filebase, comment: checked.comment, config })
    }
}

/// Upstream's `merge_config`: merge `config[section]` (a table; a missing or empty one is
/// skipped) into `data[section]`.
fn merge(section: &str, data: &mut Map<String, Value>, config: &Map<String, Value>) -> Result<(), String> {
    let want = match config.get(section) {
        None => return Ok(()),
        Some(Value::Object(want)) if want.is_empty() => return Ok(()),
        Some(Value::Object(want)) => want,
        Some(_) => return Err(format!("`{section}` is not a table")),
    };
    let have = data.entry(section.to_owned()).or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(have) = have else {
        return Err(format!("`{section}` is not a table"));
    };
    let mut rest = Map::new();
    for (k, w) in want {
        if w.is_object() && have.get(k).is_some_and(Value::is_object) {
            merge(k, have, want)?;
        } else {
            rest.insert(k.clone(), w.clone());
        }
    }
    for (k, v) in rest {
        have.insert(k, v);
    }
    Ok(())
}

/// Read a TOML file into ordered JSON (as Python's `tomllib` would give it).
fn load(path: &std::path::Path, shown: &str) -> Result<Map<String, Value>, StageError> {
    let text = std::fs::read_to_string(path).map_err(StageError::io("cannot read", path))?;
    let doc: toml_edit::DocumentMut =
        text.parse().map_err(|e| StageError::Invalid(format!("cannot parse {shown} as TOML: {e}")))?;
    table_to_json(doc.as_table()).map_err(|e| StageError::Invalid(format!("{shown}: {e}")))
}

fn table_to_json(t: &toml_edit::Table) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (k, item) in t.iter() {
        let v = match item {
            toml_edit::Item::None => continue,
            toml_edit::Item::Value(v) => value_to_json(v)?,
            toml_edit::Item::Table(t) => Value::Object(table_to_json(t)?),
            toml_edit::Item::ArrayOfTables(a) => {
                Value::Array(a.iter().map(|t| table_to_json(t).map(Value::Object)).collect::<Result<_, _>>()?)
            }
        };
        out.insert(k.to_owned(), v);
    }
    Ok(out)
}

fn value_to_json(v: &toml_edit::Value) -> Result<Value, String> {
    use toml_edit::Value as V;
    Ok(match v {
        V::String(s) => Value::String(s.value().clone()),
        V::Integer(i) => Value::from(*i.value()),
        V::Float(f) => {
            let f = *f.value();
            serde_json::Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| format!("unsupported float {f} (nan or inf)"))?
        }
        V::Boolean(b) => Value::Bool(*b.value()),
        V::Datetime(d) => return Err(format!("date and time values are not supported ({})", d.value())),
        V::Array(a) => Value::Array(a.iter().map(value_to_json).collect::<Result<_, _>>()?),
        V::InlineTable(t) => {
            let mut m = Map::new();
            for (k, v) in t.iter() {
                m.insert(k.to_owned(), value_to_json(v)?);
            }
            Value::Object(m)
        }
    })
}

// ---- tomli_w's output format

const ARRAY_INDENT: &str = "    ";
const MAX_LINE_LENGTH: usize = 100;

fn format_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\u{8}' => out.push_str("\\b"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push('\t'),
            c if (c as u32) < 32 || c as u32 == 127 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn format_key(k: &str) -> String {
    if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        k.to_owned()
    } else {
        format_string(k)
    }
}

fn format_literal(v: &Value, nest: usize) -> Result<String, String> {
    Ok(match v {
        Value::Bool(b) => if *b { "true" } else { "false" }.to_owned(),
        Value::Number(n) => py_number(n),
        Value::String(s) => format_string(s),
        Value::Array(items) if items.is_empty() => "[]".to_owned(),
        Value::Array(items) => {
            let inner = ARRAY_INDENT.repeat(nest + 1);
            let lines: Vec<String> = items
                .iter()
                .map(|i| Ok(format!("{inner}{}", format_literal(i, nest + 1)?)))
                .collect::<Result<_, String>>()?;
            format!("[\n{},\n{}]", lines.join(",\n"), ARRAY_INDENT.repeat(nest))
        }
        Value::Object(o) => format_inline_table(o)?,
        Value::Null => return Err("null values cannot be written as TOML".into()),
    })
}

fn format_inline_table(o: &Map<String, Value>) -> Result<String, String> {
    if o.is_empty() {
        return Ok("{}".into());
    }
    let parts: Vec<String> = o
        .iter()
        .map(|(k, v)| Ok(format!("{} = {}", format_key(k), format_literal(v, 0)?)))
        .collect::<Result<_, String>>()?;
    Ok(format!("{{ {} }}", parts.join(", ")))
}

fn is_aot(v: &Value) -> bool {
    matches!(v, Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_object))
}

fn suitable_inline(t: &Map<String, Value>) -> Result<bool, String> {
    let rendered = format!("{ARRAY_INDENT}{},", format_inline_table(t)?);
    Ok(rendered.chars().count() <= MAX_LINE_LENGTH && !rendered.contains('\n'))
}

fn table_chunks(t: &Map<String, Value>, name: &str, inside_aot: bool, out: &mut String) -> Result<(), String> {
    let mut yielded = false;
    let mut literals = vec![];
    let mut tables: Vec<(&String, &Map<String, Value>, bool)> = vec![];
    for (k, v) in t {
        match v {
            Value::Object(o) => tables.push((k, o, false)),
            Value::Array(a)
                if is_aot(v) && !a.iter().all(|x| suitable_inline(x.as_object().unwrap()).unwrap_or(false)) =>
            {
                tables.extend(a.iter().map(|x| (k, x.as_object().unwrap(), true)));
            }
            _ => literals.push((k, v)),
        }
    }
    if inside_aot || (!name.is_empty() && (!literals.is_empty() || tables.is_empty())) {
        yielded = true;
        out.push_str(&if inside_aot { format!("[[{name}]]\n") } else { format!("[{name}]\n") });
    }
    for (k, v) in literals {
        yielded = true;
        out.push_str(&format!("{} = {}\n", format_key(k), format_literal(v, 0)?));
    }
    for (k, sub, in_aot) in tables {
        if yielded {
            out.push('\n');
        } else {
            yielded = true;
        }
        let key = format_key(k);
        let display = if name.is_empty() { key } else { format!("{name}.{key}") };
        table_chunks(sub, &display, in_aot, out)?;
    }
    Ok(())
}

/// `data` as `tomli_w.dump` writes it.
pub fn dump(data: &Map<String, Value>) -> Result<String, String> {
    let mut out = String::new();
    table_chunks(data, "", false, &mut out)?;
    Ok(out)
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct ContainersStorageConf;

impl Stage for ContainersStorageConf {
    const NAME: &'static str = "org.osbuild.containers.storage.conf";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let path = tree_path(args, &options.filename, true)?;
        let mut data = match &options.filebase {
            Some(base) if !base.is_empty() => load(std::path::Path::new(base), base)?,
            _ => Map::new(),
        };
        if path.exists() {
            let have = load(&path, &options.filename)?;
            merge("storage", &mut data, &have)
                .map_err(|e| StageError::Invalid(format!("{}: {e}", options.filename)))?;
        }
        merge("storage", &mut data, &options.config).map_err(StageError::Invalid)?;

        let mut header: Vec<&str> = HEADER.to_vec();
        header.push("\n");
        header.extend(options.comment.iter().map(String::as_str));
        let mut text = header.iter().map(|c| format!("# {c}")).collect::<Vec<_>>().join("\n") + "\n\n";
        text.push_str(&dump(&data).map_err(StageError::Invalid)?);
        write_file(&path, text.as_bytes(), 0o644)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn tomli_w_format() {
        let data = json!({"a": 1, "s": "x\"y\\\u{1}\t", "storage": {"driver": "overlay", "options": {"list": ["a", "b"], "empty": [],
            "overlay": {"mountopt": "nodev"}}}, "aot": [{"x": 1}], "big": [{"x": "y".repeat(100)}], "k.e y": 1.5});
        assert_eq!(
            dump(data.as_object().unwrap()).unwrap(),
            "a = 1\ns = \"x\\\"y\\\\\\u0001\t\"\naot = [\n    { x = 1 },\n]\n\"k.e y\" = 1.5\n\n\
             [storage]\ndriver = \"overlay\"\n\n[storage.options]\nlist = [\n    \"a\",\n    \"b\",\n]\nempty = []\n\n\
             [storage.options.overlay]\nmountopt = \"nodev\"\n\n[[big]]\nx = \""
                .to_owned()
                + &"y".repeat(100)
                + "\"\n"
        );
    }

    #[test]
    fn merges_existing_storage_table_only() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("etc/containers");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("storage.conf"),
            "[storage]\ndriver = \"overlay\"\nrunroot = \"/run/containers/storage\"\n\n[storage.options]\n\
             pull_options = {enable_partial_images = \"false\"}\n\n[other]\nx = 1\n",
        )
        .unwrap();
        let opts = json!({"config": {"storage": {"driver": "vfs", "options": {"overlay": {"mountopt": "nodev"}}}}});
        ContainersStorageConf::execute(&args(t.path(), opts)).unwrap();
        let text = std::fs::read_to_string(dir.join("storage.conf")).unwrap();
        let body = text.split_once("# \n\n\n").unwrap().1;
        assert_eq!(
            body,
            "[storage]\ndriver = \"vfs\"\nrunroot = \"/run/containers/storage\"\n\n[storage.options.pull_options]\n\
             enable_partial_images = \"false\"\n\n[storage.options.overlay]\nmountopt = \"nodev\"\n"
        );
    }

    #[test]
    fn bad_options() {
        let t = tempfile::tempdir().unwrap();
        let e = |o: Value| crate::error_chain(&ContainersStorageConf::execute(&args(t.path(), o)).unwrap_err());
        assert!(e(json!({"config": {"storage": {"driver": "ext4"}}})).contains("unknown variant `ext4`"));
        assert!(e(json!({"config": {}})).contains("must not be empty"));
        assert!(
            e(json!({"filename": "/etc/x.conf", "config": {"storage": {"driver": "vfs"}}})).contains("unknown variant")
        );
        assert!(e(json!({"config": {"storage": {"driver": "vfs"}}})).starts_with("cannot write"));
    }
}
