//! The golden cases in tests/golden/fee-to-receipt (see civicbus_transform_sdk::testing).
//! Native only: the golden runner reads files.
#![cfg(not(target_arch = "wasm32"))]

#[test]
fn golden() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/golden/fee-to-receipt"
    );
    let n = civicbus_transform_sdk::testing::check_golden::<fee_to_receipt::FeeToReceipt>(dir);
    assert!(n >= 4, "only {n} cases");
}
