//! Per-subject ordering as a specification: in a subscription with
//! `ordering = "per-subject"`, a delivery that must wait (retry) becomes the head of its
//! ordering key; later deliveries with that key are parked in the store (acked from
//! RabbitMQ) and not sent; other keys flow. When the head is settled (delivered or
//! dead-lettered) the first parked delivery is published back to the subscription's
//! queue and becomes the head, until none waits. A crash between settling and releasing
//! is repaired by the head's redelivery.

mod common;

use std::sync::Arc;

use civicbus_core::delivery::{HEADER_ATTEMPT, HEADER_OUTPUT_INDEX, HEADER_SUBSCRIPTION};
use civicbus_core::ports::{Destination, InboundMessage, PortError, SinkOutcome};
use civicbus_core::subscription::Ordering;
use civicbus_core::{CloudEvent, ExtensionValue, RetryPolicy};
use civicbus_router::DeliveryWorker;
use civicbus_router::deliver::ordering_key_of;
use common::{
    AckLog, MemoryStore, NO_BACKOFF, REQUEUED, RecordingPublisher, ScriptedSink, Settled, inbound,
    inbound_event, subscription, tenant_event,
};

const KEY: &str = "dysart.finance";

struct Fixture {
    sink: Arc<ScriptedSink>,
    publisher: Arc<RecordingPublisher>,
    store: Arc<MemoryStore>,
    log: AckLog,
    worker: DeliveryWorker,
}

fn fixture(outcomes: Vec<SinkOutcome>, ordering: Ordering) -> Fixture {
    let mut sub = subscription("dysart", "finance", vec![]);
    sub.ordering = ordering;
    sub.retry = RetryPolicy {
        max_attempts: 5,
        ..RetryPolicy::default()
    };
    let sink = ScriptedSink::new(outcomes);
    let publisher = RecordingPublisher::new();
    let store = MemoryStore::new();
    let worker = DeliveryWorker::new(
        sub,
        sink.clone(),
        store.clone(),
        publisher.clone(),
        Default::default(),
    )
    .with_infra_backoff(NO_BACKOFF);
    Fixture {
        sink,
        publisher,
        store,
        log: AckLog::new(),
        worker,
    }
}

/// Event `id` about permit `subject`.
fn event(id: &str, subject: &str) -> CloudEvent {
    let mut ev = tenant_event("dysart", id, "ca.haliburton.permitting.permit.fee-assessed");
    ev.subject = Some(subject.into());
    ev
}

fn delivery(log: &AckLog, ev: &CloudEvent, attempt: &str) -> InboundMessage {
    inbound_event(
        ev,
        &[
            (HEADER_SUBSCRIPTION, KEY),
            (HEADER_OUTPUT_INDEX, "0"),
            (HEADER_ATTEMPT, attempt),
        ],
        log,
        &ev.id,
    )
}

fn unavailable() -> SinkOutcome {
    SinkOutcome::Retryable {
        status: Some(503),
        reason: "HTTP 503 from finance".into(),
        retry_after: None,
    }
}

fn webhook_id(id: &str) -> String {
    civicbus_core::delivery::idempotency_key(KEY, "/dysart/permitting", id, 0)
}

/// Messages published back to the subscription's queue (released), in order.
fn released(f: &Fixture) -> Vec<InboundMessage> {
    f.publisher
        .published()
        .into_iter()
        .filter(|(to, _)| matches!(to, Destination::Subscription { .. }))
        .enumerate()
        .map(|(i, (_, m))| inbound(m, &f.log, &format!("released-{i}")))
        .collect()
}

fn sent_ids(f: &Fixture) -> Vec<String> {
    f.sink.sent().into_iter().map(|s| s.event_id).collect()
}

