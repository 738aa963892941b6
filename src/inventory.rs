//! Which upstream module types osbuild-rs knows: native, run from `--libdir`, or validated only,
//! and how each compares with upstream. The README's module table is generated from this (and a
//! test keeps it from drifting).

use crate::schema::{self, ModuleKind};
use std::collections::BTreeSet;

pub fn is_implemented(kind: ModuleKind, name: &str) -> bool {
    match kind {
        ModuleKind::Stage => crate::stages::find(name).is_some(),
        ModuleKind::Source => crate::sources::is_supported(name),
        ModuleKind::Input => crate::engine::input_supported(name),
        ModuleKind::Device => crate::engine::device_supported(name),
        ModuleKind::Mount => crate::engine::mount_supported(name),
        ModuleKind::Assembler => crate::stages::assemblers::find(name).is_some(),
    }
}

/// How native stages compare with upstream's, measured by `tests/differential.rs` (which fails
/// when this table and its measurement disagree): `stage<TAB>equal|differs|varies|not-run<TAB>reason`.
const DIFFERENTIAL: &str = include_str!("../tests/data/differential.tsv");
/// Upstream stages run from `--libdir` and compared with upstream by `tests/external.rs` (same format).
const EXTERNAL: &str = include_str!("../tests/data/external.tsv");

/// The differential status of `stage` as the README shows it.
fn versus_upstream(stage: &str) -> Option<String> {
    DIFFERENTIAL.lines().chain(EXTERNAL.lines()).find_map(|line| {
        let mut cols = line.splitn(3, '\t');
        if cols.next()? != stage {
            return None;
        }
        let (status, reason) = (cols.next()?, cols.next().unwrap_or("").trim());
        Some(match (status, reason) {
            ("equal", "") => "equal".to_owned(),
            ("equal", r) => format!("equal ({r})"),
            ("differs", r) => format!("differs: {r}"),
            ("varies", r) => format!("equal or not, by the clock: {r}"),
            (_, r) => format!("not compared: {r}"),
        })
    })
}

/// The markdown table shown in the README between the `modules-table` markers.
pub fn feature_table() -> String {
    let mut out = String::from("| kind | module | osbuild-rs | vs upstream |\n|---|---|---|---|\n");
    for kind in ModuleKind::ALL {
        let mut names: BTreeSet<String> = schema::modules_with_schema(kind).map(str::to_owned).collect();
        if kind == ModuleKind::Stage {
            names.extend(crate::stages::registry().iter().map(|s| s.name.to_owned()));
        }
        for name in names {
            let runs = if is_implemented(kind, &name) {
                "native"
            } else if matches!(kind, ModuleKind::Stage | ModuleKind::Assembler) {
                "`--libdir`"
            } else {
                "schema only"
            };
            let versus = if kind == ModuleKind::Stage { versus_upstream(&name) } else { None };
            let versus = versus.unwrap_or_else(|| "—".to_owned()).replace('|', "\\|");
            out.push_str(&format!("| {} | `{}` | {} | {} |\n", kind.noun(), name, runs, versus));
        }
    }
    out
}
