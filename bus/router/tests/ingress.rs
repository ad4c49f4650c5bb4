//! AMQP ingress as a specification: the tenant comes from the RabbitMQ user; what cannot
//! be accepted is quarantined with its reason and acknowledged (never dropped, never
//! redelivered forever); what cannot be confirmed is handed back.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use civicbus_core::ports::{Destination, InboundMessage, PortError};
use civicbus_router::{Ingest, IngestLimits, IngressWorker};
use common::{
    AckLog, MemoryStore, NO_BACKOFF, REQUEUED, RecordingPublisher, Settled, StoreOp, TRACEPARENT,
    decode, header, inbound_raw,
};

const PERMIT_ISSUED: &str = "ca.haliburton.permitting.permit.issued";

struct Fixture {
    publisher: Arc<RecordingPublisher>,
    store: Arc<MemoryStore>,
    log: AckLog,
    worker: IngressWorker,
}

fn fixture() -> Fixture {
    let publisher = RecordingPublisher::new();
    let store = MemoryStore::new();
    let ingest = Arc::new(Ingest::new(publisher.clone(), IngestLimits::default()));
    let users = BTreeMap::from([
        ("dysart-permits".to_string(), "dysart".to_string()),
        ("minden-gis".to_string(), "minden".to_string()),
    ]);
    let worker = IngressWorker::new(ingest, store.clone(), users).with_infra_backoff(NO_BACKOFF);
    Fixture {
        publisher,
        store,
        log: AckLog::new(),
        worker,
    }
}

/// A binary-mode message as a system would publish it: `ce_` headers, JSON body.
fn binary(log: &AckLog, user: Option<&str>, extra: &[(&str, &str)]) -> InboundMessage {
    let mut headers = vec![
        ("ce_specversion", "1.0"),
        ("ce_id", "P-2026-0042"),
        ("ce_source", "/dysart/permitting"),
        ("ce_type", PERMIT_ISSUED),
    ];
    headers.extend_from_slice(extra);
    let mut msg = inbound_raw(
        br#"{"permit_number":"P-2026-0042"}"#,
        Some("application/json"),
        &headers,
        log,
        "m",
    );
    msg.user_id = user.map(str::to_string);
    msg
}

#[tokio::test]
async fn publishes_a_valid_binary_mode_message_with_the_tenant_of_its_user() {
    let f = fixture();
    f.worker
        .handle(binary(
            &f.log,
            Some("dysart-permits"),
            &[("traceparent", TRACEPARENT)],
        ))
        .await;

    let published = f.publisher.published();
    assert_eq!(published.len(), 1);
    let (to, msg) = &published[0];
    assert_eq!(
        *to,
        Destination::Events {
            routing_key: format!("dysart.{PERMIT_ISSUED}")
        }
    );
    let ev = decode(msg);
    assert_eq!(ev.id, "P-2026-0042");
    assert_eq!(ev.tenant(), Some("dysart"));
    assert_eq!(
        ev.data,
        Some(civicbus_core::Data::Json(
            serde_json::json!({"permit_number": "P-2026-0042"})
        ))
    );
    assert_eq!(header(msg, "x-civicbus-actor"), Some("dysart-permits"));
    assert_eq!(header(msg, "traceparent"), Some(TRACEPARENT));
    assert_eq!(f.log.settled(), [Settled::Ack], "acked after the confirm");
    assert!(f.store.quarantined().is_empty());
}

/// One input ingress must quarantine, and the record it must leave.
struct Refused<'a> {
    case: &'a str,
    user: Option<&'a str>,
    /// Headers added to (or, with an empty value, removed from) the valid message.
    headers: &'a [(&'a str, &'a str)],
    body: Option<&'a [u8]>,
    kind: &'a str,
    field: &'a str,
    tenant: Option<&'a str>,
}

