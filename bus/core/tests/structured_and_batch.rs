//! Specification of structured mode (`application/cloudevents+json`), batch mode
//! (`application/cloudevents-batch+json`) and the JSON depth limit.

mod common;

use bytes::Bytes;
use civicbus_core::binding::{ParseLimits, check_json_depth, parse_batch, parse_structured};
use civicbus_core::{CloudEvent, Data, EnvelopeErrorKind, ExtensionValue};
use common::{full_json, limits, minimal_json, nested_arrays, text, with};
use serde_json::{Value, json};

fn parse(v: &Value) -> CloudEvent {
    parse_structured(text(v).as_bytes(), &limits())
        .unwrap_or_else(|e| panic!("{} should parse, got {e}", text(v)))
}

#[test]
fn defaults_of_the_parse_limits() {
    let l = ParseLimits::default();
    assert_eq!(l.max_json_depth, 32);
    assert_eq!(l.max_batch_events, 100);
}

#[test]
fn minimal_event_has_only_required_attributes() {
    let ev = parse(&minimal_json());
    assert_eq!(ev.id, "P-2026-0042-issued");
    assert_eq!(ev.source, "/dysart/permitting");
    assert_eq!(ev.ty, "ca.haliburton.permitting.permit.issued");
    assert_eq!(ev.datacontenttype, None);
    assert_eq!(ev.dataschema, None);
    assert_eq!(ev.subject, None);
    assert_eq!(ev.time, None);
    assert!(ev.extensions.is_empty());
    assert_eq!(ev.data, None);
    assert_eq!(ev.tenant(), None);
    assert_eq!(ev.attribute("specversion").as_deref(), Some("1.0"));
}

#[test]
fn full_event_keeps_every_attribute_and_extension_type() {
    let ev = parse(&full_json());
    assert_eq!(ev.datacontenttype.as_deref(), Some("application/json"));
    assert_eq!(
        ev.dataschema.as_deref(),
        Some("https://schemas.civicbus.example/permitting/permit.issued/v1")
    );
    assert_eq!(ev.subject.as_deref(), Some("P-2026-0042"));
    assert_eq!(ev.time.as_deref(), Some("2026-11-25T14:03:00Z"));
    assert_eq!(ev.tenant(), Some("dysart"));
    assert_eq!(
        ev.extensions.get("traceparent"),
        Some(&ExtensionValue::String(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()
        ))
    );
    assert_eq!(
        ev.extensions.get("priority"),
        Some(&ExtensionValue::Integer(3))
    );
    assert_eq!(
        ev.extensions.get("urgent"),
        Some(&ExtensionValue::Boolean(true))
    );
    assert_eq!(ev.extensions.len(), 4);
    assert_eq!(
        ev.data,
        Some(Data::Json(json!({
            "PermitNum": "P-2026-0042",
            "StatusCurrentMapped": "Permit Issued",
            "Fee": 412.5
        })))
    );
    assert_eq!(ev.attribute("priority").as_deref(), Some("3"));
    assert_eq!(ev.attribute("urgent").as_deref(), Some("true"));
    assert_eq!(ev.attribute("missing"), None);
    assert!(ev.validate().is_ok());
}

