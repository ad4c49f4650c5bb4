//! Specification of the HTTP binding's binary mode (`ce-*` headers, body = data) and of
//! the header percent-encoding it uses.

mod common;

use bytes::Bytes;
use civicbus_core::binding::{HeaderPrefixes, parse_binary, percent_decode, percent_encode};
use civicbus_core::{CloudEvent, Data, EnvelopeError, EnvelopeErrorKind, ExtensionValue};
use common::limits;
use serde_json::json;

const REQUIRED: [(&str, &str); 4] = [
    ("ce-specversion", "1.0"),
    ("ce-id", "WO-7731-closed"),
    ("ce-source", "/minden-hills/workorders"),
    ("ce-type", "ca.haliburton.works.workorder.closed"),
];

fn http(
    extra: &[(&str, &str)],
    content_type: Option<&str>,
    body: &[u8],
) -> Result<CloudEvent, EnvelopeError> {
    let headers = REQUIRED.iter().chain(extra).map(|(k, v)| (*k, *v));
    parse_binary(headers, HeaderPrefixes::Http, content_type, body, &limits())
}

#[test]
fn required_headers_and_a_json_body() {
    let ev = http(
        &[],
        Some("application/json"),
        br#"{"WorkOrderId":"WO-7731"}"#,
    )
    .expect("valid");
    assert_eq!(ev.id, "WO-7731-closed");
    assert_eq!(ev.source, "/minden-hills/workorders");
    assert_eq!(ev.ty, "ca.haliburton.works.workorder.closed");
    assert_eq!(ev.datacontenttype.as_deref(), Some("application/json"));
    assert_eq!(ev.data, Some(Data::Json(json!({"WorkOrderId": "WO-7731"}))));
    assert!(ev.extensions.is_empty());
}

