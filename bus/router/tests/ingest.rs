//! Ingest as a specification: the tenant comes from the credential, limits name the
//! event at fault, the trace context travels, and nothing is promised unless RabbitMQ
//! confirmed it.

mod common;

use std::sync::Arc;

use chrono::DateTime;
use civicbus_core::delivery::{HEADER_ACTOR, HEADER_RECEIVED_AT, HEADER_TRACEPARENT};
use civicbus_core::ports::{Destination, PortError};
use civicbus_core::{CloudEvent, EnvelopeErrorKind, ExtensionValue};
use civicbus_router::ingest::MAX_HEADER_BYTES;
use civicbus_router::{Ingest, IngestError, IngestLimits, Submitter};
use common::{RecordingPublisher, TRACEPARENT, decode, event, header};

const PERMIT_ISSUED: &str = "ca.haliburton.permitting.permit.issued";

fn ingest(publisher: &Arc<RecordingPublisher>) -> Ingest {
    Ingest::new(publisher.clone(), IngestLimits::default())
}

fn dysart(traceparent: Option<&str>) -> Submitter<'_> {
    Submitter {
        tenant: "dysart",
        actor: "dysart-permits",
        traceparent,
    }
}

fn permit(id: &str) -> CloudEvent {
    event(id, "/dysart/permitting", PERMIT_ISSUED)
}

fn with_ext(mut ev: CloudEvent, name: &str, value: ExtensionValue) -> CloudEvent {
    ev.extensions.insert(name.into(), value);
    ev
}

fn string(s: &str) -> ExtensionValue {
    ExtensionValue::String(s.into())
}

/// The error of a refused submission, with nothing published.
async fn refused(events: Vec<CloudEvent>, who: Submitter<'_>, batch: bool) -> IngestError {
    let publisher = RecordingPublisher::new();
    let err = ingest(&publisher)
        .submit(events, who, batch)
        .await
        .expect_err("the submission is refused");
    assert_eq!(
        publisher.calls(),
        0,
        "a refused submission publishes nothing"
    );
    err
}

