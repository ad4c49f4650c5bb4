//! Shared fixtures of the civicbus-core specification tests: sample events and limits.
#![allow(dead_code)]

use civicbus_core::binding::ParseLimits;
use serde_json::{Value, json};

/// The limits every test parses with unless it says otherwise (the documented defaults).
pub fn limits() -> ParseLimits {
    ParseLimits::default()
}

/// A valid structured event with only the required attributes.
pub fn minimal_json() -> Value {
    json!({
        "specversion": "1.0",
        "id": "P-2026-0042-issued",
        "source": "/dysart/permitting",
        "type": "ca.haliburton.permitting.permit.issued",
    })
}

/// A valid structured event with every optional attribute, three extension types and JSON
/// data.
pub fn full_json() -> Value {
    json!({
        "specversion": "1.0",
        "id": "P-2026-0042-issued",
        "source": "/dysart/permitting",
        "type": "ca.haliburton.permitting.permit.issued",
        "datacontenttype": "application/json",
        "dataschema": "https://schemas.civicbus.example/permitting/permit.issued/v1",
        "subject": "P-2026-0042",
        "time": "2026-11-25T14:03:00Z",
        "tenant": "dysart",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "priority": 3,
        "urgent": true,
        "data": { "PermitNum": "P-2026-0042", "StatusCurrentMapped": "Permit Issued", "Fee": 412.5 },
    })
}

/// `base` with `changes` applied: a `null` change removes the key, anything else sets it.
pub fn with(base: Value, changes: &[(&str, Value)]) -> Value {
    let Value::Object(mut map) = base else {
        panic!("fixture must be a JSON object");
    };
    for (k, v) in changes {
        if v.is_null() {
            map.remove(*k);
        } else {
            map.insert((*k).to_string(), v.clone());
        }
    }
    Value::Object(map)
}

/// The JSON text of a value.
pub fn text(v: &Value) -> String {
    serde_json::to_string(v).expect("fixture serialises")
}

/// `depth` nested JSON arrays around `1`, e.g. depth 2 is `[[1]]`.
pub fn nested_arrays(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}