#[test]
fn every_optional_attribute_and_extensions_from_headers() {
    let ev = http(
        &[
            ("ce-subject", "WO-7731"),
            ("ce-time", "2026-11-25T14:03:00Z"),
            (
                "ce-dataschema",
                "https://schemas.example/works/workorder.closed/v1",
            ),
            ("ce-tenant", "minden-hills"),
            (
                "ce-traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("ce-partitionkey", "WO-7731"),
            ("ce-priority", "3"),
        ],
        None,
        b"",
    )
    .expect("valid");
    assert_eq!(ev.subject.as_deref(), Some("WO-7731"));
    assert_eq!(ev.time.as_deref(), Some("2026-11-25T14:03:00Z"));
    assert_eq!(
        ev.dataschema.as_deref(),
        Some("https://schemas.example/works/workorder.closed/v1")
    );
    assert_eq!(ev.tenant(), Some("minden-hills"));
    // Binary-mode headers carry no type information: every extension is a string.
    assert_eq!(
        ev.extensions.get("priority"),
        Some(&ExtensionValue::String("3".into()))
    );
    assert_eq!(ev.extensions.len(), 4);
}

#[test]
fn header_names_are_case_insensitive() {
    let headers = [
        ("CE-SPECVERSION", "1.0"),
        ("Ce-Id", "1"),
        ("ce-Source", "/county/gis"),
        ("cE-tYpE", "ca.haliburton.gis.parcel.updated"),
        ("CE-PartitionKey", "4601-010-020"),
    ];
    let ev = parse_binary(headers, HeaderPrefixes::Http, None, b"", &limits()).expect("valid");
    assert_eq!(ev.id, "1");
    assert_eq!(ev.ty, "ca.haliburton.gis.parcel.updated");
    assert_eq!(
        ev.extensions.get("partitionkey"),
        Some(&ExtensionValue::String("4601-010-020".into()))
    );
}

#[test]
fn http_mode_ignores_other_headers_and_amqp_prefixes() {
    let ev = http(
        &[
            ("content-type", "text/plain"),
            ("authorization", "Bearer secret"),
            ("cloudEvents_tenant", "county"),
            ("ce_tenant", "county"),
            ("ce-", "header with an empty attribute name"),
            ("x-ce-foo", "not a prefix"),
        ],
        None,
        b"",
    )
    .expect("valid");
    assert!(ev.extensions.is_empty(), "{:?}", ev.extensions);
    assert_eq!(
        ev.datacontenttype, None,
        "content type comes from the argument"
    );

    let only_amqp = [
        ("cloudEvents_specversion", "1.0"),
        ("cloudEvents_id", "1"),
        ("cloudEvents_source", "/s"),
        ("cloudEvents_type", "t"),
    ];
    let err = parse_binary(only_amqp, HeaderPrefixes::Http, None, b"", &limits())
        .expect_err("AMQP prefixes mean nothing over HTTP");
    assert_eq!(err.kind, EnvelopeErrorKind::MissingAttribute);
    assert_eq!(err.field, "ce-specversion");
}

#[test]
fn header_values_are_percent_decoded() {
    // (header value as sent, attribute value)
    let cases = [
        ("Dysart%20et%20al", "Dysart et al"),
        ("caf%C3%A9", "café"),
        ("caf%c3%a9", "café"),
        ("100%25", "100%"),
        ("%22quoted%22", "\"quoted\""),
        ("plain", "plain"),
        ("100%", "100%"),
        ("%zz", "%zz"),
        ("%4", "%4"),
        ("%E6%97%A5%E6%9C%AC", "日本"),
    ];
    for (sent, expected) in cases {
        let ev = http(&[("ce-subject", sent)], None, b"").expect(sent);
        assert_eq!(ev.subject.as_deref(), Some(expected), "{sent}");
    }
    let ev = http(&[("ce-comexampleext", "a%2Cb%20c")], None, b"").expect("valid");
    assert_eq!(
        ev.extensions.get("comexampleext"),
        Some(&ExtensionValue::String("a,b c".into()))
    );
}

#[test]
fn non_utf8_percent_encoding_is_rejected_naming_the_header() {
    for sent in ["%FF", "%C3", "abc%C3%28", "%80"] {
        let err = http(&[("Ce-Subject", sent)], None, b"").expect_err(sent);
        assert_eq!(err.kind, EnvelopeErrorKind::InvalidAttribute, "{sent}");
        assert_eq!(err.field, "Ce-Subject", "{sent}");
    }
}

#[test]
fn content_type_decides_the_kind_of_data() {
    let json_body: &[u8] = br#"{"ok":true}"#;
    let text_body: &[u8] = b"<feature id=\"1\"/>";
    let binary_body: &[u8] = &[0x25, 0x50, 0x44, 0x46, 0x00, 0xff];
    // (content type, body, expected data)
    let cases: Vec<(Option<&str>, &[u8], Data)> = vec![
        (None, json_body, Data::Json(json!({"ok": true}))),
        (Some(""), json_body, Data::Json(json!({"ok": true}))),
        (
            Some("application/json"),
            json_body,
            Data::Json(json!({"ok": true})),
        ),
        (
            Some("Application/JSON; charset=utf-8"),
            json_body,
            Data::Json(json!({"ok": true})),
        ),
        (Some("text/json"), b"[1,2]", Data::Json(json!([1, 2]))),
        (
            Some("application/geo+json"),
            b"\"x\"",
            Data::Json(json!("x")),
        ),
        (Some("application/json"), b"42", Data::Json(json!(42))),
        (
            Some("text/plain"),
            text_body,
            Data::Text("<feature id=\"1\"/>".into()),
        ),
        (Some("text/csv"), b"a,b\n1,2", Data::Text("a,b\n1,2".into())),
        (
            Some("application/xml"),
            text_body,
            Data::Text("<feature id=\"1\"/>".into()),
        ),
        (
            Some("application/atom+xml"),
            text_body,
            Data::Text("<feature id=\"1\"/>".into()),
        ),
        (
            Some("text/plain; charset=utf-8"),
            "é".as_bytes(),
            Data::Text("é".into()),
        ),
        (
            Some("application/octet-stream"),
            binary_body,
            Data::Binary(Bytes::copy_from_slice(binary_body)),
        ),
        (
            Some("application/pdf"),
            binary_body,
            Data::Binary(Bytes::copy_from_slice(binary_body)),
        ),
        (
            Some("image/png"),
            json_body,
            Data::Binary(Bytes::copy_from_slice(json_body)),
        ),
    ];
    for (ct, body, expected) in cases {
        let ev = http(&[], ct, body).unwrap_or_else(|e| panic!("{ct:?}: {e}"));
        assert_eq!(ev.data, Some(expected), "{ct:?}");
        assert_eq!(
            ev.datacontenttype.as_deref(),
            ct.filter(|c| !c.is_empty()),
            "{ct:?}"
        );
    }
}

#[test]
fn empty_body_means_no_data_whatever_the_content_type() {
    for ct in [
        None,
        Some("application/json"),
        Some("text/plain"),
        Some("image/png"),
    ] {
        let ev = http(&[], ct, b"").expect("valid");
        assert_eq!(ev.data, None, "{ct:?}");
        assert_eq!(ev.datacontenttype.as_deref(), ct, "{ct:?}");
    }
}

#[test]
fn content_type_wins_over_a_datacontenttype_header() {
    let ev = http(
        &[("ce-datacontenttype", "application/xml")],
        Some("application/json"),
        b"{}",
    )
    .expect("valid");
    assert_eq!(ev.datacontenttype.as_deref(), Some("application/json"));
    assert!(!ev.extensions.contains_key("datacontenttype"));

    let ev = http(&[("ce-datacontenttype", "text/plain")], None, b"hi").expect("valid");
    assert_eq!(ev.datacontenttype.as_deref(), Some("text/plain"));
    assert_eq!(ev.data, Some(Data::Text("hi".into())));
}

#[test]
fn binary_error_fields_name_the_header_that_was_sent() {
    // (case, extra headers, content type, body, kind, field)
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        Option<&'a str>,
        &'a [u8],
        EnvelopeErrorKind,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "bad time, header in upper case",
            vec![("CE-TIME", "yesterday")],
            None,
            b"",
            EnvelopeErrorKind::InvalidAttribute,
            "CE-TIME",
        ),
        (
            "empty subject",
            vec![("ce-subject", "")],
            None,
            b"",
            EnvelopeErrorKind::InvalidAttribute,
            "ce-subject",
        ),
        (
            "bad Content-Type names the content-type header",
            vec![],
            Some("json"),
            b"{}",
            EnvelopeErrorKind::InvalidAttribute,
            "content-type",
        ),
        (
            "bad ce-datacontenttype names that header",
            vec![("ce-datacontenttype", "json")],
            None,
            b"",
            EnvelopeErrorKind::InvalidAttribute,
            "ce-datacontenttype",
        ),
        (
            "control character in an extension",
            vec![("ce-tenant", "a%0Ab")],
            None,
            b"",
            EnvelopeErrorKind::InvalidAttribute,
            "ce-tenant",
        ),
        (
            "malformed JSON body names data",
            vec![],
            Some("application/json"),
            b"{",
            EnvelopeErrorKind::MalformedJson,
            "data",
        ),
        (
            "text that is not UTF-8 names data",
            vec![],
            Some("text/plain"),
            &[0xff, 0xfe],
            EnvelopeErrorKind::InvalidAttribute,
            "data",
        ),
    ];
    for (case, extra, ct, body, kind, field) in cases {
        let err = http(&extra, ct, body).expect_err(case);
        assert_eq!(
            (err.kind, err.field.as_str()),
            (kind, field),
            "{case}: {err}"
        );
    }
}

