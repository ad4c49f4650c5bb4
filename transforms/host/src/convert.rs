//! Conversion between civicbus's [`CloudEvent`] and the WIT `event` record, and the checks
//! on what a plugin returns (output limits, CloudEvents validity, the tenant rule).
//!
//! Towards the plugin: `data` is the payload as it travels in binary mode (compact JSON,
//! UTF-8 text or raw bytes), `datacontenttype` as is (absent means JSON), every extension
//! except `tenant`. The tenant belongs to civicbus: a plugin never sees it and cannot set
//! it — a `tenant` extension on an output is dropped, and the router stamps the input's.

use std::collections::BTreeMap;

use bytes::Bytes;
use civicbus_core::envelope::{TENANT_EXTENSION, is_json_media_type, is_text_media_type};
use civicbus_core::{CloudEvent, Data, ExtensionValue};

use crate::bindings::civicbus::transform::types::{Event, Extension, ExtensionValue as WitValue};
use crate::config::Limits;
use crate::error::TransformError;

/// The WIT event handed to the plugin for `event`.
pub(crate) fn to_guest(event: &CloudEvent) -> Event {
    let extensions = event
        .extensions
        .iter()
        .filter(|(name, _)| name.as_str() != TENANT_EXTENSION)
        .map(|(name, value)| Extension {
            name: name.clone(),
            value: match value {
                ExtensionValue::Boolean(b) => WitValue::Boolean(*b),
                ExtensionValue::Integer(i) => WitValue::Integer(*i),
                ExtensionValue::String(s) => WitValue::Text(s.clone()),
            },
        })
        .collect();
    Event {
        id: event.id.clone(),
        source: event.source.clone(),
        type_: event.ty.clone(),
        subject: event.subject.clone(),
        time: event.time.clone(),
        datacontenttype: event.datacontenttype.clone(),
        dataschema: event.dataschema.clone(),
        extensions,
        data: event.data.as_ref().map(|d| d.to_bytes().to_vec()),
    }
}

/// Check the plugin's outputs against the limits and turn them into valid CloudEvents.
pub(crate) fn from_guest(
    outputs: Vec<Event>,
    limits: &Limits,
) -> Result<Vec<CloudEvent>, TransformError> {
    if outputs.len() > limits.max_output_events {
        return Err(TransformError::OutputLimit(format!(
            "the plugin returned {} events; at most {} are allowed per call (max_output_events)",
            outputs.len(),
            limits.max_output_events
        )));
    }
    let bytes: usize = outputs.iter().map(size).sum();
    if bytes > limits.max_output_bytes {
        return Err(TransformError::OutputLimit(format!(
            "the plugin returned {bytes} bytes of events (data and attributes); at most {} are allowed per call (max_output_bytes)",
            limits.max_output_bytes
        )));
    }
    outputs
        .into_iter()
        .enumerate()
        .map(|(index, event)| from_guest_event(index, event))
        .collect()
}

fn from_guest_event(index: usize, event: Event) -> Result<CloudEvent, TransformError> {
    let invalid = |field: &str, message: String| {
        TransformError::InvalidOutput(format!("output {index}: {field}: {message}"))
    };
    let mut extensions = BTreeMap::new();
    for Extension { name, value } in event.extensions {
        if name == TENANT_EXTENSION {
            continue;
        }
        let value = match value {
            WitValue::Boolean(b) => ExtensionValue::Boolean(b),
            WitValue::Integer(i) => ExtensionValue::Integer(i),
            WitValue::Text(s) => ExtensionValue::String(s),
        };
        if extensions.insert(name.clone(), value).is_some() {
            return Err(invalid(
                &name,
                format!("extension `{name}` appears more than once; set each extension once"),
            ));
        }
    }
    let data = match event.data {
        None => None,
        Some(bytes) => {
            Some(decode(event.datacontenttype.as_deref(), bytes).map_err(|m| invalid("data", m))?)
        }
    };
    let out = CloudEvent {
        id: event.id,
        source: event.source,
        ty: event.type_,
        datacontenttype: event.datacontenttype,
        dataschema: event.dataschema,
        subject: event.subject,
        time: event.time,
        extensions,
        data,
    };
    out.validate()
        .map_err(|e| TransformError::InvalidOutput(format!("output {index}: {e}")))?;
    Ok(out)
}

/// Read payload bytes the way `datacontenttype` says (JSON when absent).
fn decode(content_type: Option<&str>, bytes: Vec<u8>) -> Result<Data, String> {
    match content_type {
        None => serde_json::from_slice(&bytes).map(Data::Json).map_err(|e| {
            format!("no datacontenttype, so data must be JSON, but it is not: {e}; set datacontenttype for other payloads")
        }),
        Some(ct) if is_json_media_type(ct) => serde_json::from_slice(&bytes)
            .map(Data::Json)
            .map_err(|e| format!("datacontenttype `{ct}` declares JSON, but data is not valid JSON: {e}")),
        Some(ct) if is_text_media_type(ct) => String::from_utf8(bytes)
            .map(Data::Text)
            .map_err(|e| format!("datacontenttype `{ct}` declares text, but data is not UTF-8: {e}")),
        Some(_) => Ok(Data::Binary(Bytes::from(bytes))),
    }
}

