//! The shipped catalogue: it loads and compiles, covers every event type of the domain
//! notes, documents every property, and its test instances behave: every `valid-*`
//! validates and every `invalid-*` does not (and says why).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use civicbus_schemas::registry::builtin_dir;
use civicbus_schemas::{Catalogue, Lookup};
use serde_json::Value;

/// The event types the catalogue must cover (the domain notes' lists).
const REQUIRED_TYPES: &[&str] = &[
    "ca.haliburton.permitting.permit.application-submitted",
    "ca.haliburton.permitting.permit.status-changed",
    "ca.haliburton.permitting.permit.fee-assessed",
    "ca.haliburton.permitting.permit.issued",
    "ca.haliburton.permitting.permit.closed",
    "ca.haliburton.permitting.inspection.scheduled",
    "ca.haliburton.permitting.inspection.resulted",
    "ca.haliburton.servicerequest.submitted",
    "ca.haliburton.servicerequest.updated",
    "ca.haliburton.servicerequest.closed",
    "ca.haliburton.gis.address.created",
    "ca.haliburton.gis.address.updated",
    "ca.haliburton.gis.address.retired",
    "ca.haliburton.gis.parcel.updated",
    "ca.haliburton.gis.parcel.merged",
    "ca.haliburton.gis.parcel.split",
    "ca.haliburton.gis.asset.edited",
    "ca.haliburton.finance.expenseclaim.submitted",
    "ca.haliburton.finance.expenseclaim.approved",
    "ca.haliburton.finance.expenseclaim.rejected",
    "ca.haliburton.finance.invoice.received",
    "ca.haliburton.finance.payment.issued",
    "ca.haliburton.finance.payment.settled",
    "ca.haliburton.finance.journal.posted",
    "ca.haliburton.finance.permitfee.receipted",
    "ca.haliburton.records.record.declared",
    "ca.haliburton.records.record.reclassified",
    "ca.haliburton.records.hold.applied",
    "ca.haliburton.records.hold.released",
    "ca.haliburton.records.disposition.due",
    "ca.haliburton.records.record.destroyed",
    "ca.haliburton.workorder.created",
    "ca.haliburton.workorder.completed",
    "ca.haliburton.asset.condition.assessed",
];

fn catalogue() -> Catalogue {
    Catalogue::load(&[builtin_dir()]).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_domain_event_type_has_a_schema() {
    let c = catalogue();
    let have: BTreeSet<&str> = c.schemas().map(|s| s.ty.as_str()).collect();
    let missing: Vec<&&str> = REQUIRED_TYPES
        .iter()
        .filter(|t| !have.contains(**t))
        .collect();
    assert!(missing.is_empty(), "no schema for {missing:?}");
}

#[test]
fn files_are_named_after_their_id() {
    for s in catalogue().schemas() {
        let name = s
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert_eq!(
            name,
            format!("{}.v{}.json", s.ty, s.version),
            "{}",
            s.path.display()
        );
        assert_eq!(
            s.id,
            format!(
                "https://civicbus.haliburton.ca/schemas/{}/v{}",
                s.ty, s.version
            )
        );
    }
}

/// Every schema object that declares `properties`: each property has a title and a
/// description (a bare `$ref` does not count). Walks subschemas by keyword, so a property
/// that happens to be named `properties` (GeoJSON) is not taken for the keyword.
fn undocumented(schema: &Value, at: &str, out: &mut Vec<String>) {
    let Value::Object(map) = schema else { return };
    if let Some(Value::Object(props)) = map.get("properties") {
        for (name, prop) in props {
            for key in ["title", "description"] {
                if prop
                    .get(key)
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    out.push(format!("{at}/properties/{name} has no {key}"));
                }
            }
        }
    }
    for (k, v) in map {
        let here = format!("{at}/{k}");
        match k.as_str() {
            "properties" | "$defs" | "definitions" | "patternProperties" | "dependentSchemas" => {
                if let Value::Object(subs) = v {
                    for (name, sub) in subs {
                        undocumented(sub, &format!("{here}/{name}"), out);
                    }
                }
            }
            "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                if let Value::Array(subs) = v {
                    for (i, sub) in subs.iter().enumerate() {
                        undocumented(sub, &format!("{here}/{i}"), out);
                    }
                }
            }
            "items"
            | "not"
            | "if"
            | "then"
            | "else"
            | "additionalProperties"
            | "contains"
            | "propertyNames"
            | "unevaluatedItems"
            | "unevaluatedProperties" => {
                undocumented(v, &here, out);
            }
            _ => {}
        }
    }
}

