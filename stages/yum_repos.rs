//! `org.osbuild.yum.repos`: write a new `.repo` file in `/etc/yum.repos.d`.
//!
//! As upstream (Python's `configparser`, written without spaces around `=`): one `[id]`
//! section per repository in manifest order, each followed by a blank line; `name`,
//! `baseurl`, `metalink`, `mirrorlist`, `enabled`, `gpgcheck`, `repo_gpgcheck`, `gpgkey`
//! first in that order, then the other options in manifest order; lists joined by spaces,
//! booleans as `1`/`0`. The directory is created (0755); the file must not exist yet (0644).
//! Like `configparser`, a value with a lone `%` (not `%%` or `%(name)s`) and a repeated id
//! are refused.

use super::util::{create_parents, tree_path, typed_in_order, write_new_file};
use super::{StageArgs, StageError, StageResult};
use crate::Stage;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

const ORDER: [&str; 8] =
    ["name", "baseurl", "metalink", "mirrorlist", "enabled", "gpgcheck", "repo_gpgcheck", "gpgkey"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub filename: String,
    pub repos: Vec<Repo>,
}

/// One repository: its id and its options (as strings) in manifest order.
#[derive(Debug, Deserialize)]
#[serde(try_from = "Map<String, Value>")]
pub struct Repo {
    id: String,
    options: Vec<(String, String)>,
}

/// The options upstream's schema allows, to check types and names.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Check {
    id: String,
    baseurl: Option<Vec<String>>,
    cost: Option<i64>,
    enabled: Option<bool>,
    gpgkey: Option<Vec<String>>,
    metalink: Option<String>,
    mirrorlist: Option<String>,
    module_hotfixes: Option<bool>,
    name: Option<String>,
    priority: Option<i64>,
    gpgcheck: Option<bool>,
    repo_gpgcheck: Option<bool>,
    sslverify: Option<bool>,
}

impl TryFrom<Map<String, Value>> for Repo {
    type Error = String;
    fn try_from(map: Map<String, Value>) -> Result<Self, String> {
        let (check, mut map) = typed_in_order::<Check>(Value::Object(map)).map_err(|e| e.to_string())?;
        if !check.id.chars().all(|c| c.is_alphanumeric() || "_.-:".contains(c)) || check.id.is_empty() {
            return Err(format!("repository id '{}' may only hold letters, digits and _.-:", check.id));
        }
        let sources = [&check.baseurl.is_some(), &check.metalink.is_some(), &check.mirrorlist.is_some()];
        if sources.iter().filter(|s| ***s).count() != 1 {
            return Err(format!("repository '{}' needs exactly one of baseurl, metalink, mirrorlist", check.id));
        }
        map.shift_remove("id");
        let mut options = Vec::new();
        for key in ORDER {
            if let Some(v) = map.shift_remove(key) {
                options.push((key.to_owned(), value_str(&v)));
            }
        }
        options.extend(map.iter().map(|(k, v)| (k.clone(), value_str(v))));
        for (k, v) in &options {
            if v.is_empty() && matches!(k.as_str(), "baseurl" | "gpgkey" | "metalink" | "mirrorlist" | "name") {
                return Err(format!("repository '{}': {k} must not be empty", check.id));
            }
            if !interpolation_ok(v) {
                return Err(format!("repository '{}': invalid interpolation syntax in {k} value '{v}'", check.id));
            }
        }
        Ok(Repo { id: check.id, options })
    }
}

