//! The golden cases in tests/golden/esri-to-address (see civicbus_transform_sdk::testing).
//! Native only: the golden runner reads files.
#![cfg(not(target_arch = "wasm32"))]

#[test]
fn golden() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/golden/esri-to-address"
    );
    let n = civicbus_transform_sdk::testing::check_golden::<esri_to_address::EsriToAddress>(dir);
    assert!(n >= 4, "only {n} cases");
}