fn invalid(err: IngestError) -> (EnvelopeErrorKind, String) {
    match err {
        IngestError::Invalid(e) => (e.kind, e.field),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn stamps_the_tenant_of_the_credential() {
    let cases = [
        ("no tenant attribute", permit("P-1")),
        (
            "claims its own tenant",
            with_ext(permit("P-1"), "tenant", string("dysart")),
        ),
    ];
    for (name, ev) in cases {
        let publisher = RecordingPublisher::new();
        let n = ingest(&publisher)
            .submit(vec![ev], dysart(None), false)
            .await
            .expect("accepted");
        assert_eq!(n, 1, "{name}");
        let published = publisher.published();
        assert_eq!(published.len(), 1, "{name}");
        let (to, msg) = &published[0];
        assert_eq!(
            *to,
            Destination::Events {
                routing_key: format!("dysart.{PERMIT_ISSUED}")
            },
            "{name}: routing key is <tenant>.<type>"
        );
        assert_eq!(decode(msg).tenant(), Some("dysart"), "{name}");
        assert_eq!(header(msg, "cloudEvents_tenant"), Some("dysart"), "{name}");
    }
}

#[tokio::test]
async fn refuses_an_event_claiming_another_tenant() {
    let other = |id| with_ext(permit(id), "tenant", string("minden"));
    let cases: Vec<(&str, Vec<CloudEvent>, bool, &str)> = vec![
        ("single event", vec![other("P-1")], false, "tenant"),
        (
            "second of a batch",
            vec![permit("P-1"), other("P-2")],
            true,
            "[1].tenant",
        ),
        (
            "a non-string claim is a claim too",
            vec![with_ext(
                permit("P-1"),
                "tenant",
                ExtensionValue::Integer(7),
            )],
            false,
            "tenant",
        ),
        (
            "a boolean claim in a batch",
            vec![with_ext(
                permit("P-1"),
                "tenant",
                ExtensionValue::Boolean(true),
            )],
            true,
            "[0].tenant",
        ),
    ];
    for (name, events, batch, field) in cases {
        let (kind, got) = invalid(refused(events, dysart(None), batch).await);
        assert_eq!(kind, EnvelopeErrorKind::InvalidAttribute, "{name}");
        assert_eq!(got, field, "{name}");
    }
}

#[tokio::test]
async fn refuses_an_event_over_the_size_limit_naming_its_position() {
    let publisher = RecordingPublisher::new();
    let limits = IngestLimits {
        max_event_bytes: 400,
        ..IngestLimits::default()
    };
    let ingest = Ingest::new(publisher.clone(), limits);
    let mut big = permit("P-2");
    big.data = Some(civicbus_core::Data::Text("x".repeat(500)));
    big.datacontenttype = Some("text/plain".into());

    let cases = [
        ("single event", vec![big.clone()], false, ""),
        ("batch", vec![permit("P-1"), big], true, "[1]"),
    ];
    for (name, events, batch, want) in cases {
        match ingest.submit(events, dysart(None), batch).await {
            Err(e @ IngestError::TooLarge { .. }) => {
                let text = e.to_string();
                let IngestError::TooLarge { field, size, limit } = e else {
                    unreachable!()
                };
                assert_eq!(field, want, "{name}");
                assert!(size > 500, "{name}: size {size}");
                assert_eq!(limit, 400, "{name}");
                assert!(
                    text.starts_with(&format!(
                        "{want}{}event is",
                        if want.is_empty() { "" } else { ": " }
                    )),
                    "{name}: {text}"
                );
            }
            other => panic!("{name}: expected TooLarge, got {other:?}"),
        }
    }
    assert_eq!(publisher.calls(), 0);
}

#[tokio::test]
async fn the_trace_context_travels_with_the_event() {
    const OTHER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    // (case, request header, event's own traceparent, expected traceparent on the wire)
    type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);
    let cases: [Case<'_>; 4] = [
        ("none anywhere", None, None, None),
        (
            "from the request",
            Some(TRACEPARENT),
            None,
            Some(TRACEPARENT),
        ),
        ("the event's own", None, Some(OTHER), Some(OTHER)),
        (
            "the event's own wins over the request's",
            Some(TRACEPARENT),
            Some(OTHER),
            Some(OTHER),
        ),
    ];
    for (name, request, own, want) in cases {
        let mut ev = permit("P-1");
        if let Some(tp) = own {
            ev = with_ext(ev, "traceparent", string(tp));
        }
        let publisher = RecordingPublisher::new();
        ingest(&publisher)
            .submit(vec![ev], dysart(request), false)
            .await
            .expect("accepted");
        let (_, msg) = &publisher.published()[0];
        assert_eq!(header(msg, HEADER_TRACEPARENT), want, "{name}: header");
        assert_eq!(
            decode(msg).attribute("traceparent").as_deref(),
            want,
            "{name}: extension"
        );
    }
}

#[tokio::test]
async fn refuses_a_malformed_trace_context() {
    let bad = [
        "not-a-traceparent",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
    ];
    for tp in bad {
        // In the request header: refused even when the event carries its own.
        let own = with_ext(permit("P-1"), "traceparent", string(TRACEPARENT));
        for events in [vec![permit("P-1")], vec![own]] {
            let (kind, field) = invalid(refused(events, dysart(Some(tp)), false).await);
            assert_eq!(kind, EnvelopeErrorKind::InvalidAttribute, "{tp}");
            assert_eq!(field, "traceparent", "{tp}");
        }
        // In the event itself: refused, naming the batch position.
        let events = vec![
            permit("P-1"),
            with_ext(permit("P-2"), "traceparent", string(tp)),
        ];
        let (_, field) = invalid(refused(events, dysart(None), true).await);
        assert_eq!(field, "[1].traceparent", "{tp}");
    }
    let not_a_string = with_ext(permit("P-1"), "traceparent", ExtensionValue::Integer(1));
    let (_, field) = invalid(refused(vec![not_a_string], dysart(None), false).await);
    assert_eq!(field, "traceparent");
}

#[tokio::test]
async fn records_who_submitted_and_when() {
    let publisher = RecordingPublisher::new();
    let before = chrono::Utc::now();
    ingest(&publisher)
        .submit(vec![permit("P-1"), permit("P-2")], dysart(None), true)
        .await
        .expect("accepted");
    let published = publisher.published();
    assert_eq!(published.len(), 2);
    for (_, msg) in &published {
        assert_eq!(header(msg, HEADER_ACTOR), Some("dysart-permits"));
        let at = header(msg, HEADER_RECEIVED_AT).expect("received-at header");
        let at = DateTime::parse_from_rfc3339(at).expect("RFC 3339");
        assert!(at >= before - chrono::Duration::seconds(1), "{at}");
        assert_eq!(msg.content_type, "application/cloudevents+json");
    }
    assert_eq!(
        publisher.batches(),
        1,
        "a batch is published and confirmed together"
    );
}

#[tokio::test]
async fn publisher_failures_map_to_unavailable_and_rejected() {
    let cases = [
        (PortError::unavailable("RabbitMQ is down"), "unavailable"),
        (PortError::rejected("RabbitMQ nacked"), "rejected"),
    ];
    for (error, want) in cases {
        let publisher = RecordingPublisher::new();
        publisher.fail_next(1, error.clone());
        let got = ingest(&publisher)
            .submit(vec![permit("P-1")], dysart(None), false)
            .await
            .expect_err("not confirmed, not accepted");
        match (&got, want) {
            (IngestError::Unavailable(e), "unavailable")
            | (IngestError::Rejected(e), "rejected") => {
                assert_eq!(*e, error);
            }
            _ => panic!("{want}: got {got:?}"),
        }
        assert!(publisher.published().is_empty());
    }
}

#[tokio::test]
async fn an_empty_batch_publishes_nothing() {
    let publisher = RecordingPublisher::new();
    let n = ingest(&publisher)
        .submit(Vec::new(), dysart(None), true)
        .await
        .expect("an empty batch is valid");
    assert_eq!(n, 0);
    assert_eq!(publisher.calls(), 0);
}

#[tokio::test]
async fn refuses_events_rabbitmq_cannot_carry() {
    // A routing key or header name over 255 bytes, or a header table too large for one
    // AMQP frame, would be refused by RabbitMQ on every retry: refuse it as invalid
    // instead, naming the attribute.
    let long_type = format!("ca.haliburton.{}", "x".repeat(250));
    let long_ext = "e".repeat(250);
    let long_ext_field = format!("[0].{long_ext}");
    let cases = [
        (
            "type too long for a routing key",
            event("P-1", "/dysart/permitting", &long_type),
            "[0].type",
            EnvelopeErrorKind::InvalidAttribute,
        ),
        (
            "extension name too long for a header name",
            with_ext(permit("P-1"), &long_ext, string("v")),
            long_ext_field.as_str(),
            EnvelopeErrorKind::InvalidAttribute,
        ),
        (
            "attributes too large for the header frame",
            with_ext(
                permit("P-1"),
                "dataref",
                string(&"y".repeat(MAX_HEADER_BYTES)),
            ),
            "[0].dataref",
            EnvelopeErrorKind::TooLarge,
        ),
    ];
    for (name, ev, field, kind) in cases {
        match refused(vec![ev], dysart(None), true).await {
            IngestError::Invalid(e) => {
                assert_eq!(e.field, field, "{name}");
                assert_eq!(e.kind, kind, "{name}");
            }
            other => panic!("{name}: expected Invalid, got {other:?}"),
        }
    }
}