/// Bytes an output occupies: its data plus the text of all attributes.
fn size(event: &Event) -> usize {
    let optional = [
        &event.subject,
        &event.time,
        &event.datacontenttype,
        &event.dataschema,
    ]
    .iter()
    .map(|v| v.as_ref().map_or(0, String::len))
    .sum::<usize>();
    let extensions = event
        .extensions
        .iter()
        .map(|e| {
            e.name.len()
                + match &e.value {
                    WitValue::Text(s) => s.len(),
                    WitValue::Boolean(_) | WitValue::Integer(_) => 8,
                }
        })
        .sum::<usize>();
    event.id.len()
        + event.source.len()
        + event.type_.len()
        + optional
        + extensions
        + event.data.as_ref().map_or(0, Vec::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> CloudEvent {
        let mut ev = CloudEvent::new("e1", "/dysart/permitting", "ca.example.permit.issued")
            .unwrap_or_else(|e| panic!("{e}"));
        ev.data = Some(Data::Json(
            serde_json::json!({"permit": "P-1", "fee": 12.5}),
        ));
        ev.set_tenant("dysart");
        ev.extensions.insert(
            "traceparent".into(),
            ExtensionValue::String("00-abc-def-01".into()),
        );
        ev
    }

    #[test]
    fn input_keeps_everything_but_the_tenant() {
        let wit = to_guest(&input());
        assert_eq!(wit.id, "e1");
        assert_eq!(wit.datacontenttype, None);
        assert_eq!(
            wit.data.as_deref(),
            Some(br#"{"fee":12.5,"permit":"P-1"}"#.as_slice())
        );
        let names: Vec<_> = wit.extensions.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["traceparent"]);
    }

    #[test]
    fn round_trip_is_identity_without_the_tenant() {
        let mut expected = input();
        let out = from_guest(vec![to_guest(&expected)], &Limits::default())
            .unwrap_or_else(|e| panic!("{e}"));
        expected.extensions.remove(TENANT_EXTENSION);
        assert_eq!(out, vec![expected]);
    }

    #[test]
    fn data_follows_the_content_type() {
        type Case = (
            Option<&'static str>,
            &'static [u8],
            Result<Data, &'static str>,
        );
        let cases: [Case; 6] = [
            (None, b"[1,2]", Ok(Data::Json(serde_json::json!([1, 2])))),
            (
                Some("application/cloudevents+json"),
                b"{}",
                Ok(Data::Json(serde_json::json!({}))),
            ),
            (Some("text/csv"), b"a,b", Ok(Data::Text("a,b".into()))),
            (
                Some("application/octet-stream"),
                b"\xff",
                Ok(Data::Binary(Bytes::from_static(b"\xff"))),
            ),
            (
                None,
                b"nope",
                Err("no datacontenttype, so data must be JSON"),
            ),
            (
                Some("text/plain"),
                b"\xff",
                Err("declares text, but data is not UTF-8"),
            ),
        ];
        for (ct, bytes, expected) in cases {
            match (decode(ct, bytes.to_vec()), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{ct:?}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{ct:?}: {got}"),
                (got, want) => panic!("{ct:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn invalid_outputs_name_index_and_field() {
        let good = to_guest(&input());
        type Breaker = fn(&mut Event);
        let cases: [(Breaker, &str); 5] = [
            (
                |e| e.source.clear(),
                "output 1: source: `source` must not be empty",
            ),
            (|e| e.type_ = String::new(), "output 1: type:"),
            (|e| e.time = Some("soon".into()), "output 1: time:"),
            (
                |e| {
                    e.extensions.push(Extension {
                        name: "Bad".into(),
                        value: WitValue::Boolean(true),
                    })
                },
                "output 1: Bad:",
            ),
            (
                |e| {
                    e.extensions.push(Extension {
                        name: "traceparent".into(),
                        value: WitValue::Integer(1),
                    })
                },
                "output 1: traceparent: extension `traceparent` appears more than once",
            ),
        ];
        for (breaker, want) in cases {
            let mut bad = good.clone();
            breaker(&mut bad);
            match from_guest(vec![good.clone(), bad], &Limits::default()) {
                Err(TransformError::InvalidOutput(m)) => assert!(m.starts_with(want), "{m}"),
                other => panic!("expected InvalidOutput starting {want:?}, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_tenant_from_the_plugin_is_dropped() {
        let mut ev = to_guest(&input());
        ev.extensions.push(Extension {
            name: TENANT_EXTENSION.into(),
            value: WitValue::Text("someone-else".into()),
        });
        let out = from_guest(vec![ev], &Limits::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out[0].tenant(), None);
    }

    #[test]
    fn output_limits() {
        let ev = to_guest(&input());
        let limits = Limits {
            max_output_events: 2,
            max_output_bytes: 200,
            ..Limits::default()
        };
        assert!(from_guest(vec![ev.clone(); 2], &limits).is_ok());
        assert!(matches!(
            from_guest(vec![ev.clone(); 3], &limits),
            Err(TransformError::OutputLimit(m)) if m.contains("3 events")
        ));
        let mut big = ev;
        big.data = Some(format!("\"{}\"", "x".repeat(300)).into_bytes());
        assert!(matches!(
            from_guest(vec![big], &limits),
            Err(TransformError::OutputLimit(m)) if m.contains("max_output_bytes")
        ));
    }
}