#[test]
fn data_kinds_follow_the_content_type() {
    // (case, changes to the minimal event, expected data)
    type Case<'a> = (&'a str, Vec<(&'a str, Value)>, Option<Data>);
    let cases: Vec<Case> = vec![
        ("no data", vec![], None),
        ("null data is no data", vec![("data", Value::Null)], None),
        (
            "JSON object without content type",
            vec![("data", json!({"a": 1}))],
            Some(Data::Json(json!({"a": 1}))),
        ),
        (
            "JSON string without content type stays JSON",
            vec![("data", json!("hello"))],
            Some(Data::Json(json!("hello"))),
        ),
        (
            "JSON string with a JSON content type stays JSON",
            vec![
                ("datacontenttype", json!("application/json")),
                ("data", json!("hello")),
            ],
            Some(Data::Json(json!("hello"))),
        ),
        (
            "JSON array with a +json content type",
            vec![
                ("datacontenttype", json!("application/geo+json")),
                ("data", json!([1, 2])),
            ],
            Some(Data::Json(json!([1, 2]))),
        ),
        (
            "string with a text content type is text",
            vec![
                ("datacontenttype", json!("text/plain; charset=utf-8")),
                ("data", json!("Permit issued")),
            ],
            Some(Data::Text("Permit issued".into())),
        ),
        (
            "string with an XML content type is text",
            vec![
                ("datacontenttype", json!("application/xml")),
                ("data", json!("<permit/>")),
            ],
            Some(Data::Text("<permit/>".into())),
        ),
        (
            "data_base64 is binary",
            vec![
                ("datacontenttype", json!("application/pdf")),
                ("data_base64", json!("JVBERi0xLjc=")),
            ],
            Some(Data::Binary(Bytes::from_static(b"%PDF-1.7"))),
        ),
        (
            "data_base64 without content type is binary",
            vec![("data_base64", json!("AAEC/w=="))],
            Some(Data::Binary(Bytes::from_static(&[0, 1, 2, 255]))),
        ),
        (
            "empty data_base64 is empty binary",
            vec![("data_base64", json!(""))],
            Some(Data::Binary(Bytes::new())),
        ),
    ];
    for (case, changes, expected) in cases {
        let ev = parse(&with(minimal_json(), &changes));
        assert_eq!(ev.data, expected, "{case}");
    }
}

#[test]
fn explicit_null_beside_the_other_data_member_is_ignored() {
    let cases = [
        json!({"data": null, "data_base64": "AQI="}),
        json!({"data": {"a": 1}, "data_base64": null}),
    ];
    let expected = [
        Some(Data::Binary(Bytes::from_static(&[1, 2]))),
        Some(Data::Json(json!({"a": 1}))),
    ];
    for (extra, expected) in cases.into_iter().zip(expected) {
        let Value::Object(extra) = extra else {
            unreachable!()
        };
        let mut v = minimal_json();
        v.as_object_mut().expect("object").extend(extra);
        assert_eq!(parse(&v).data, expected, "{}", text(&v));
    }
}

#[test]
fn null_optional_attributes_and_extensions_are_absent() {
    let mut v = minimal_json();
    let m = v.as_object_mut().expect("object");
    for k in [
        "subject",
        "time",
        "dataschema",
        "datacontenttype",
        "partitionkey",
    ] {
        m.insert(k.into(), Value::Null);
    }
    let ev = parse(&v);
    assert_eq!(ev.subject, None);
    assert_eq!(ev.time, None);
    assert_eq!(ev.dataschema, None);
    assert_eq!(ev.datacontenttype, None);
    assert!(ev.extensions.is_empty());
}

#[test]
fn integer_extensions_cover_the_32_bit_range() {
    for n in [0_i64, -1, 2_147_483_647, -2_147_483_648] {
        let ev = parse(&with(minimal_json(), &[("seq", json!(n))]));
        assert_eq!(ev.extensions.get("seq"), Some(&ExtensionValue::Integer(n)));
    }
    for n in [2_147_483_648_i64, -2_147_483_649] {
        let v = with(minimal_json(), &[("seq", json!(n))]);
        let err = parse_structured(text(&v).as_bytes(), &limits()).expect_err("out of range");
        assert_eq!(err.kind, EnvelopeErrorKind::InvalidAttribute);
        assert_eq!(err.field, "seq");
    }
}

#[test]
fn accepted_attribute_values() {
    // Values at the edge of what CloudEvents allows, each of which must parse.
    let cases: Vec<(&str, Value)> = vec![
        ("time", json!("2026-11-25T14:03:00.123456789-05:00")),
        ("time", json!("2026-11-25T14:03:00+00:00")),
        ("dataschema", json!("urn:civicbus:schema:permit.issued:v1")),
        ("dataschema", json!("https://schemas.example/a?b=c#d")),
        (
            "datacontenttype",
            json!("application/vnd.esri.featureset+json"),
        ),
        (
            "datacontenttype",
            json!("text/csv; charset=utf-8; header=present"),
        ),
        ("source", json!("https://permits.dysart.example/api")),
        (
            "source",
            json!("urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66"),
        ),
        ("id", json!("é-unicode-ok")),
        ("subject", json!("ARN 4601 010 020 12345 0000")),
        ("dataref", json!("https://files.example/big.pdf")),
        ("a1", json!("digits in an extension name")),
        ("emptystring", json!("")),
    ];
    for (attr, value) in cases {
        let v = with(minimal_json(), &[(attr, value.clone())]);
        let ev = parse(&v);
        assert_eq!(
            ev.attribute(attr).as_deref(),
            value.as_str(),
            "{attr} = {value}"
        );
    }
}

#[test]
fn structured_round_trip_through_to_json() {
    let events = [
        minimal_json(),
        full_json(),
        with(
            minimal_json(),
            &[
                ("datacontenttype", json!("text/plain")),
                ("data", json!("hello")),
            ],
        ),
        with(
            minimal_json(),
            &[
                ("datacontenttype", json!("application/octet-stream")),
                ("data_base64", json!("AAEC/w==")),
            ],
        ),
    ];
    for v in events {
        let ev = parse(&v);
        assert_eq!(ev.to_json(), v, "to_json reproduces the input");
        let again = parse_structured(&ev.to_structured_bytes(), &limits()).expect("reparses");
        assert_eq!(again, ev);
    }
}

#[test]
fn attributes_lists_core_attributes_first_then_extensions() {
    let ev = parse(&full_json());
    let names: Vec<String> = ev.attributes().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        names,
        [
            "id",
            "source",
            "specversion",
            "type",
            "datacontenttype",
            "dataschema",
            "subject",
            "time",
            "priority",
            "tenant",
            "traceparent",
            "urgent"
        ]
    );
}

