//! Specification of events on RabbitMQ: binary mode with every accepted header prefix,
//! `wire::from_amqp` on structured and binary messages, and the `to_amqp` → `from_amqp`
//! round trip.

mod common;

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;
use civicbus_core::binding::{HeaderPrefixes, parse_binary, parse_structured};
use civicbus_core::envelope::STRUCTURED_CONTENT_TYPE;
use civicbus_core::ports::{Acker, InboundMessage, PortError};
use civicbus_core::wire::{AMQP_HEADER_PREFIX, from_amqp, to_amqp};
use civicbus_core::{CloudEvent, Data, EnvelopeError, EnvelopeErrorKind, ExtensionValue};
use common::{full_json, limits, text};
use serde_json::json;

/// An acker that does nothing: these tests never settle messages.
struct NoopAcker;

#[async_trait]
impl Acker for NoopAcker {
    async fn ack(&self) -> Result<(), PortError> {
        Ok(())
    }
    async fn nack(&self, _requeue: bool) -> Result<(), PortError> {
        Ok(())
    }
}

fn inbound(content_type: Option<&str>, headers: &[(&str, &str)], body: &[u8]) -> InboundMessage {
    InboundMessage {
        body: Bytes::copy_from_slice(body),
        content_type: content_type.map(str::to_string),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
        user_id: Some("dysart".into()),
        message_id: None,
        redelivered: false,
        delivery_count: 0,
        acker: Box::new(NoopAcker),
    }
}

fn amqp(
    headers: &[(&str, &str)],
    content_type: Option<&str>,
    body: &[u8],
) -> Result<CloudEvent, EnvelopeError> {
    parse_binary(
        headers.iter().copied(),
        HeaderPrefixes::Amqp,
        content_type,
        body,
        &limits(),
    )
}

fn required_with(prefix: &str) -> Vec<(String, String)> {
    [
        ("specversion", "1.0"),
        ("id", "ROLL-4601-010-020-12345"),
        ("source", "/county/assessment"),
        ("type", "ca.haliburton.gis.parcel.updated"),
        ("tenant", "county"),
        ("subject", "4601-010-020-12345"),
    ]
    .iter()
    .map(|(a, v)| (format!("{prefix}{a}"), (*v).to_string()))
    .collect()
}

#[test]
fn every_accepted_prefix_in_any_case() {
    let prefixes = [
        "cloudEvents_",
        "cloudEvents:",
        "ce-",
        "ce_",
        "cloudevents_",
        "CLOUDEVENTS:",
        "CloudEvents_",
        "CE-",
        "Ce_",
        "cE_",
    ];
    for prefix in prefixes {
        let headers = required_with(prefix);
        let ev = parse_binary(
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            HeaderPrefixes::Amqp,
            Some("application/json"),
            br#"{"RollNumber":"4601-010-020-12345"}"#,
            &limits(),
        )
        .unwrap_or_else(|e| panic!("prefix {prefix}: {e}"));
        assert_eq!(ev.id, "ROLL-4601-010-020-12345", "{prefix}");
        assert_eq!(ev.source, "/county/assessment", "{prefix}");
        assert_eq!(ev.ty, "ca.haliburton.gis.parcel.updated", "{prefix}");
        assert_eq!(
            ev.subject.as_deref(),
            Some("4601-010-020-12345"),
            "{prefix}"
        );
        assert_eq!(ev.tenant(), Some("county"), "{prefix}");
        assert_eq!(
            ev.data,
            Some(Data::Json(json!({"RollNumber": "4601-010-020-12345"}))),
            "{prefix}"
        );
    }
}

#[test]
fn prefixes_may_be_mixed_within_one_message() {
    let ev = amqp(
        &[
            ("cloudEvents:specversion", "1.0"),
            ("cloudEvents_id", "1"),
            ("ce-source", "/highlands-east/records"),
            ("ce_type", "ca.haliburton.records.document.filed"),
            ("CE_partitionkey", "F-2026-17"),
            ("x-civicbus-actor", "highlands-east"),
        ],
        None,
        b"",
    )
    .expect("valid");
    assert_eq!(ev.source, "/highlands-east/records");
    assert_eq!(ev.ty, "ca.haliburton.records.document.filed");
    assert_eq!(
        ev.extensions.keys().collect::<Vec<_>>(),
        ["partitionkey"],
        "non-CloudEvents headers are ignored"
    );
}