#[tokio::test]
async fn a_failing_key_holds_back_its_own_events_only_and_releases_them_in_order() {
    let f = fixture(vec![unavailable()], Ordering::PerSubject);
    let (a1, a2, a3) = (
        event("a1", "BP-1"),
        event("a2", "BP-1"),
        event("a3", "BP-1"),
    );
    let b1 = event("b1", "BP-2");

    // a1 fails: it waits for a retry and heads BP-1.
    f.worker.handle(delivery(&f.log, &a1, "1")).await;
    assert_eq!(f.store.head(KEY, "BP-1"), Some(webhook_id("a1")));
    // a2 and a3 are parked behind it (acked from RabbitMQ, not sent); b1 flows.
    f.worker.handle(delivery(&f.log, &a2, "1")).await;
    f.worker.handle(delivery(&f.log, &b1, "1")).await;
    f.worker.handle(delivery(&f.log, &a3, "1")).await;
    assert_eq!(sent_ids(&f), ["a1", "b1"]);
    let parked: Vec<String> = f
        .store
        .parked()
        .iter()
        .map(|p| p.idempotency_key.clone())
        .collect();
    assert_eq!(parked, [webhook_id("a2"), webhook_id("a3")]);
    assert!(f.log.settled().iter().all(|s| *s == Settled::Ack));
    assert_eq!(f.store.head(KEY, "BP-2"), None, "b1 never waited");

    // A redelivered copy of a2 parks nothing new.
    f.worker.handle(delivery(&f.log, &a2, "1")).await;
    assert_eq!(f.store.parked().len(), 2);

    // a1 comes back from its wait and is delivered: a2 is released and heads BP-1.
    f.worker.handle(delivery(&f.log, &a1, "2")).await;
    assert_eq!(sent_ids(&f), ["a1", "b1", "a1"]);
    assert_eq!(f.store.head(KEY, "BP-1"), Some(webhook_id("a2")));
    let out = released(&f);
    assert_eq!(out.len(), 1);
    // Meanwhile a new BP-1 event arrives: it is parked behind a2 (after a3).
    let a4 = event("a4", "BP-1");
    f.worker.handle(delivery(&f.log, &a4, "1")).await;
    assert_eq!(sent_ids(&f).len(), 3);

    // Each released delivery releases the next, in order.
    let mut next = out.into_iter().next();
    let mut rounds = 0;
    while let Some(msg) = next {
        rounds += 1;
        f.worker.handle(msg).await;
        next = released(&f).into_iter().nth(rounds);
    }
    assert_eq!(sent_ids(&f), ["a1", "b1", "a1", "a2", "a3", "a4"]);
    assert_eq!(f.store.head(KEY, "BP-1"), None, "nothing waits any more");
    assert!(f.store.parked().is_empty());
}

#[tokio::test]
async fn a_dead_lettered_head_releases_the_next() {
    let f = fixture(
        vec![SinkOutcome::Terminal {
            status: Some(422),
            reason: "HTTP 422".into(),
        }],
        Ordering::PerSubject,
    );
    let (a1, a2) = (event("a1", "BP-1"), event("a2", "BP-1"));
    // a1 is the head (as if it had failed before).
    f.store.set_head_for_test(KEY, "BP-1", &webhook_id("a1"));
    f.worker.handle(delivery(&f.log, &a2, "1")).await;
    assert_eq!(f.store.parked().len(), 1);
    f.worker.handle(delivery(&f.log, &a1, "3")).await;
    assert_eq!(f.store.dead_letters().len(), 1);
    assert_eq!(f.store.head(KEY, "BP-1"), Some(webhook_id("a2")));
    let out = released(&f);
    assert_eq!(out.len(), 1);
    f.worker
        .handle(out.into_iter().next().expect("released"))
        .await;
    assert_eq!(sent_ids(&f), ["a1", "a2"]);
    assert_eq!(f.store.head(KEY, "BP-1"), None);
}