#[test]
fn attribute_and_attribute_str_agree() {
    let ev = parse(&full_json());
    for name in [
        "id",
        "source",
        "specversion",
        "type",
        "datacontenttype",
        "dataschema",
        "subject",
        "time",
        "tenant",
        "priority",
        "urgent",
        "data",
        "missing",
    ] {
        assert_eq!(
            ev.attribute_str(name).map(|c| c.into_owned()),
            ev.attribute(name),
            "{name}"
        );
    }
    assert_eq!(ev.attribute("data"), None, "data is not an attribute");
}

#[test]
fn set_tenant_overwrites_a_claimed_tenant() {
    let mut ev = parse(&full_json());
    ev.set_tenant("county");
    assert_eq!(ev.tenant(), Some("county"));
    ev.extensions
        .insert("tenant".into(), ExtensionValue::Integer(1));
    assert_eq!(ev.tenant(), None, "a non-string tenant is no tenant");
}

#[test]
fn new_validates_the_required_attributes() {
    let ev =
        CloudEvent::new("1", "/county/gis", "ca.haliburton.gis.parcel.updated").expect("valid");
    assert_eq!(ev.ty, "ca.haliburton.gis.parcel.updated");
    for (id, source, ty, field) in [
        ("", "/s", "t", "id"),
        ("1", "", "t", "source"),
        ("1", "/s", "", "type"),
        ("1", "/a b", "t", "source"),
    ] {
        let err = CloudEvent::new(id, source, ty).expect_err("invalid");
        assert_eq!(err.field, field);
        assert_eq!(err.kind, EnvelopeErrorKind::InvalidAttribute);
    }
}

// ---------------------------------------------------------------------------------------
// Batch mode
// ---------------------------------------------------------------------------------------

fn batch_of(n: usize) -> String {
    let events: Vec<Value> = (0..n)
        .map(|i| with(minimal_json(), &[("id", json!(format!("ev-{i}")))]))
        .collect();
    text(&Value::Array(events))
}

#[test]
fn empty_batch_is_valid_and_yields_no_events() {
    for body in ["[]", " [ ] ", "\n[\n]\n"] {
        let events = parse_batch(body.as_bytes(), &limits()).expect("empty batch is fine");
        assert!(events.is_empty(), "{body:?}");
    }
}

#[test]
fn batch_keeps_the_order_of_events() {
    let events = parse_batch(batch_of(5).as_bytes(), &limits()).expect("valid batch");
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["ev-0", "ev-1", "ev-2", "ev-3", "ev-4"]);
}

#[test]
fn batch_size_limit_is_inclusive() {
    let small = ParseLimits {
        max_batch_events: 3,
        ..ParseLimits::default()
    };
    assert_eq!(
        parse_batch(batch_of(3).as_bytes(), &small)
            .expect("at the limit")
            .len(),
        3
    );
    let err = parse_batch(batch_of(4).as_bytes(), &small).expect_err("over the limit");
    assert_eq!(err.kind, EnvelopeErrorKind::InvalidBatch);
    assert_eq!(err.field, "");
    assert!(err.message.contains("4 events"), "{err}");
    assert!(err.message.contains("limit of 3"), "{err}");

    let default_max = ParseLimits::default().max_batch_events;
    assert!(parse_batch(batch_of(default_max).as_bytes(), &limits()).is_ok());
    assert!(parse_batch(batch_of(default_max + 1).as_bytes(), &limits()).is_err());
}

