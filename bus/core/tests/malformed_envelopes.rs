//! Specification of how civicbus rejects malformed events: one table of inputs, each with
//! the error kind and the field it must name, and a golden file of the exact messages.
//!
//! Run with `UPDATE_GOLDEN=1` to rewrite `tests/golden/envelope_errors.txt` after a
//! deliberate change of wording, then review the diff.

mod common;

use std::fmt::Write as _;

use bytes::Bytes;
use civicbus_core::binding::{
    HeaderPrefixes, ParseLimits, parse_batch, parse_binary, parse_structured,
};
use civicbus_core::{CloudEvent, EnvelopeError, EnvelopeErrorKind as K, ExtensionValue};
use common::{minimal_json, nested_arrays, text, with};
use serde_json::{Value, json};

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/envelope_errors.txt"
);

/// Limits small enough that the limit cases stay readable.
const LIMITS: ParseLimits = ParseLimits {
    max_json_depth: 4,
    max_batch_events: 2,
};

/// One way an event arrives.
enum Input {
    /// A structured-mode body.
    Structured(String),
    /// A batch body.
    Batch(String),
    /// HTTP binary mode: `ce-*` headers, content type, body.
    Http(
        Vec<(&'static str, &'static str)>,
        Option<&'static str>,
        Vec<u8>,
    ),
    /// AMQP binary mode: headers with any prefix, content type, body.
    Amqp(
        Vec<(&'static str, &'static str)>,
        Option<&'static str>,
        Vec<u8>,
    ),
    /// An event built in code (e.g. a transform's output), checked by `validate`.
    Built(CloudEvent),
}

impl Input {
    fn parse(&self) -> Result<(), EnvelopeError> {
        match self {
            Input::Structured(body) => parse_structured(body.as_bytes(), &LIMITS).map(drop),
            Input::Batch(body) => parse_batch(body.as_bytes(), &LIMITS).map(drop),
            Input::Http(headers, ct, body) => parse_binary(
                headers.iter().copied(),
                HeaderPrefixes::Http,
                *ct,
                body,
                &LIMITS,
            )
            .map(drop),
            Input::Amqp(headers, ct, body) => parse_binary(
                headers.iter().copied(),
                HeaderPrefixes::Amqp,
                *ct,
                body,
                &LIMITS,
            )
            .map(drop),
            Input::Built(ev) => ev.validate(),
        }
    }
}

struct Case {
    name: &'static str,
    input: Input,
    kind: K,
    field: &'static str,
}

fn structured(changes: &[(&str, Value)]) -> Input {
    Input::Structured(text(&with(minimal_json(), changes)))
}

fn raw(body: &str) -> Input {
    Input::Structured(body.to_string())
}

fn case(name: &'static str, input: Input, kind: K, field: &'static str) -> Case {
    Case {
        name,
        input,
        kind,
        field,
    }
}

const HTTP_REQUIRED: [(&str, &str); 4] = [
    ("ce-specversion", "1.0"),
    ("ce-id", "1"),
    ("ce-source", "/dysart/permitting"),
    ("ce-type", "ca.haliburton.permitting.permit.issued"),
];

fn http(extra: &[(&'static str, &'static str)], ct: Option<&'static str>, body: &[u8]) -> Input {
    let mut headers = HTTP_REQUIRED.to_vec();
    headers.extend_from_slice(extra);
    Input::Http(headers, ct, body.to_vec())
}

fn http_without(missing: &str) -> Input {
    let headers = HTTP_REQUIRED
        .iter()
        .copied()
        .filter(|(h, _)| *h != missing)
        .collect();
    Input::Http(headers, None, Vec::new())
}

fn amqp(headers: &[(&'static str, &'static str)], ct: Option<&'static str>, body: &[u8]) -> Input {
    Input::Amqp(headers.to_vec(), ct, body.to_vec())
}

fn amqp_with(extra: &[(&'static str, &'static str)], ct: Option<&'static str>) -> Input {
    let mut headers = vec![
        ("cloudEvents_specversion", "1.0"),
        ("cloudEvents_id", "1"),
        ("cloudEvents_source", "/county/gis"),
        ("cloudEvents_type", "ca.haliburton.gis.parcel.updated"),
    ];
    headers.extend_from_slice(extra);
    Input::Amqp(headers, ct, Vec::new())
}