#[test]
fn missing_required_headers_are_named() {
    for (i, (missing, _)) in REQUIRED.iter().enumerate() {
        let headers = REQUIRED
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, h)| *h);
        let err =
            parse_binary(headers, HeaderPrefixes::Http, None, b"", &limits()).expect_err(missing);
        assert_eq!(err.kind, EnvelopeErrorKind::MissingAttribute, "{missing}");
        assert_eq!(err.field, *missing);
        assert!(err.message.contains(missing), "{err}");
    }
}

// ---------------------------------------------------------------------------------------
// Percent-encoding of header values
// ---------------------------------------------------------------------------------------

#[test]
fn percent_encoding_table() {
    // (value, encoded header value)
    let cases = [
        ("", ""),
        ("abc-XYZ_0.9~", "abc-XYZ_0.9~"),
        ("/dysart/permitting", "/dysart/permitting"),
        ("!#$&'()*+,/:;<=>?@[\\]^`{|}", "!#$&'()*+,/:;<=>?@[\\]^`{|}"),
        ("Dysart et al", "Dysart%20et%20al"),
        ("\"quoted\"", "%22quoted%22"),
        ("100%", "100%25"),
        ("%41", "%2541"),
        ("tab\there", "tab%09here"),
        ("line\nbreak", "line%0Abreak"),
        ("\u{7f}", "%7F"),
        ("café", "caf%C3%A9"),
        ("日本", "%E6%97%A5%E6%9C%AC"),
        ("🚧", "%F0%9F%9A%A7"),
    ];
    for (value, encoded) in cases {
        assert_eq!(percent_encode(value), encoded, "encode {value:?}");
        assert_eq!(
            percent_decode(encoded).as_deref(),
            Some(value),
            "decode {encoded:?}"
        );
    }
}

#[test]
fn percent_round_trip() {
    let values = [
        "plain ascii",
        "  leading and trailing  ",
        "\"\"%%\"\"",
        "%20 is not decoded twice",
        "Minden Hills — Ontario",
        "Zoë's café «été»",
        "mixed %C3%A9 and é",
        "\u{0}\u{1f}\u{7f}",
        "ümlaut~tilde",
    ];
    for v in values {
        let encoded = percent_encode(v);
        assert!(
            encoded
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b'"'),
            "{encoded:?} is a safe header value"
        );
        assert_eq!(percent_decode(&encoded).as_deref(), Some(v), "{v:?}");
    }
}

#[test]
fn percent_decode_is_lenient_with_stray_percent_signs_but_strict_about_utf8() {
    let cases: [(&str, Option<&str>); 9] = [
        ("%", Some("%")),
        ("%%", Some("%%")),
        ("%2", Some("%2")),
        ("%G0", Some("%G0")),
        ("a%2Fb", Some("a/b")),
        ("%c3%A9", Some("é")),
        ("%FF", None),
        ("%C3", None),
        ("%ED%A0%80", None),
    ];
    for (input, expected) in cases {
        assert_eq!(percent_decode(input).as_deref(), expected, "{input:?}");
    }
}
