//! Which upstream module types osbuild-rs knows: runnable, or validated only. The README's
//! feature table is generated from this (and a test keeps it from drifting).

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

/// The markdown table shown in the README between the `modules-table` markers.
pub fn feature_table() -> String {
    let mut out = String::from("| kind | module | status |\n|---|---|---|\n");
    for kind in ModuleKind::ALL {
        let mut names: BTreeSet<String> = schema::modules_with_schema(kind).map(str::to_owned).collect();
        if kind == ModuleKind::Stage {
            names.extend(crate::stages::registry().iter().map(|s| s.name.to_owned()));
        }
        for name in names {
            let status =
                if is_implemented(kind, &name) { "implemented" } else { "validated only (schema; cannot run yet)" };
            out.push_str(&format!("| {} | `{}` | {} |\n", kind.noun(), name, status));
        }
    }
    out
}