fn built(extension: &str, value: ExtensionValue) -> Input {
    let mut ev = CloudEvent::new("1", "/s", "t").expect("valid");
    ev.extensions.insert(extension.to_string(), value);
    Input::Built(ev)
}

fn data_depth(depth: usize) -> Input {
    // The envelope object is one level: data nested `depth - 1` deep makes `depth`.
    let mut v = text(&minimal_json());
    v.pop();
    Input::Structured(format!("{v},\"data\":{}}}", nested_arrays(depth - 1)))
}

fn batch_data_depth(depth: usize) -> Input {
    // The batch array and the envelope object are two levels.
    let mut v = text(&minimal_json());
    v.pop();
    Input::Batch(format!("[{v},\"data\":{}}}]", nested_arrays(depth - 2)))
}

fn cases() -> Vec<Case> {
    let good = minimal_json();
    vec![
        // Required attributes.
        case(
            "missing id",
            structured(&[("id", Value::Null)]),
            K::MissingAttribute,
            "id",
        ),
        case(
            "missing source",
            structured(&[("source", Value::Null)]),
            K::MissingAttribute,
            "source",
        ),
        case(
            "missing type",
            structured(&[("type", Value::Null)]),
            K::MissingAttribute,
            "type",
        ),
        case(
            "missing specversion",
            structured(&[("specversion", Value::Null)]),
            K::MissingAttribute,
            "specversion",
        ),
        case(
            "null id",
            raw(r#"{"specversion":"1.0","id":null,"source":"/s","type":"t"}"#),
            K::MissingAttribute,
            "id",
        ),
        case(
            "upper-case ID is not id",
            raw(r#"{"specversion":"1.0","ID":"1","source":"/s","type":"t"}"#),
            K::MissingAttribute,
            "id",
        ),
        case(
            "specversion 0.3",
            structured(&[("specversion", json!("0.3"))]),
            K::InvalidAttribute,
            "specversion",
        ),
        case(
            "specversion 1",
            structured(&[("specversion", json!("1"))]),
            K::InvalidAttribute,
            "specversion",
        ),
        case(
            "specversion as a number",
            structured(&[("specversion", json!(1.0))]),
            K::InvalidAttribute,
            "specversion",
        ),
        case(
            "empty id",
            structured(&[("id", json!(""))]),
            K::InvalidAttribute,
            "id",
        ),
        case(
            "empty source",
            structured(&[("source", json!(""))]),
            K::InvalidAttribute,
            "source",
        ),
        case(
            "empty type",
            structured(&[("type", json!(""))]),
            K::InvalidAttribute,
            "type",
        ),
        case(
            "empty subject",
            structured(&[("subject", json!(""))]),
            K::InvalidAttribute,
            "subject",
        ),
        case(
            "source with a space",
            structured(&[("source", json!("/dysart et al/permits"))]),
            K::InvalidAttribute,
            "source",
        ),
        case(
            "id with a line break",
            structured(&[("id", json!("P-1\nP-2"))]),
            K::InvalidAttribute,
            "id",
        ),
        // Attributes of the wrong JSON type.
        case(
            "id is a number",
            structured(&[("id", json!(42))]),
            K::InvalidAttribute,
            "id",
        ),
        case(
            "source is an object",
            structured(&[("source", json!({"path": "/s"}))]),
            K::InvalidAttribute,
            "source",
        ),
        case(
            "type is a boolean",
            structured(&[("type", json!(true))]),
            K::InvalidAttribute,
            "type",
        ),
        case(
            "subject is an array",
            structured(&[("subject", json!(["P-1"]))]),
            K::InvalidAttribute,
            "subject",
        ),
        case(
            "time is a number",
            structured(&[("time", json!(1_764_079_380))]),
            K::InvalidAttribute,
            "time",
        ),
        case(
            "datacontenttype is a number",
            structured(&[("datacontenttype", json!(7))]),
            K::InvalidAttribute,
            "datacontenttype",
        ),
        // Attribute formats.
        case(
            "time not RFC 3339",
            structured(&[("time", json!("yesterday"))]),
            K::InvalidAttribute,
            "time",
        ),
        case(
            "time without offset",
            structured(&[("time", json!("2026-11-25T14:03:00"))]),
            K::InvalidAttribute,
            "time",
        ),
        case(
            "time with month 13",
            structured(&[("time", json!("2026-13-25T14:03:00Z"))]),
            K::InvalidAttribute,
            "time",
        ),
        case(
            "relative dataschema",
            structured(&[(
                "dataschema",
                json!("/schemas/permitting/permit.issued.json"),
            )]),
            K::InvalidAttribute,
            "dataschema",
        ),
        case(
            "dataschema without scheme",
            structured(&[("dataschema", json!("permit.issued/v1"))]),
            K::InvalidAttribute,
            "dataschema",
        ),
        case(
            "datacontenttype not a media type",
            structured(&[("datacontenttype", json!("json"))]),
            K::InvalidAttribute,
            "datacontenttype",
        ),
        case(
            "empty datacontenttype",
            structured(&[("datacontenttype", json!(""))]),
            K::InvalidAttribute,
            "datacontenttype",
        ),
        case(
            "datacontenttype with a space",
            structured(&[("datacontenttype", json!("application/ json"))]),
            K::InvalidAttribute,
            "datacontenttype",
        ),
        // Extensions.
        case(
            "extension name in camel case",
            structured(&[("partitionKey", json!("P-1"))]),
            K::InvalidAttribute,
            "partitionKey",
        ),
        case(
            "extension name with a dash",
            structured(&[("trace-parent", json!("00-1"))]),
            K::InvalidAttribute,
            "trace-parent",
        ),
        case(
            "extension name with an underscore",
            structured(&[("my_ext", json!("x"))]),
            K::InvalidAttribute,
            "my_ext",
        ),
        case(
            "object-valued extension",
            structured(&[("parcel", json!({"arn": "4601"}))]),
            K::InvalidAttribute,
            "parcel",
        ),
        case(
            "array-valued extension",
            structured(&[("tags", json!(["a"]))]),
            K::InvalidAttribute,
            "tags",
        ),
        case(
            "float extension",
            structured(&[("ratio", json!(1.5))]),
            K::InvalidAttribute,
            "ratio",
        ),
        case(
            "integer extension beyond 32 bits",
            structured(&[("seq", json!(4_294_967_296_i64))]),
            K::InvalidAttribute,
            "seq",
        ),
        case(
            "extension with a control character",
            structured(&[("note", json!("a\u{7}b"))]),
            K::InvalidAttribute,
            "note",
        ),
        case(
            "built extension reserved name id",
            built("id", ExtensionValue::String("2".into())),
            K::InvalidAttribute,
            "id",
        ),
        case(
            "built extension reserved name data",
            built("data", ExtensionValue::String("x".into())),
            K::InvalidAttribute,
            "data",
        ),
        case(
            "built extension in upper case",
            built("Tenant", ExtensionValue::String("county".into())),
            K::InvalidAttribute,
            "Tenant",
        ),
        case(
            "built extension beyond 32 bits",
            built("seq", ExtensionValue::Integer(i64::MAX)),
            K::InvalidAttribute,
            "seq",
        ),
        // Data.
        case(
            "both data and data_base64",
            structured(&[("data", json!({})), ("data_base64", json!("AA=="))]),
            K::InvalidAttribute,
            "data_base64",
        ),
        case(
            "data_base64 not base64",
            structured(&[("data_base64", json!("not base64!"))]),
            K::InvalidAttribute,
            "data_base64",
        ),
        case(
            "data_base64 without padding",
            structured(&[("data_base64", json!("AAE"))]),
            K::InvalidAttribute,
            "data_base64",
        ),
        case(
            "data_base64 is a number",
            structured(&[("data_base64", json!(42))]),
            K::InvalidAttribute,
            "data_base64",
        ),
        case(
            "JSON exactly one level too deep",
            data_depth(5),
            K::TooDeep,
            "",
        ),
        // Malformed bodies.
        case(
            "truncated JSON",
            raw(r#"{"specversion":"1.0","id":"#),
            K::MalformedJson,
            "",
        ),
        case(
            "trailing garbage",
            raw(&format!("{} x", text(&good))),
            K::MalformedJson,
            "",
        ),
        case("single quotes", raw("{'id':'1'}"), K::MalformedJson, ""),
        case("empty body", raw(""), K::MalformedJson, ""),
        case(
            "structured body is an array",
            raw(&format!("[{}]", text(&good))),
            K::MalformedJson,
            "",
        ),
        case(
            "structured body is a string",
            raw(r#""permit.issued""#),
            K::MalformedJson,
            "",
        ),
        case("structured body is null", raw("null"), K::MalformedJson, ""),
        // Batches.
        case(
            "batch is an object",
            Input::Batch(text(&good)),
            K::InvalidBatch,
            "",
        ),
        case(
            "batch over the size limit",
            Input::Batch(text(&json!([good, good, good]))),
            K::InvalidBatch,
            "",
        ),
        case(
            "batch entry is a number",
            Input::Batch(text(&json!([good, 7]))),
            K::MalformedJson,
            "[1]",
        ),
        case(
            "batch entry misses type",
            Input::Batch(text(&json!([with(good.clone(), &[("type", Value::Null)])]))),
            K::MissingAttribute,
            "[0].type",
        ),
        case(
            "batch entry has a float extension",
            Input::Batch(text(&json!([
                good,
                with(good.clone(), &[("ratio", json!(0.5))])
            ]))),
            K::InvalidAttribute,
            "[1].ratio",
        ),
        case("batch too deep", batch_data_depth(5), K::TooDeep, ""),
        case(
            "batch malformed",
            Input::Batch("[{]".into()),
            K::MalformedJson,
            "",
        ),
        // HTTP binary mode.
        case(
            "http missing ce-id",
            http_without("ce-id"),
            K::MissingAttribute,
            "ce-id",
        ),
        case(
            "http missing ce-specversion",
            http_without("ce-specversion"),
            K::MissingAttribute,
            "ce-specversion",
        ),
        case(
            "http specversion 0.3",
            Input::Http(
                vec![
                    ("CE-SpecVersion", "0.3"),
                    ("ce-id", "1"),
                    ("ce-source", "/s"),
                    ("ce-type", "t"),
                ],
                None,
                Vec::new(),
            ),
            K::InvalidAttribute,
            "CE-SpecVersion",
        ),
        case(
            "http subject not UTF-8 when decoded",
            http(&[("ce-subject", "caf%E9")], None, b""),
            K::InvalidAttribute,
            "ce-subject",
        ),
        case(
            "http bad time",
            http(&[("ce-time", "2026-11-25 2pm")], None, b""),
            K::InvalidAttribute,
            "ce-time",
        ),
        case(
            "http bad Content-Type",
            http(&[], Some("json"), b"{}"),
            K::InvalidAttribute,
            "content-type",
        ),
        case(
            "http extension with a dash",
            http(&[("ce-trace-parent", "x")], None, b""),
            K::InvalidAttribute,
            "ce-trace-parent",
        ),
        case(
            "http reserved name data",
            http(&[("ce-data", "x")], None, b""),
            K::InvalidAttribute,
            "ce-data",
        ),
        case(
            "http same attribute twice",
            http(&[("CE-ID", "2")], None, b""),
            K::InvalidAttribute,
            "CE-ID",
        ),
        case(
            "http text body not UTF-8",
            http(&[], Some("text/plain"), &[0x63, 0x61, 0x66, 0xe9]),
            K::InvalidAttribute,
            "data",
        ),
        case(
            "http malformed JSON body",
            http(&[], Some("application/json"), b"{\"a\":}"),
            K::MalformedJson,
            "data",
        ),
        case(
            "http body without content type is not JSON",
            http(&[], None, b"hello"),
            K::MalformedJson,
            "data",
        ),
        case(
            "http JSON body too deep",
            http(&[], Some("application/json"), nested_arrays(5).as_bytes()),
            K::TooDeep,
            "data",
        ),
        // AMQP binary mode.
        case(
            "amqp id via two prefixes",
            amqp_with(&[("ce_id", "2")], None),
            K::InvalidAttribute,
            "ce_id",
        ),
        case(
            "amqp type via colon and dash prefixes",
            amqp(
                &[
                    ("cloudEvents:specversion", "1.0"),
                    ("ce-id", "1"),
                    ("ce-source", "/s"),
                    ("cloudEvents:type", "t"),
                    ("ce-type", "u"),
                ],
                None,
                b"",
            ),
            K::InvalidAttribute,
            "ce-type",
        ),
        case(
            "amqp missing source",
            amqp(
                &[("ce_specversion", "1.0"), ("ce_id", "1"), ("ce_type", "t")],
                None,
                b"",
            ),
            K::MissingAttribute,
            "cloudEvents_source",
        ),
        case(
            "amqp bad time via ce_",
            amqp_with(&[("ce_time", "1764079380")], None),
            K::InvalidAttribute,
            "ce_time",
        ),
        case(
            "amqp bad content_type property",
            amqp_with(&[], Some("text")),
            K::InvalidAttribute,
            "content_type",
        ),
        case(
            "amqp extension with an underscore",
            amqp_with(&[("cloudEvents_my_ext", "x")], None),
            K::InvalidAttribute,
            "cloudEvents_my_ext",
        ),
        case(
            "amqp text body not UTF-8",
            amqp(
                &[
                    ("ce_specversion", "1.0"),
                    ("ce_id", "1"),
                    ("ce_source", "/s"),
                    ("ce_type", "t"),
                ],
                Some("text/csv"),
                &[0xff],
            ),
            K::InvalidAttribute,
            "data",
        ),
    ]
}

#[test]
fn every_malformed_input_names_its_kind_and_field() {
    let mut failures = Vec::new();
    for c in cases() {
        match c.input.parse() {
            Ok(()) => failures.push(format!(
                "{}: accepted, expected {:?} at `{}`",
                c.name, c.kind, c.field
            )),
            Err(e) if e.kind != c.kind || e.field != c.field => failures.push(format!(
                "{}: got {:?} at `{}`, expected {:?} at `{}` ({e})",
                c.name, e.kind, e.field, c.kind, c.field
            )),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn case_names_are_unique() {
    let mut names: Vec<&str> = cases().iter().map(|c| c.name).collect();
    let n = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), n);
}

#[test]
fn the_limits_themselves_are_accepted() {
    // One level shallower than the "too deep" cases, and a batch at the size limit.
    let ok = [
        data_depth(4),
        batch_data_depth(4),
        Input::Batch(text(&json!([minimal_json(), minimal_json()]))),
        http(&[], Some("application/json"), nested_arrays(4).as_bytes()),
        Input::Batch("[]".into()),
        Input::Built({
            let mut ev = CloudEvent::new("1", "/s", "t").expect("valid");
            ev.extensions
                .insert("seq".into(), ExtensionValue::Integer(i64::from(i32::MIN)));
            ev.extensions
                .insert("flag".into(), ExtensionValue::Boolean(false));
            ev.data = Some(civicbus_core::Data::Binary(Bytes::new()));
            ev
        }),
    ];
    for (i, input) in ok.iter().enumerate() {
        if let Err(e) = input.parse() {
            panic!("input {i} should be accepted: {e}");
        }
    }
}

#[test]
fn every_message_says_what_is_wrong_and_how_to_fix_it() {
    for c in cases() {
        let e = c.input.parse().expect_err(c.name);
        let (what, fix) = e
            .message
            .split_once("; ")
            .unwrap_or_else(|| panic!("{}: `{}` has no `; <how to fix>` part", c.name, e.message));
        assert!(what.len() > 10, "{}: {}", c.name, e.message);
        assert!(fix.len() > 5, "{}: {}", c.name, e.message);
        assert!(!e.message.contains('\n'), "{}: one line", c.name);
    }
}

#[test]
fn error_messages_match_the_golden_file() {
    let mut actual = String::from(
        "# civicbus-core envelope errors: case => [kind] field: message\n\
         # Regenerate with UPDATE_GOLDEN=1 cargo test -p civicbus-core --test malformed_envelopes\n",
    );
    for c in cases() {
        let e = c.input.parse().expect_err(c.name);
        writeln!(actual, "{} => [{}] {e}", c.name, e.kind.slug()).expect("write to string");
    }
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(GOLDEN, &actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(GOLDEN).unwrap_or_else(|e| {
        panic!("cannot read {GOLDEN} ({e}); run with UPDATE_GOLDEN=1 to create it")
    });
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("- {a}\n+ {b}"))
            .collect();
        panic!(
            "error messages differ from {GOLDEN} ({} vs {} lines); if the change is deliberate, \
             rerun with UPDATE_GOLDEN=1 and review the diff\n{}",
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}