fn value_str(v: &Value) -> String {
    match v {
        Value::Array(a) => a.iter().map(value_str).collect::<Vec<_>>().join(" "),
        Value::Bool(b) => (if *b { "1" } else { "0" }).to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `configparser`'s basic interpolation check on `set`: after dropping `%%` and `%(name)s`,
/// no `%` may remain.
fn interpolation_ok(v: &str) -> bool {
    let v = v.replace("%%", "");
    let mut rest = v.as_str();
    while let Some(i) = rest.find('%') {
        let after = &rest[i + 1..];
        let Some(body) = after.strip_prefix('(') else { return false };
        let Some(close) = body.find(')') else { return false };
        if close == 0 || !body[close + 1..].starts_with('s') {
            return false;
        }
        rest = &body[close + 2..];
    }
    true
}

/// The stage itself: its name, capabilities and options, as the registry lists it.
pub struct YumRepos;

impl Stage for YumRepos {
    const NAME: &'static str = "org.osbuild.yum.repos";
    type Options = Options;

    fn run(args: &StageArgs, options: Options) -> StageResult {
        let f = &options.filename;
        // upstream's schema: `^[\w.-]{1,250}\.repo$`
        let chars = f.chars().count();
        let valid_name = (6..=255).contains(&chars)
            && f.ends_with(".repo")
            && f.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == '-');
        if !valid_name {
            return Err(StageError::Invalid(format!("filename '{f}' must be a plain file name ending in .repo")));
        }
        if options.repos.is_empty() {
            return Err(StageError::Invalid("repos must hold at least one repository".into()));
        }
        let mut text = String::new();
        let mut seen = std::collections::BTreeSet::new();
        for repo in &options.repos {
            if !seen.insert(&repo.id) {
                return Err(StageError::Invalid(format!("repository id '{}' appears twice", repo.id)));
            }
            text.push_str(&format!("[{}]\n", repo.id));
            for (k, v) in &repo.options {
                text.push_str(&format!("{k}={}\n", v.replace('\n', "\n\t")));
            }
            text.push('\n');
        }
        let path = tree_path(args, format!("/etc/yum.repos.d/{f}"), false)?;
        create_parents(&path)?;
        write_new_file(&path, text.as_bytes(), 0o644)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_chain;
    use crate::testutil::args;
    use serde_json::json;

    #[test]
    fn orders_options_like_upstream() {
        let t = tempfile::tempdir().unwrap();
        let opts = json!({"filename": "cool.repo", "repos": [
            {"id": "a", "metalink": "https://m"},
            {"id": "b:1", "mirrorlist": "https://l", "cost": 123, "enabled": false, "gpgkey": ["k1", "k2"],
             "module_hotfixes": true, "name": "B", "priority": 42, "gpgcheck": true, "sslverify": true}
        ]});
        YumRepos::execute(&args(t.path(), opts.clone())).unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join("etc/yum.repos.d/cool.repo")).unwrap(),
            "[a]\nmetalink=https://m\n\n[b:1]\nname=B\nmirrorlist=https://l\nenabled=0\ngpgcheck=1\ngpgkey=k1 k2\n\
             cost=123\nmodule_hotfixes=1\npriority=42\nsslverify=1\n\n"
        );
        let e = YumRepos::execute(&args(t.path(), opts)).unwrap_err();
        assert!(e.to_string().starts_with("cannot create"), "{e}");
    }

    #[test]
    fn bad_options_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let cases = [
            (json!({"filename": "x.repo", "repos": [{"id": "a"}]}), "exactly one of baseurl"),
            (json!({"filename": "x.repo", "repos": [{"id": "a", "baseurl": ["u"], "foo": 1}]}), "unknown field `foo`"),
            (json!({"filename": "../x.repo", "repos": [{"id": "a", "baseurl": ["u"]}]}), "plain file name"),
            (json!({"filename": "x.repo", "repos": [{"id": "a", "baseurl": ["u%20"]}]}), "interpolation"),
            (
                json!({"filename": "x.repo", "repos": [{"id": "a", "baseurl": ["u"]}, {"id": "a", "baseurl": ["v"]}]}),
                "twice",
            ),
        ];
        for (opts, want) in cases {
            let e = error_chain(&YumRepos::execute(&args(t.path(), opts)).unwrap_err());
            assert!(e.contains(want), "{e}");
        }
        assert!(interpolation_ok("a%%b%(x)sc"));
        assert!(!interpolation_ok("%(x)"));
    }
}