#[tokio::test]
async fn quarantines_and_acks_what_it_cannot_accept() {
    let dysart = Some("dysart-permits");
    let cases = [
        Refused {
            case: "no user_id",
            user: None,
            headers: &[],
            body: None,
            kind: "missing-user-id",
            field: "user_id",
            tenant: None,
        },
        Refused {
            case: "unmapped user",
            user: Some("stranger"),
            headers: &[],
            body: None,
            kind: "unknown-amqp-user",
            field: "user_id",
            tenant: None,
        },
        Refused {
            case: "claims another tenant",
            user: dysart,
            headers: &[("ce_tenant", "minden")],
            body: None,
            kind: "invalid-attribute",
            field: "tenant",
            tenant: Some("dysart"),
        },
        Refused {
            case: "bad traceparent header",
            user: dysart,
            headers: &[("traceparent", "nonsense")],
            body: None,
            kind: "invalid-attribute",
            field: "traceparent",
            tenant: Some("dysart"),
        },
        Refused {
            case: "body is not the JSON its content type says",
            user: dysart,
            headers: &[],
            body: Some(b"{not json"),
            kind: "malformed-json",
            field: "data",
            tenant: Some("dysart"),
        },
        Refused {
            case: "binary mode without a type",
            user: dysart,
            headers: &[("ce_type", "")],
            body: None,
            kind: "missing-attribute",
            field: "cloudEvents_type",
            tenant: Some("dysart"),
        },
    ];
    for c in cases {
        let f = fixture();
        let mut msg = binary(&f.log, c.user, &[]);
        for (k, v) in c.headers {
            msg.headers.retain(|(name, _)| name != k);
            if !v.is_empty() {
                msg.headers.push((k.to_string(), v.to_string()));
            }
        }
        if let Some(b) = c.body {
            msg.body = bytes::Bytes::copy_from_slice(b);
        }
        f.worker.handle(msg).await;

        let name = c.case;
        let q = f.store.quarantined();
        assert_eq!(q.len(), 1, "{name}: quarantined once");
        assert_eq!(q[0].reason_kind, c.kind, "{name}");
        assert_eq!(q[0].field, c.field, "{name}");
        assert_eq!(q[0].tenant.as_deref(), c.tenant, "{name}");
        assert_eq!(q[0].transport, "amqp", "{name}");
        assert!(!q[0].reason.is_empty(), "{name}: says why");
        assert_eq!(
            f.log.settled(),
            [Settled::Ack],
            "{name}: acked, not redelivered"
        );
        assert_eq!(f.publisher.calls(), 0, "{name}: nothing published");
    }
}

#[tokio::test]
async fn quarantines_a_structured_body_missing_an_attribute_with_its_field() {
    let f = fixture();
    let mut msg = inbound_raw(
        br#"{"specversion":"1.0","id":"P-1","source":"/dysart/permitting"}"#,
        Some("application/cloudevents+json"),
        &[],
        &f.log,
        "m",
    );
    msg.user_id = Some("dysart-permits".into());
    f.worker.handle(msg).await;
    let q = f.store.quarantined();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].reason_kind, "missing-attribute");
    assert_eq!(q[0].field, "type");
    assert_eq!(
        q[0].body,
        br#"{"specversion":"1.0","id":"P-1","source":"/dysart/permitting"}"#
    );
    assert!(
        q[0].headers
            .contains(&("user_id".to_string(), "dysart-permits".to_string())),
        "the record keeps who sent it"
    );
    assert_eq!(f.log.settled(), [Settled::Ack]);
}

#[tokio::test]
async fn hands_the_message_back_when_rabbitmq_does_not_confirm() {
    for error in [
        PortError::unavailable("RabbitMQ is down"),
        PortError::rejected("queue full"),
    ] {
        let f = fixture();
        f.publisher.fail_next(1, error.clone());
        f.worker
            .handle(binary(&f.log, Some("dysart-permits"), &[]))
            .await;
        assert_eq!(f.log.settled(), [REQUEUED], "{error:?}: not acked");
        assert!(
            f.store.quarantined().is_empty(),
            "{error:?}: not quarantined"
        );
        assert!(f.publisher.published().is_empty());
    }
}

#[tokio::test]
async fn hands_the_message_back_when_the_store_cannot_quarantine() {
    let f = fixture();
    f.store.fail_next(StoreOp::Quarantine, 1);
    f.worker.handle(binary(&f.log, None, &[])).await;
    assert_eq!(f.log.settled(), [REQUEUED], "not acked: it would be lost");
    assert!(f.store.quarantined().is_empty());

    // Redelivered once the store is back: quarantined and acked.
    let log = AckLog::new();
    f.worker.handle(binary(&log, None, &[])).await;
    assert_eq!(f.store.quarantined().len(), 1);
    assert_eq!(log.settled(), [Settled::Ack]);
}
