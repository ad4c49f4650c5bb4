//! Loading rules, on catalogues written for the test: local `$ref`s only, every problem
//! reported with its file, and a reload that fails keeps the catalogue in force.

use std::path::Path;

use civicbus_schemas::{Catalogue, Lookup, SchemaRegistry};
use serde_json::{Value, json};

fn write(dir: &Path, name: &str, doc: &Value) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, serde_json::to_string_pretty(doc).expect("json")).expect("write");
}

fn common() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://example.org/schemas/common/t/v1",
        "$defs": { "code": { "type": "string", "pattern": "^[A-Z]{2}[0-9]$" } }
    })
}

fn event(version: u32, extra_required: &[&str]) -> Value {
    let mut required = vec!["code"];
    required.extend_from_slice(extra_required);
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("https://example.org/schemas/org.example.thing.done/v{version}"),
        "title": "Thing done",
        "type": "object",
        "required": required,
        "properties": {
            "code": { "$ref": "https://example.org/schemas/common/t/v1#/$defs/code" },
            "count": { "type": "integer", "minimum": 0 }
        }
    })
}

#[test]
fn refs_resolve_across_files_and_errors_carry_pointers_and_keywords() {
    let dir = tempfile::tempdir().expect("tmp");
    write(dir.path(), "common/t.json", &common());
    write(
        dir.path(),
        "things/org.example.thing.done.v1.json",
        &event(1, &[]),
    );
    write(
        dir.path(),
        "things/org.example.thing.done.v2.json",
        &event(2, &["count"]),
    );
    // Test instances are not schemas.
    write(
        dir.path(),
        "things/examples/x/valid-1.json",
        &json!({"code": "AB1"}),
    );
    let c = Catalogue::load(&[dir.path().to_path_buf()]).expect("loads");
    assert_eq!(c.len(), 2);
    assert_eq!(c.shared().len(), 1);
    let Lookup::Found(latest) = c.lookup("org.example.thing.done", None) else {
        panic!("found")
    };
    assert_eq!(latest.version, 2, "the highest version by default");
    assert!(latest.is_valid(&json!({"code": "AB1", "count": 2})));
    let v = latest.violations(&json!({"code": "ab", "count": -1}));
    let mut got: Vec<(String, String)> = v
        .iter()
        .map(|v| (v.pointer.clone(), v.keyword.clone()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("/code".to_string(), "pattern".to_string()),
            ("/count".to_string(), "minimum".to_string())
        ]
    );
    let v = latest.violations(&json!({}));
    assert_eq!(v.len(), 2, "both missing properties: {v:?}");
    assert!(
        v.iter()
            .all(|v| v.keyword == "required" && v.pointer.is_empty())
    );
}

#[test]
fn every_bad_file_is_reported_and_nothing_is_fetched() {
    let dir = tempfile::tempdir().expect("tmp");
    write(
        dir.path(),
        "a/org.example.a.b.v1.json",
        &json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://example.org/schemas/org.example.a.b/v1",
            "properties": { "x": { "$ref": "https://example.org/elsewhere.json" } }
        }),
    );
    write(
        dir.path(),
        "a/no-id.json",
        &json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object"
        }),
    );
    write(
        dir.path(),
        "a/draft7.json",
        &json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "$id": "https://example.org/schemas/org.example.old.one/v1"
        }),
    );
    write(
        dir.path(),
        "a/bad-type.json",
        &json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://example.org/schemas/org.example.bad.type/v1",
            "type": "strnig"
        }),
    );
    std::fs::write(dir.path().join("a/broken.json"), "{ not json").expect("write");
    let errors = Catalogue::load(&[dir.path().to_path_buf()])
        .expect_err("refused")
        .0;
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let all = text.join("\n");
    for (file, what) in [
        ("org.example.a.b.v1.json", "never fetches"),
        ("no-id.json", "no absolute `$id`"),
        ("draft7.json", "`$schema` must be"),
        ("bad-type.json", "not a valid JSON Schema"),
        ("broken.json", "not valid JSON"),
    ] {
        assert!(
            text.iter().any(|t| t.contains(file) && t.contains(what)),
            "{file}: {what}\n{all}"
        );
    }
}

#[test]
fn a_failed_reload_keeps_the_catalogue_in_force() {
    let dir = tempfile::tempdir().expect("tmp");
    write(dir.path(), "common/t.json", &common());
    write(dir.path(), "org.example.thing.done.v1.json", &event(1, &[]));
    let registry = SchemaRegistry::load(vec![dir.path().to_path_buf()]).expect("loads");
    let before = registry.current();
    assert_eq!(before.len(), 1);
    std::fs::write(dir.path().join("org.example.thing.done.v2.json"), "{").expect("write");
    assert!(registry.reload().is_err());
    assert_eq!(registry.current().len(), 1, "still the old catalogue");
    write(dir.path(), "org.example.thing.done.v2.json", &event(2, &[]));
    assert_eq!(registry.reload().expect("reloads"), 2);
    assert_eq!(registry.current().len(), 2);
    assert_eq!(before.len(), 1, "a catalogue in use is never changed");
}