#[test]
fn batch_errors_name_the_position_and_the_field() {
    let good = minimal_json();
    // (case, the batch, expected kind, expected field)
    let cases: Vec<(&str, Value, EnvelopeErrorKind, &str)> = vec![
        (
            "first event lacks a source",
            json!([with(good.clone(), &[("source", Value::Null)])]),
            EnvelopeErrorKind::MissingAttribute,
            "[0].source",
        ),
        (
            "third event has a bad time",
            json!([good, good, with(good.clone(), &[("time", json!("noon"))])]),
            EnvelopeErrorKind::InvalidAttribute,
            "[2].time",
        ),
        (
            "second entry is not an object",
            json!([good, 42]),
            EnvelopeErrorKind::MalformedJson,
            "[1]",
        ),
        (
            "second entry is a nested batch",
            json!([good, [good]]),
            EnvelopeErrorKind::MalformedJson,
            "[1]",
        ),
        (
            "bad extension name in the second event",
            json!([good, with(good.clone(), &[("Bad", json!("x"))])]),
            EnvelopeErrorKind::InvalidAttribute,
            "[1].Bad",
        ),
        (
            "wrong specversion in the first event",
            json!([with(good.clone(), &[("specversion", json!("0.3"))]), good]),
            EnvelopeErrorKind::InvalidAttribute,
            "[0].specversion",
        ),
        (
            "a single object is not a batch",
            good.clone(),
            EnvelopeErrorKind::InvalidBatch,
            "",
        ),
    ];
    for (case, batch, kind, field) in cases {
        let err = parse_batch(text(&batch).as_bytes(), &limits()).expect_err(case);
        assert_eq!(
            (err.kind, err.field.as_str()),
            (kind, field),
            "{case}: {err}"
        );
    }
}

#[test]
fn the_first_bad_event_of_a_batch_is_reported() {
    let bad = with(minimal_json(), &[("id", json!(""))]);
    let batch = json!([minimal_json(), bad, bad]);
    let err = parse_batch(text(&batch).as_bytes(), &limits()).expect_err("invalid");
    assert_eq!(err.field, "[1].id");
}

// ---------------------------------------------------------------------------------------
// JSON depth
// ---------------------------------------------------------------------------------------

#[test]
fn json_depth_is_checked_without_parsing() {
    // (case, body, max depth, accepted)
    let cases: Vec<(&str, String, usize, bool)> = vec![
        ("scalar has depth 0", "1".into(), 0, true),
        ("one array at limit 1", "[]".into(), 1, true),
        ("one array over limit 0", "[]".into(), 0, false),
        ("exactly at the limit", nested_arrays(5), 5, true),
        ("one deeper than the limit", nested_arrays(6), 5, false),
        (
            "objects count like arrays",
            r#"{"a":{"b":{"c":1}}}"#.into(),
            3,
            true,
        ),
        (
            "objects over the limit",
            r#"{"a":{"b":{"c":{}}}}"#.into(),
            3,
            false,
        ),
        (
            "siblings do not add up",
            "[[1],[2],[3],[4]]".into(),
            2,
            true,
        ),
        (
            "brackets inside strings do not count",
            r#"["[[[[[[{{{{{{"]"#.into(),
            1,
            true,
        ),
        (
            "an escaped quote does not end the string",
            r#"["\"[[[[[["]"#.into(),
            1,
            true,
        ),
        (
            "an escaped backslash does end the string",
            r#"["\\",[[1]]]"#.into(),
            2,
            false,
        ),
        (
            "closing brackets inside strings do not lower the depth",
            r#"["]]]]",[[1]]]"#.into(),
            2,
            false,
        ),
    ];
    for (case, body, max, accepted) in cases {
        let result = check_json_depth(body.as_bytes(), max, "data");
        assert_eq!(result.is_ok(), accepted, "{case}: {body}");
        if let Err(e) = result {
            assert_eq!(e.kind, EnvelopeErrorKind::TooDeep, "{case}");
            assert_eq!(e.field, "data", "{case}");
        }
    }
}

#[test]
fn structured_depth_limit_counts_the_envelope() {
    let limits = ParseLimits {
        max_json_depth: 5,
        ..ParseLimits::default()
    };
    // The envelope object is level 1, so data may nest 4 more levels.
    let body = |data_depth: usize| {
        let mut v = text(&minimal_json());
        v.pop();
        format!("{v},\"data\":{}}}", nested_arrays(data_depth))
    };
    assert!(parse_structured(body(4).as_bytes(), &limits).is_ok());
    let err = parse_structured(body(5).as_bytes(), &limits).expect_err("too deep");
    assert_eq!(err.kind, EnvelopeErrorKind::TooDeep);
    assert_eq!(err.field, "");

    let deep_string = with(minimal_json(), &[("subject", json!("[".repeat(100)))]);
    assert!(parse_structured(text(&deep_string).as_bytes(), &limits).is_ok());
}

#[test]
fn batch_depth_limit_counts_the_array() {
    let limits = ParseLimits {
        max_json_depth: 3,
        ..ParseLimits::default()
    };
    let data = |d: usize| {
        let mut v = text(&minimal_json());
        v.pop();
        format!("[{v},\"data\":{}}}]", nested_arrays(d))
    };
    assert!(parse_batch(data(1).as_bytes(), &limits).is_ok());
    let err = parse_batch(data(2).as_bytes(), &limits).expect_err("too deep");
    assert_eq!(err.kind, EnvelopeErrorKind::TooDeep);
}
