//! The golden cases in tests/golden/permit-to-record (see civicbus_transform_sdk::testing).
//! Native only: the golden runner reads files.
#![cfg(not(target_arch = "wasm32"))]

#[test]
fn golden() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/golden/permit-to-record"
    );
    let n = civicbus_transform_sdk::testing::check_golden::<permit_to_record::PermitToRecord>(dir);
    assert!(n >= 3, "only {n} cases");
}
