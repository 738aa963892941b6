//! The README's module table is generated from the code; this fails when it drifts.
//! Regenerate with: osbuild-rs __modules-table (and paste between the markers).

#[test]
fn readme_module_table_matches_the_code() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start =
        readme.find("<!-- modules-table:start -->\n").expect("start marker") + "<!-- modules-table:start -->\n".len();
    let end = readme.find("<!-- modules-table:end -->").expect("end marker");
    let table = osbuild_rs::inventory::feature_table();
    assert_eq!(&readme[start..end], table, "README module table is stale: run `osbuild-rs __modules-table`");
    assert!(table.contains("| stage | `org.osbuild.noop` | native | equal |"), "the noop stage is native and equal");
}