#[test]
fn amqp_header_values_are_not_percent_decoded() {
    let ev = amqp(
        &[
            ("ce_specversion", "1.0"),
            ("ce_id", "1"),
            ("ce_source", "/s"),
            ("ce_type", "t"),
            ("ce_subject", "Dysart%20et%20al"),
            ("ce_note", "%FF stays as sent"),
        ],
        None,
        b"",
    )
    .expect("valid");
    assert_eq!(ev.subject.as_deref(), Some("Dysart%20et%20al"));
    assert_eq!(ev.attribute("note").as_deref(), Some("%FF stays as sent"));
}

#[test]
fn duplicate_attributes_through_two_prefixes_are_rejected() {
    // (first header, second header): the error names the second and mentions the first.
    let pairs = [
        ("cloudEvents_id", "ce_id"),
        ("cloudEvents:id", "cloudEvents_id"),
        ("ce-id", "ce_id"),
        ("ce_id", "CE-ID"),
        ("cloudEvents_tenant", "ce-tenant"),
        ("ce_subject", "cloudEvents:subject"),
    ];
    for (first, second) in pairs {
        let mut headers = vec![
            ("cloudEvents_specversion", "1.0"),
            ("cloudEvents_source", "/s"),
            ("cloudEvents_type", "t"),
        ];
        if !first.ends_with("id") && !first.ends_with("ID") {
            headers.push(("cloudEvents_id", "1"));
        }
        headers.push((first, "a"));
        headers.push((second, "b"));
        let err = amqp(&headers, None, b"").expect_err(second);
        assert_eq!(err.kind, EnvelopeErrorKind::InvalidAttribute, "{second}");
        assert_eq!(err.field, second);
        assert!(err.message.contains(first), "{err}");
    }
}

#[test]
fn content_type_property_or_datacontenttype_header() {
    let base = [
        ("cloudEvents_specversion", "1.0"),
        ("cloudEvents_id", "1"),
        ("cloudEvents_source", "/s"),
        ("cloudEvents_type", "t"),
    ];
    let ev = amqp(&base, Some("text/plain"), b"hello").expect("valid");
    assert_eq!(ev.data, Some(Data::Text("hello".into())));

    let mut with_header = base.to_vec();
    with_header.push(("cloudEvents_datacontenttype", "application/octet-stream"));
    let ev = amqp(&with_header, None, b"hello").expect("valid");
    assert_eq!(
        ev.datacontenttype.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(ev.data, Some(Data::Binary(Bytes::from_static(b"hello"))));

    let ev = amqp(&with_header, Some("application/json"), b"[]").expect("valid");
    assert_eq!(ev.datacontenttype.as_deref(), Some("application/json"));
}

#[test]
fn amqp_error_fields_name_the_header_that_was_sent() {
    let base = [
        ("ce_specversion", "1.0"),
        ("ce_id", "1"),
        ("ce_source", "/s"),
        ("ce_type", "t"),
    ];
    // (case, extra headers, content type, kind, field)
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        Option<&'a str>,
        EnvelopeErrorKind,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "bad time",
            vec![("ce_time", "25/11/2026")],
            None,
            EnvelopeErrorKind::InvalidAttribute,
            "ce_time",
        ),
        (
            "empty subject",
            vec![("cloudEvents:subject", "")],
            None,
            EnvelopeErrorKind::InvalidAttribute,
            "cloudEvents:subject",
        ),
        (
            "relative dataschema",
            vec![("ce-dataschema", "schemas/permit.json")],
            None,
            EnvelopeErrorKind::InvalidAttribute,
            "ce-dataschema",
        ),
        (
            "bad content_type property",
            vec![],
            Some("not a media type"),
            EnvelopeErrorKind::InvalidAttribute,
            "content_type",
        ),
        (
            "bad datacontenttype header",
            vec![("cloudEvents_datacontenttype", "nonsense")],
            None,
            EnvelopeErrorKind::InvalidAttribute,
            "cloudEvents_datacontenttype",
        ),
        (
            "extension name with an underscore",
            vec![("ce_my_ext", "x")],
            None,
            EnvelopeErrorKind::InvalidAttribute,
            "ce_my_ext",
        ),
        (
            "reserved name data",
            vec![("cloudEvents_data", "x")],
            None,
            EnvelopeErrorKind::InvalidAttribute,
            "cloudEvents_data",
        ),
        (
            "wrong specversion",
            vec![],
            None,
            EnvelopeErrorKind::InvalidAttribute,
            "ce_specversion",
        ),
    ];
    for (case, extra, ct, kind, field) in cases {
        let mut headers: Vec<(&str, &str)> = base.to_vec();
        if case == "wrong specversion" {
            headers[0] = ("ce_specversion", "0.3");
        }
        headers.extend(extra);
        let err = amqp(&headers, ct, b"").expect_err(case);
        assert_eq!(
            (err.kind, err.field.as_str()),
            (kind, field),
            "{case}: {err}"
        );
    }
}