#[tokio::test]
async fn a_release_that_failed_is_done_by_the_heads_redelivery() {
    let f = fixture(vec![], Ordering::PerSubject);
    let (a1, a2) = (event("a1", "BP-1"), event("a2", "BP-1"));
    f.store.set_head_for_test(KEY, "BP-1", &webhook_id("a1"));
    f.worker.handle(delivery(&f.log, &a2, "1")).await;
    // a1 is delivered, but RabbitMQ refuses the release: a1 is handed back.
    f.publisher
        .fail_next(1, PortError::unavailable("broker down"));
    f.worker.handle(delivery(&f.log, &a1, "2")).await;
    assert_eq!(f.log.settled().last(), Some(&REQUEUED));
    assert_eq!(f.store.head(KEY, "BP-1"), Some(webhook_id("a1")));
    // Redelivered, a1 is found delivered (not sent again) and releases a2.
    f.worker.handle(delivery(&f.log, &a1, "2")).await;
    assert_eq!(sent_ids(&f), ["a1"]);
    assert_eq!(f.store.head(KEY, "BP-1"), Some(webhook_id("a2")));
    assert_eq!(released(&f).len(), 1);
}

#[tokio::test]
async fn unordered_subscriptions_and_keyless_events_never_wait() {
    let f = fixture(vec![unavailable()], Ordering::Unordered);
    let (a1, a2) = (event("a1", "BP-1"), event("a2", "BP-1"));
    f.worker.handle(delivery(&f.log, &a1, "1")).await;
    f.worker.handle(delivery(&f.log, &a2, "1")).await;
    assert_eq!(sent_ids(&f), ["a1", "a2"]);
    assert_eq!(f.store.head(KEY, "BP-1"), None);

    let g = fixture(vec![unavailable()], Ordering::PerSubject);
    let k1 = tenant_event(
        "dysart",
        "k1",
        "ca.haliburton.permitting.permit.fee-assessed",
    );
    let k2 = tenant_event(
        "dysart",
        "k2",
        "ca.haliburton.permitting.permit.fee-assessed",
    );
    g.worker.handle(delivery(&g.log, &k1, "1")).await;
    g.worker.handle(delivery(&g.log, &k2, "1")).await;
    assert_eq!(
        sent_ids(&g),
        ["k1", "k2"],
        "no subject, no partitionkey: unordered"
    );
    assert!(g.store.parked().is_empty());
}

#[tokio::test]
async fn partitionkey_orders_before_subject_and_headers_give_the_same_key() {
    let f = fixture(vec![unavailable()], Ordering::PerSubject);
    let mut a1 = event("a1", "BP-1");
    a1.extensions.insert(
        "partitionkey".into(),
        ExtensionValue::String("roll-4410".into()),
    );
    let mut a2 = event("a2", "BP-2");
    a2.extensions.insert(
        "partitionkey".into(),
        ExtensionValue::String("roll-4410".into()),
    );
    let m1 = delivery(&f.log, &a1, "1");
    assert_eq!(ordering_key_of(&m1).as_deref(), Some("roll-4410"));
    f.worker.handle(m1).await;
    f.worker.handle(delivery(&f.log, &a2, "1")).await;
    assert_eq!(
        sent_ids(&f),
        ["a1"],
        "same partition key, different subjects"
    );
    assert_eq!(f.store.head(KEY, "roll-4410"), Some(webhook_id("a1")));
    let plain = delivery(&f.log, &event("x", "BP-9"), "1");
    assert_eq!(ordering_key_of(&plain).as_deref(), Some("BP-9"));
}

#[tokio::test]
async fn a_store_that_cannot_park_hands_the_delivery_back() {
    let f = fixture(vec![], Ordering::PerSubject);
    f.store.set_head_for_test(KEY, "BP-1", &webhook_id("a1"));
    f.store.fail_next(common::StoreOp::Park, 1);
    f.worker
        .handle(delivery(&f.log, &event("a2", "BP-1"), "1"))
        .await;
    assert_eq!(f.log.settled(), [REQUEUED]);
    assert!(f.sink.sent().is_empty());
}
