//! Property tests: the loader, the validator and `describe` never panic, whatever JSON
//! they are given. Arbitrary JSON, and manifest-shaped JSON with random pieces swapped
//! for arbitrary values, go through the same path as `--inspect`. Failing inputs that
//! proptest finds are kept in `proptest-regressions/` and replayed on every run.

use osbuild_rs::{manifest, schema};
use proptest::prelude::*;
use serde_json::{json, Value};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "[a-z:.\\-]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("name:tree"),
            Just("name:build"),
            Just("org.osbuild.pipeline"),
            Just("org.osbuild.source"),
            Just("sha256:00")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("type".to_string()),
                        Just("name".to_string()),
                        Just("options".to_string()),
                        Just("references".to_string()),
                        Just("origin".to_string()),
                        Just("parent".to_string()),
                        Just("source".to_string()),
                        "[a-z]{1,6}"
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn base_manifest() -> Value {
    json!({
        "version": "2",
        "sources": {"org.osbuild.inline": {"items": {"sha256:00": {"encoding": "base64", "data": ""}}}},
        "pipelines": [
            {"name": "build", "runner": "org.osbuild.linux", "stages": [{"type": "org.osbuild.noop"}]},
            {"name": "tree", "build": "name:build", "stages": [
                {"type": "org.osbuild.copy",
                 "inputs": {"tree": {"type": "org.osbuild.tree", "origin": "org.osbuild.pipeline", "references": ["name:build"]},
                            "files": {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": {"sha256:00": {}}}},
                 "devices": {"disk": {"type": "org.osbuild.loopback", "options": {"filename": "d"}},
                             "part": {"type": "org.osbuild.loopback", "parent": "disk"}},
                 "mounts": [{"name": "root", "type": "org.osbuild.ext4", "source": "part", "target": "/"}]}
            ]}
        ]
    })
}

/// Replace the value found by walking `path` (indices taken modulo the width) with `new`.
fn mutate(v: &mut Value, path: &[usize], new: Value) {
    let Some((&first, rest)) = path.split_first() else {
        *v = new;
        return;
    };
    match v {
        Value::Object(m) if !m.is_empty() => {
            let key = m.keys().nth(first % m.len()).unwrap().clone();
            mutate(m.get_mut(&key).unwrap(), rest, new)
        }
        Value::Array(a) if !a.is_empty() => {
            let n = a.len();
            mutate(&mut a[first % n], rest, new)
        }
        _ => *v = new,
    }
}

fn exercise(v: &Value) {
    let _ = schema::validate(v);
    if let Ok(m) = manifest::load(v) {
        let _ = manifest::describe(&m);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512), .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        exercise(&v);
        exercise(&json!({"version": "2", "pipelines": [v.clone()]}));
        exercise(&json!({"pipeline": v}));
    }

    #[test]
    fn mutated_manifests_never_panic(path in prop::collection::vec(0usize..8, 0..7), new in arb_json()) {
        let mut m = base_manifest();
        mutate(&mut m, &path, new);
        exercise(&m);
    }
}

#[test]
fn the_base_manifest_loads() {
    // Guards the mutation test: if the base does not load, mutations test nothing.
    let m = manifest::load(&base_manifest()).expect("base manifest loads");
    assert_eq!(m.pipelines.len(), 2);
    assert_eq!(m.pipelines[1].stages[0].mounts.len(), 1);
}