#[test]
fn missing_attributes_name_the_header_civicbus_writes() {
    let err = amqp(
        &[("ce_specversion", "1.0"), ("ce_id", "1"), ("ce_type", "t")],
        None,
        b"",
    )
    .expect_err("no source");
    assert_eq!(err.kind, EnvelopeErrorKind::MissingAttribute);
    assert_eq!(err.field, "cloudEvents_source");
}

// ---------------------------------------------------------------------------------------
// wire::from_amqp
// ---------------------------------------------------------------------------------------

#[test]
fn from_amqp_reads_structured_messages_by_content_type() {
    let body = text(&full_json());
    for ct in [
        "application/cloudevents+json",
        "application/cloudevents+json; charset=utf-8",
        "Application/CloudEvents+JSON",
    ] {
        // Headers of a structured message are copies: the body is what counts.
        let msg = inbound(Some(ct), &[("cloudEvents_id", "ignored")], body.as_bytes());
        let ev = from_amqp(&msg, &limits()).unwrap_or_else(|e| panic!("{ct}: {e}"));
        assert_eq!(ev.id, "P-2026-0042-issued", "{ct}");
        assert_eq!(
            ev,
            parse_structured(body.as_bytes(), &limits()).expect("valid"),
            "{ct}"
        );
    }
}

#[test]
fn from_amqp_reads_binary_messages_from_headers() {
    let msg = inbound(
        Some("application/json"),
        &[
            ("cloudEvents_specversion", "1.0"),
            ("cloudEvents_id", "JE-2026-311"),
            ("cloudEvents_source", "/county/finance"),
            ("cloudEvents_type", "ca.haliburton.finance.journal.posted"),
            ("cloudEvents_tenant", "county"),
        ],
        br#"{"JournalId":"JE-2026-311"}"#,
    );
    let ev = from_amqp(&msg, &limits()).expect("valid");
    assert_eq!(ev.ty, "ca.haliburton.finance.journal.posted");
    assert_eq!(ev.tenant(), Some("county"));
    assert_eq!(
        ev.data,
        Some(Data::Json(json!({"JournalId": "JE-2026-311"})))
    );

    let no_ct = inbound(
        None,
        &[
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", "/s"),
            ("ce-type", "t"),
        ],
        b"",
    );
    let ev = from_amqp(&no_ct, &limits()).expect("valid");
    assert_eq!((ev.data, ev.datacontenttype), (None, None));
}

#[test]
fn from_amqp_reports_structured_and_binary_errors() {
    let msg = inbound(Some(STRUCTURED_CONTENT_TYPE), &[], b"[]");
    let err = from_amqp(&msg, &limits()).expect_err("an array is not an event");
    assert_eq!(err.kind, EnvelopeErrorKind::MalformedJson);

    let msg = inbound(Some("application/json"), &[("ce_id", "1")], b"{}");
    let err = from_amqp(&msg, &limits()).expect_err("no specversion");
    assert_eq!(err.kind, EnvelopeErrorKind::MissingAttribute);
    assert_eq!(err.field, "cloudEvents_specversion");
}

// ---------------------------------------------------------------------------------------
// wire::to_amqp
// ---------------------------------------------------------------------------------------