#[test]
fn every_schema_and_property_is_documented_with_examples() {
    let mut problems = Vec::new();
    for s in catalogue().schemas() {
        let file = s.path.display().to_string();
        for key in ["title", "description"] {
            if s.schema
                .get(key)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                problems.push(format!("{file}: no {key}"));
            }
        }
        match s.schema.get("examples").and_then(Value::as_array) {
            Some(examples) if !examples.is_empty() => {
                for (i, ex) in examples.iter().enumerate() {
                    let v = s.violations(ex);
                    if !v.is_empty() {
                        problems.push(format!("{file}: examples[{i}] is invalid: {v:?}"));
                    }
                }
            }
            _ => problems.push(format!("{file}: no examples")),
        }
        let mut missing = Vec::new();
        undocumented(&s.schema, "", &mut missing);
        problems.extend(missing.into_iter().map(|m| format!("{file}: {m}")));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn example_dir(schema_path: &Path, ty: &str, version: u32) -> PathBuf {
    schema_path
        .parent()
        .unwrap_or(Path::new("."))
        .join("examples")
        .join(format!("{ty}.v{version}"))
}

#[test]
fn valid_instances_validate_and_invalid_ones_do_not() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for s in catalogue().schemas() {
        let dir = example_dir(&s.path, &s.ty, s.version);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            problems.push(format!("{}: no test instances", dir.display()));
            continue;
        };
        let (mut valid, mut invalid) = (0, 0);
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let Ok(data) = serde_json::from_str::<Value>(&text) else {
                problems.push(format!("{}: not JSON", path.display()));
                continue;
            };
            let violations = s.violations(&data);
            checked += 1;
            if name.starts_with("valid-") {
                valid += 1;
                if !violations.is_empty() {
                    problems.push(format!(
                        "{}: should validate: {violations:?}",
                        path.display()
                    ));
                }
            } else if name.starts_with("invalid-") {
                invalid += 1;
                if violations.is_empty() {
                    problems.push(format!("{}: should not validate", path.display()));
                }
                for v in &violations {
                    assert!(!v.keyword.is_empty() && !v.message.is_empty(), "{v:?}");
                }
            } else {
                problems.push(format!("{}: name it valid-* or invalid-*", path.display()));
            }
        }
        if valid == 0 || invalid == 0 {
            problems.push(format!(
                "{}: needs at least one valid-* and one invalid-* instance",
                dir.display()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked >= REQUIRED_TYPES.len() * 2);
}

#[test]
fn lookups_by_dataschema_and_type() {
    let c = catalogue();
    let ty = "ca.haliburton.permitting.permit.issued";
    let id = format!("https://civicbus.haliburton.ca/schemas/{ty}/v1");
    assert!(matches!(c.lookup(ty, None), Lookup::Found(s) if s.id == id));
    assert!(matches!(c.lookup(ty, Some(&id)), Lookup::Found(s) if s.id == id));
    match c.lookup(ty, Some("https://example.org/permit.json")) {
        Lookup::UnknownSchema { known, .. } => assert_eq!(known, std::slice::from_ref(&id)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c.lookup("ca.haliburton.permitting.permit.closed", Some(&id)),
        Lookup::OtherType { .. }
    ));
    match c.lookup("ca.haliburton.permitting.permit.isued", None) {
        Lookup::UnknownType { closest } => {
            assert_eq!(closest.first().map(String::as_str), Some(ty));
        }
        other => panic!("{other:?}"),
    }
    match c.lookup("org.example.nothing.like.it", None) {
        Lookup::UnknownType { closest } => assert!(closest.is_empty(), "{closest:?}"),
        other => panic!("{other:?}"),
    }
}
