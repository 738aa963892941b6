//! Which pipelines a build needs, in the order to build them (upstream's depsolve), and
//! which stages `--checkpoint` patterns select.

use crate::manifest::{Manifest, Pipeline};
use crate::store::ObjectStore;
use std::collections::HashSet;

/// Pipelines that must be built for `targets` (names or ids), dependencies first;
/// pipelines (or, within one, the tail after a cached stage) the store has are skipped.
pub fn plan<'a>(m: &'a Manifest, targets: &[String], store: &ObjectStore) -> Vec<&'a Pipeline> {
    let mut check: Vec<&Pipeline> = targets.iter().filter_map(|t| m.get(t)).collect();
    let mut order: Vec<&Pipeline> = Vec::new();
    while let Some(p) = check.pop() {
        let Some(pid) = p.id() else { continue };
        if store.contains(pid) {
            continue;
        }
        // Seen again: move to the end, so after reversal it is built earlier still.
        order.retain(|q| !std::ptr::eq(*q, p));
        order.push(p);
        if let Some(b) = p.build.as_deref().and_then(|b| m.get(b)) {
            check.push(b);
        }
        for s in p.stages.iter().rev() {
            if store.contains(&s.id) {
                break;
            }
            check.extend(s.pipeline_dependencies().filter_map(|d| m.get(d)));
        }
    }
    order.reverse();
    order
}

/// Upstream's `mark_checkpoints`: fnmatch-style globs over pipeline names (selecting the
/// last stage), stage ids and stage types. Returns the selected stage ids.
pub fn mark_checkpoints(m: &Manifest, patterns: &[String]) -> HashSet<String> {
    let pats: Vec<glob::Pattern> = patterns.iter().filter_map(|p| glob::Pattern::new(p).ok()).collect();
    let matching = |s: &str| pats.iter().any(|p| p.matches(s));
    let mut selected = HashSet::new();
    for p in &m.pipelines {
        let Some(last) = p.stages.last() else { continue };
        if matching(&p.name) {
            selected.insert(last.id.clone());
        }
        for s in &p.stages {
            if matching(&s.id) || matching(&s.kind) {
                selected.insert(s.id.clone());
            }
        }
    }
    selected
}
