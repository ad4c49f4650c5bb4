//! The golden cases in tests/golden/split-batch (see civicbus_transform_sdk::testing).
//! Native only: the golden runner reads files.
#![cfg(not(target_arch = "wasm32"))]

#[test]
fn golden() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/golden/split-batch");
    let n = civicbus_transform_sdk::testing::check_golden::<split_batch::SplitBatch>(dir);
    assert!(n >= 4, "only {n} cases");
}
