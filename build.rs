//! Embed every JSON schema under `schemas/` into the binary, so validation needs no files
//! at run time (the binary also runs inside foreign build roots).

use std::{env, fs, path::Path};

fn main() {
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("schemas.rs");
    // At run time, not `env!`: a build script binary must describe the tree it is run for.
    let root = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap()).join("schemas");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut entries = Vec::new();
    for kind in ["manifests", "stages", "sources", "inputs", "devices", "mounts", "assemblers"] {
        let dir = root.join(kind);
        println!("cargo:rerun-if-changed={}", dir.display());
        // A missing directory must fail the build, never embed nothing and panic at run time.
        let rd = fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        let mut files: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for f in files {
            if f.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let name = f.file_stem().unwrap().to_str().unwrap().to_owned();
            entries.push(format!("    ({kind:?}, {name:?}, include_str!({:?})),", f.display().to_string()));
        }
    }
    let code = format!("pub static EMBEDDED: &[(&str, &str, &str)] = &[\n{}\n];\n", entries.join("\n"));
    fs::write(out, code).unwrap();
}
