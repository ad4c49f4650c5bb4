//! Hot reload: a changed file is picked up, calls in flight keep the old version, a
//! broken file keeps the old version running and says why.

use std::path::Path;
use std::sync::Arc;

use civicbus_transform_host::{LoadError, PluginSet, digest};
use serde_json::json;

use crate::common::{event, guest, host};

fn copy(from: &Path, to: &Path) {
    // Write to a temporary name and rename, as a deployment would.
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(&tmp, to).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_changed_file_is_reloaded_and_a_broken_one_keeps_the_old_version() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("enrich.wasm");
    copy(&guest("echo"), &path);
    let set = PluginSet::new(Arc::new(host()));
    set.add("enrich", &path, "{}")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(set.names(), ["enrich"]);
    assert!(set.reload_changed().is_empty(), "nothing changed yet");

    let v1 = set
        .get("enrich")
        .unwrap_or_else(|| panic!("enrich is loaded"));
    let input = event("e1", None, json!([1, 2]));
    assert_eq!(
        v1.transform(&input).map(|o| o[0].id.clone()),
        Ok("e1-echo".to_string())
    );

    // Version 2: a different component at the same path.
    copy(&guest("split"), &path);
    let split_digest = digest(&std::fs::read(guest("split")).unwrap_or_else(|e| panic!("{e}")));
    let reloaded = set.reload_changed();
    assert_eq!(reloaded.len(), 1);
    assert_eq!(reloaded[0].0, "enrich");
    assert_eq!(reloaded[0].1.as_ref().ok(), Some(&split_digest));
    let v2 = set
        .get("enrich")
        .unwrap_or_else(|| panic!("enrich is loaded"));
    assert_eq!(v2.digest(), split_digest);
    assert_eq!(v2.transform(&input).map(|o| o.len()), Ok(2));
    // A caller still holding version 1 (a call in flight) keeps using it.
    assert_eq!(
        v1.transform(&input).map(|o| o[0].id.clone()),
        Ok("e1-echo".to_string())
    );

    // A broken file: the reload fails, says why, and version 2 keeps serving.
    std::fs::write(&path, b"this is not a component").unwrap_or_else(|e| panic!("{e}"));
    let failed = set.reload_changed();
    assert_eq!(failed.len(), 1);
    assert!(
        matches!(&failed[0].1, Err(LoadError::Compile { name, .. }) if name == "enrich"),
        "{failed:?}"
    );
    let still = set
        .get("enrich")
        .unwrap_or_else(|| panic!("enrich is loaded"));
    assert_eq!(still.digest(), split_digest);
    assert_eq!(still.transform(&input).map(|o| o.len()), Ok(2));
    assert!(
        set.reload_changed().is_empty(),
        "the same broken file is not retried"
    );

    // Fixed again: picked up.
    copy(&guest("echo"), &path);
    let fixed = set.reload_changed();
    assert_eq!(fixed.len(), 1);
    assert!(fixed[0].1.is_ok(), "{fixed:?}");
    assert_eq!(
        set.get("enrich").map(|p| p.digest().to_string()),
        Some(v1.digest().to_string())
    );
}

#[test]
fn a_forbidden_plugin_never_replaces_a_good_one() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("p.wasm");
    copy(&guest("filter"), &path);
    let set = PluginSet::new(Arc::new(host()));
    set.add("p", &path, "{}").unwrap_or_else(|e| panic!("{e}"));
    let good = set.get("p").map(|p| p.digest().to_string());

    copy(&guest("forbidden-import"), &path);
    let result = set.reload_changed();
    assert!(
        matches!(&result[..], [(_, Err(LoadError::ForbiddenImport { import, .. }))] if import == "evil:net/socket"),
        "{result:?}"
    );
    assert_eq!(set.get("p").map(|p| p.digest().to_string()), good);

    assert!(set.add("q", &path, "{}").is_err(), "add refuses it too");
    assert_eq!(set.names(), ["p"]);
}
