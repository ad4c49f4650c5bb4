//! Routing as a specification: archive, then one delivery per matching subscription, and
//! only then ack. Any failure hands the message back; nothing is acknowledged early.

mod common;

use std::sync::Arc;

use civicbus_core::delivery::{
    HEADER_ACTOR, HEADER_ATTEMPT, HEADER_OUTPUT_INDEX, HEADER_RECEIVED_AT, HEADER_SUBSCRIPTION,
    HEADER_TRACEPARENT,
};
use civicbus_core::ports::{Destination, PortError};
use civicbus_core::tenant::{Audience, SharingRule};
use civicbus_core::{RoutingTable, Subscription};
use civicbus_router::RouteWorker;
use common::{
    AckLog, MemoryStore, NO_BACKOFF, REQUEUED, RecordingPublisher, Settled, StoreOp, TRACEPARENT,
    decode, event, header, header_count, inbound_event, inbound_raw, subscription, tenant_event,
    type_prefix,
};

const PERMIT_ISSUED: &str = "ca.haliburton.permitting.permit.issued";
const PARCEL_UPDATED: &str = "ca.haliburton.gis.parcel.updated";
const RECEIVED_AT: &str = "2026-11-25T14:03:00.000000Z";

struct Fixture {
    publisher: Arc<RecordingPublisher>,
    store: Arc<MemoryStore>,
    log: AckLog,
    worker: RouteWorker,
}

fn fixture_with(subscriptions: Vec<Subscription>, shares: Vec<SharingRule>) -> Fixture {
    let publisher = RecordingPublisher::new();
    let store = MemoryStore::new();
    let table = Arc::new(RoutingTable::new(subscriptions, shares));
    let worker = RouteWorker::new(table, store.clone(), publisher.clone(), Default::default())
        .with_infra_backoff(NO_BACKOFF);
    Fixture {
        publisher,
        store,
        log: AckLog::new(),
        worker,
    }
}

/// Dysart's records system files permits; its finance system takes everything; Minden's
/// records system also wants permits, but Dysart does not share them.
fn fixture() -> Fixture {
    fixture_with(
        vec![
            subscription(
                "dysart",
                "records",
                vec![type_prefix("ca.haliburton.permitting.")],
            ),
            subscription("dysart", "finance", vec![]),
            subscription("dysart", "gis", vec![type_prefix("ca.haliburton.gis.")]),
            subscription(
                "minden",
                "records",
                vec![type_prefix("ca.haliburton.permitting.")],
            ),
        ],
        vec![],
    )
}

