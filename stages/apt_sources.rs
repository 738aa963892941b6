//! `org.osbuild.apt.sources`: write apt's package sources into the tree as a deb822 file,
//! `/etc/apt/sources.list.d/<filename>` (sources.list(5), "DEB822-STYLE FORMAT").
//!
//! osbuild-rs' own stage (upstream has no Debian stages). Each entry of `sources` becomes
//! one paragraph: `Types` (default `deb`), `URIs`, `Suites`, `Components`, `Architectures`,
//! `Enabled`, `Signed-By` (a keyring path, or an inline ASCII-armoured key written as
//! continuation lines) and any further one-line fields given in `options`. An existing file of
//! that name is replaced. With `remove_sources_list`, `/etc/apt/sources.list` is removed so
//! only the written sources are used.

use super::deb_util::{render_sources, SourceEntry};
use super::util::{create_parents, remove_if_exists, tree_path, write_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default = "default_filename")]
    pub filename: String,
    pub sources: Vec<SourceEntry>,
    #[serde(default)]
    pub remove_sources_list: bool,
}

fn default_filename() -> String {
    "debian.sources".to_owned()
}

/// Write `entries` to `/etc/apt/sources.list.d/<filename>` in the tree.
pub(super) fn write(args: &StageArgs, filename: &str, entries: &[SourceEntry]) -> Result<(), StageError> {
    if !filename.ends_with(".sources") || filename.contains('/') || filename.starts_with('.') {
        return Err(StageError::Invalid(format!(
            "apt sources file name '{filename}' must be a plain name ending in .sources"
        )));
    }
    if entries.is_empty() {
        return Err(StageError::Invalid("no apt sources given".into()));
    }
    let text = render_sources(entries)?;
    let path = tree_path(args, format!("/etc/apt/sources.list.d/{filename}"), false)?;
    create_parents(&path)?;
    remove_if_exists(&path)?;
    write_file(&path, text.as_bytes(), 0o644)
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct AptSources;

impl Stage for AptSources {
    const NAME: &'static str = "org.osbuild.apt.sources";
    type Options = Options;

    fn run(args: &StageArgs, o: Options) -> StageResult {
        write(args, &o.filename, &o.sources)?;
        if o.remove_sources_list {
            remove_if_exists(&tree_path(args, "/etc/apt/sources.list", false)?)?;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn writes_deb822_sources() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc/apt")).unwrap();
        std::fs::write(t.path().join("etc/apt/sources.list"), "deb http://old.example/ x main\n").unwrap();
        let o = json!({"sources": [{"uris": ["http://mirror.example/debian"], "suites": ["bookworm"],
                                    "components": ["main", "contrib"], "architectures": ["amd64"]}],
                       "remove_sources_list": true});
        AptSources::execute(&args(t.path(), o)).unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join("etc/apt/sources.list.d/debian.sources")).unwrap(),
            "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\nComponents: main contrib\nArchitectures: amd64\n"
        );
        assert!(!t.path().join("etc/apt/sources.list").exists());
    }

    #[test]
    fn bad_names_and_entries_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let entry = json!({"uris": ["http://m.example/d"], "suites": ["bookworm"], "components": ["main"]});
        for name in ["../x.sources", "x.list", ".sources"] {
            let e = AptSources::execute(&args(t.path(), json!({"filename": name, "sources": [entry]}))).unwrap_err();
            assert!(e.to_string().contains("must be a plain name ending in .sources"), "{name}: {e}");
        }
        assert!(AptSources::execute(&args(t.path(), json!({"sources": []}))).is_err());
        let e = AptSources::execute(&args(
            t.path(),
            json!({"sources": [{"uris": ["http://m.example/d"], "suites": ["b"],
                                                       "components": ["main"], "types": ["rpm"]}]}),
        ))
        .unwrap_err();
        assert!(e.to_string().contains("neither deb nor deb-src"), "{e}");
        assert!(!t.path().join("etc/apt/sources.list.d/debian.sources").exists());
    }
}