fn sample_events() -> Vec<(&'static str, CloudEvent)> {
    let mut json_ev = parse_structured(text(&full_json()).as_bytes(), &limits()).expect("valid");
    json_ev
        .extensions
        .insert("negative".into(), ExtensionValue::Integer(-7));
    json_ev
        .extensions
        .insert("flag".into(), ExtensionValue::Boolean(false));

    let mut text_ev = CloudEvent::new(
        "SR-88",
        "/dysart/open311",
        "ca.haliburton.open311.request.created",
    )
    .expect("valid");
    text_ev.datacontenttype = Some("text/plain; charset=utf-8".into());
    text_ev.data = Some(Data::Text("Pothole on Main St — \"urgent\"".into()));
    text_ev.set_tenant("dysart");

    let mut xml_ev = CloudEvent::new(
        "R-1",
        "/county/records",
        "ca.haliburton.records.record.declared",
    )
    .expect("valid");
    xml_ev.datacontenttype = Some("application/xml".into());
    xml_ev.data = Some(Data::Text("<record class=\"A1\"/>".into()));

    let mut binary_ev = CloudEvent::new(
        "DOC-9",
        "/minden-hills/records",
        "ca.haliburton.records.document.filed",
    )
    .expect("valid");
    binary_ev.datacontenttype = Some("application/pdf".into());
    binary_ev.data = Some(Data::Binary(Bytes::from_static(&[
        0x25, 0x50, 0x44, 0x46, 0, 0xff, 0x80,
    ])));
    binary_ev.time = Some("2026-11-25T14:03:00.5-05:00".into());
    binary_ev.set_tenant("minden-hills");
    binary_ev.extensions.insert(
        "dataref".into(),
        ExtensionValue::String("https://files.example/doc-9.pdf".into()),
    );

    let mut untyped_binary = CloudEvent::new("B-1", "/s", "t").expect("valid");
    untyped_binary.data = Some(Data::Binary(Bytes::from_static(b"\x00\x01")));

    let bare =
        CloudEvent::new("bare", "urn:civicbus:test", "ca.haliburton.test.bare").expect("valid");

    vec![
        (
            "JSON data, every attribute, int/bool/string extensions",
            json_ev,
        ),
        ("text data", text_ev),
        ("XML text data", xml_ev),
        ("binary data", binary_ev),
        ("binary data without content type", untyped_binary),
        ("no data", bare),
    ]
}

#[test]
fn to_amqp_then_from_amqp_preserves_the_event() {
    for (case, ev) in sample_events() {
        let out = to_amqp(&ev, vec![]);
        assert_eq!(out.content_type, STRUCTURED_CONTENT_TYPE, "{case}");
        assert_eq!(out.message_id.as_deref(), Some(ev.id.as_str()), "{case}");
        let back = from_amqp(
            &inbound(Some(&out.content_type), &borrow(&out.headers), &out.body),
            &limits(),
        )
        .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(back, ev, "{case}");
    }
}

fn borrow(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn to_amqp_copies_every_attribute_to_cloudevents_headers() {
    for (case, ev) in sample_events() {
        let out = to_amqp(&ev, vec![("x-civicbus-actor".into(), "dysart".into())]);
        let copied: BTreeMap<String, String> = out
            .headers
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(AMQP_HEADER_PREFIX)
                    .map(|a| (a.to_string(), v.clone()))
            })
            .collect();
        let expected: BTreeMap<String, String> = ev.attributes().into_iter().collect();
        assert_eq!(copied, expected, "{case}");
        assert_eq!(copied.get("specversion").map(String::as_str), Some("1.0"));
        assert_eq!(
            out.headers.last(),
            Some(&("x-civicbus-actor".to_string(), "dysart".to_string())),
            "{case}: extra headers are appended"
        );
        // The headers alone are a binary-mode event with the same attributes.
        let from_headers = parse_binary(
            borrow(&out.headers),
            HeaderPrefixes::Amqp,
            None,
            b"",
            &limits(),
        )
        .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(from_headers.attributes(), ev.attributes(), "{case}");
    }
}

#[test]
fn amqp_header_prefix_is_jms_safe() {
    assert_eq!(AMQP_HEADER_PREFIX, "cloudEvents_");
}
