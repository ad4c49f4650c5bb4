//! The golden cases in tests/golden/workorder-to-journal (see civicbus_transform_sdk::testing).
//! Native only: the golden runner reads files.
#![cfg(not(target_arch = "wasm32"))]

#[test]
fn golden() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/golden/workorder-to-journal"
    );
    let n = civicbus_transform_sdk::testing::check_golden::<workorder_to_journal::WorkorderToJournal>(
        dir,
    );
    assert!(n >= 3, "only {n} cases");
}