fn routed_headers<'a>(t: &'a [(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![
        (HEADER_ACTOR, "dysart-permits"),
        (HEADER_RECEIVED_AT, RECEIVED_AT),
    ];
    h.extend_from_slice(t);
    h
}

fn keys_of(published: &[(Destination, civicbus_core::ports::OutboundMessage)]) -> Vec<String> {
    published
        .iter()
        .map(|(to, _)| match to {
            Destination::Subscription { key } => key.clone(),
            other => panic!("a delivery goes to a subscription queue, not {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn archives_then_enqueues_one_delivery_per_matching_subscription_then_acks() {
    let f = fixture();
    let ev = tenant_event("dysart", "P-1", PERMIT_ISSUED);
    let headers = routed_headers(&[(HEADER_TRACEPARENT, TRACEPARENT)]);
    f.worker
        .handle(inbound_event(&ev, &headers, &f.log, "m"))
        .await;

    let archived = f.store.archive_calls();
    assert_eq!(archived.len(), 1);
    let (a, routed_to) = &archived[0];
    assert_eq!(a.event, ev);
    assert_eq!(a.tenant, "dysart");
    assert_eq!(a.actor, "dysart-permits");
    assert_eq!(a.received_at.to_rfc3339(), "2026-11-25T14:03:00+00:00");
    assert_eq!(*routed_to, ["dysart.records", "dysart.finance"]);

    let published = f.publisher.published();
    assert_eq!(f.publisher.batches(), 1, "confirmed together");
    assert_eq!(keys_of(&published), ["dysart.records", "dysart.finance"]);
    for (to, msg) in &published {
        let Destination::Subscription { key } = to else {
            unreachable!()
        };
        assert_eq!(decode(msg), ev, "{key}: the event itself");
        assert_eq!(msg.message_id.as_deref(), Some("P-1"));
        assert_eq!(header(msg, HEADER_SUBSCRIPTION), Some(key.as_str()));
        assert_eq!(header(msg, HEADER_OUTPUT_INDEX), Some("0"));
        assert_eq!(header(msg, HEADER_ATTEMPT), Some("1"));
        assert_eq!(header(msg, HEADER_TRACEPARENT), Some(TRACEPARENT));
        for h in [HEADER_SUBSCRIPTION, HEADER_OUTPUT_INDEX, HEADER_ATTEMPT] {
            assert_eq!(header_count(msg, h), 1, "{key}: {h} once");
        }
    }
    assert_eq!(f.log.settled(), [Settled::Ack]);
}

#[tokio::test]
async fn acks_an_event_no_subscription_wants_after_archiving_it() {
    let f = fixture();
    let ev = tenant_event("minden", "W-1", "ca.haliburton.works.order.created");
    f.worker
        .handle(inbound_event(&ev, &routed_headers(&[]), &f.log, "m"))
        .await;
    let archived = f.store.archive_calls();
    assert_eq!(archived.len(), 1);
    assert!(archived[0].1.is_empty());
    assert_eq!(f.publisher.calls(), 0);
    assert_eq!(f.log.settled(), [Settled::Ack]);
}

#[tokio::test]
async fn a_failure_hands_the_message_back_and_acks_nothing() {
    let cases = [
        ("archive fails", Some(StoreOp::Archive), None),
        (
            "publish unavailable",
            None,
            Some(PortError::unavailable("RabbitMQ is down")),
        ),
        (
            "publish rejected",
            None,
            Some(PortError::rejected("queue not found")),
        ),
    ];
    for (name, store_fails, publish_fails) in cases {
        let f = fixture();
        if let Some(op) = store_fails {
            f.store.fail_next(op, 1);
        }
        if let Some(e) = publish_fails {
            f.publisher.fail_next(1, e);
        }
        let ev = tenant_event("dysart", "P-1", PERMIT_ISSUED);
        f.worker
            .handle(inbound_event(&ev, &routed_headers(&[]), &f.log, "m"))
            .await;
        assert_eq!(
            f.log.settled(),
            [REQUEUED],
            "{name}: handed back, not acked"
        );
        assert!(f.publisher.published().is_empty(), "{name}");
        if store_fails.is_some() {
            assert_eq!(
                f.publisher.calls(),
                0,
                "{name}: nothing published before the archive"
            );
        }
        assert!(f.store.quarantined().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn a_redelivered_event_already_archived_is_enqueued_again() {
    // A crash between the archive and the publish must not lose the deliveries: the
    // redelivered message finds the event archived (archive returns false) and still
    // enqueues every delivery.
    let f = fixture();
    let ev = tenant_event("dysart", "P-1", PERMIT_ISSUED);
    f.publisher
        .fail_next(1, PortError::unavailable("connection lost"));
    f.worker
        .handle(inbound_event(&ev, &routed_headers(&[]), &f.log, "first"))
        .await;
    let mut again = inbound_event(&ev, &routed_headers(&[]), &f.log, "redelivered");
    again.redelivered = true;
    again.delivery_count = 1;
    f.worker.handle(again).await;

    assert_eq!(f.store.archive_calls().len(), 2);
    assert_eq!(f.store.archived_count(), 1, "archived once");
    assert_eq!(
        keys_of(&f.publisher.published()),
        ["dysart.records", "dysart.finance"]
    );
    assert_eq!(
        f.log.entries(),
        [
            ("first".to_string(), REQUEUED),
            ("redelivered".to_string(), Settled::Ack)
        ]
    );
}

#[tokio::test]
async fn sharing_rules_decide_who_sees_another_tenants_events() {
    let subs = vec![
        subscription("county", "gis", vec![type_prefix("ca.haliburton.gis.")]),
        subscription("dysart", "gis", vec![type_prefix("ca.haliburton.gis.")]),
        subscription("minden", "gis", vec![type_prefix("ca.haliburton.gis.")]),
        subscription("minden", "everything", vec![]),
        subscription("highlands", "everything", vec![]),
    ];
    let shares = vec![
        SharingRule {
            owner: "county".into(),
            type_prefix: "ca.haliburton.gis.".into(),
            audience: Audience::Tenants(vec!["dysart".into(), "minden".into()]),
        },
        SharingRule {
            owner: "dysart".into(),
            type_prefix: "ca.haliburton.permitting.".into(),
            audience: Audience::All,
        },
    ];
    // (case, owner, type, subscriptions reached)
    let cases: [(&str, &str, &str, &[&str]); 4] = [
        (
            "county GIS shared with dysart and minden",
            "county",
            PARCEL_UPDATED,
            &[
                "county.gis",
                "dysart.gis",
                "minden.gis",
                "minden.everything",
            ],
        ),
        (
            "county events of other types stay with the county",
            "county",
            PERMIT_ISSUED,
            &[],
        ),
        (
            "dysart permits shared with everyone",
            "dysart",
            PERMIT_ISSUED,
            &["minden.everything", "highlands.everything"],
        ),
        (
            "dysart GIS not shared",
            "dysart",
            PARCEL_UPDATED,
            &["dysart.gis"],
        ),
    ];
    for (name, owner, ty, want) in cases {
        let f = fixture_with(subs.clone(), shares.clone());
        let ev = tenant_event(owner, "E-1", ty);
        f.worker
            .handle(inbound_event(&ev, &routed_headers(&[]), &f.log, "m"))
            .await;
        assert_eq!(keys_of(&f.publisher.published()), want, "{name}");
        assert_eq!(
            f.store.archive_calls()[0].1,
            want,
            "{name}: archive says where"
        );
        assert_eq!(f.log.settled(), [Settled::Ack], "{name}");
    }
}

#[tokio::test]
async fn quarantines_and_acks_what_is_not_a_routable_event() {
    let no_tenant = event("P-1", "/dysart/permitting", PERMIT_ISSUED);
    // (case, body, content type, kind, field)
    let cases: [(&str, Vec<u8>, &str, &str, &str); 3] = [
        (
            "not JSON",
            b"<permit/>".to_vec(),
            "application/cloudevents+json",
            "malformed-json",
            "",
        ),
        (
            "not a CloudEvent",
            br#"{"permit_number":"P-1"}"#.to_vec(),
            "application/cloudevents+json",
            "missing-attribute",
            "specversion",
        ),
        (
            "no tenant",
            no_tenant.to_structured_bytes(),
            "application/cloudevents+json",
            "missing-tenant",
            "tenant",
        ),
    ];
    for (name, body, ct, kind, field) in cases {
        let f = fixture();
        f.worker
            .handle(inbound_raw(&body, Some(ct), &[], &f.log, "m"))
            .await;
        let q = f.store.quarantined();
        assert_eq!(q.len(), 1, "{name}");
        assert_eq!(q[0].reason_kind, kind, "{name}");
        assert_eq!(q[0].field, field, "{name}");
        assert_eq!(q[0].transport, "events", "{name}");
        assert_eq!(q[0].body, body, "{name}: kept as received");
        assert_eq!(f.log.settled(), [Settled::Ack], "{name}");
        assert!(f.store.archive_calls().is_empty(), "{name}: not archived");
        assert_eq!(f.publisher.calls(), 0, "{name}");
    }
}

#[tokio::test]
async fn an_unquarantinable_message_is_handed_back() {
    let f = fixture();
    f.store.fail_next(StoreOp::Quarantine, 1);
    f.worker
        .handle(inbound_raw(
            b"{",
            Some("application/cloudevents+json"),
            &[],
            &f.log,
            "m",
        ))
        .await;
    assert_eq!(f.log.settled(), [REQUEUED]);
}
