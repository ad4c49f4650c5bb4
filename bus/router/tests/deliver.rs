//! Delivery as a specification: every attempt is recorded before the message is settled;
//! a delivered key is never sent again; retryable failures wait in the retry queue,
//! terminal ones go to the dead-letter queue; the `webhook-id` never changes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use civicbus_core::delivery::{
    HEADER_ATTEMPT, HEADER_ERROR, HEADER_OUTCOME, HEADER_OUTPUT_INDEX, HEADER_SUBSCRIPTION,
    HEADER_TRACEPARENT, idempotency_key,
};
use civicbus_core::ports::{
    AttemptStatus, Destination, InboundMessage, OutboundMessage, PortError, SinkOutcome,
};
use civicbus_core::{CloudEvent, Subscription};
use civicbus_router::DeliveryWorker;
use common::{
    AckLog, MemoryStore, NO_BACKOFF, REQUEUED, RecordingPublisher, ScriptedSink, Settled, StoreOp,
    TRACEPARENT, header, header_count, inbound, inbound_event, inbound_raw, subscription,
    tenant_event,
};

const PERMIT_ISSUED: &str = "ca.haliburton.permitting.permit.issued";
const KEY: &str = "dysart.records";

struct Fixture {
    sub: Subscription,
    sink: Arc<ScriptedSink>,
    publisher: Arc<RecordingPublisher>,
    store: Arc<MemoryStore>,
    log: AckLog,
    worker: DeliveryWorker,
}

fn fixture(outcomes: Vec<SinkOutcome>) -> Fixture {
    let sub = subscription("dysart", "records", vec![]);
    let sink = ScriptedSink::new(outcomes);
    let publisher = RecordingPublisher::new();
    let store = MemoryStore::new();
    let worker = DeliveryWorker::new(
        sub.clone(),
        sink.clone(),
        store.clone(),
        publisher.clone(),
        Default::default(),
    )
    .with_infra_backoff(NO_BACKOFF);
    Fixture {
        sub,
        sink,
        publisher,
        store,
        log: AckLog::new(),
        worker,
    }
}

fn permit() -> CloudEvent {
    tenant_event("dysart", "P-2026-0042", PERMIT_ISSUED)
}

/// The delivery message the router enqueues for `KEY`, as received, plus `extra` headers
/// (RabbitMQ's, on a redelivery).
fn delivery(log: &AckLog, label: &str, extra: &[(&str, &str)]) -> InboundMessage {
    let mut headers = vec![
        (HEADER_SUBSCRIPTION, KEY),
        (HEADER_OUTPUT_INDEX, "0"),
        (HEADER_ATTEMPT, "1"),
        (HEADER_TRACEPARENT, TRACEPARENT),
    ];
    headers.extend_from_slice(extra);
    inbound_event(&permit(), &headers, log, label)
}

fn expected_key() -> String {
    let ev = permit();
    idempotency_key(KEY, &ev.source, &ev.id, 0)
}

fn retryable(reason: &str) -> SinkOutcome {
    SinkOutcome::Retryable {
        status: Some(503),
        reason: reason.into(),
        retry_after: None,
    }
}

#[tokio::test]
async fn a_delivery_is_recorded_then_acked() {
    let f = fixture(vec![SinkOutcome::Delivered { status: Some(204) }]);
    f.worker.handle(delivery(&f.log, "m", &[])).await;

    let sent = f.sink.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].idempotency_key, expected_key());
    assert_eq!(sent[0].subscription, KEY);
    assert_eq!(sent[0].attempt, 1);
    assert_eq!(sent[0].traceparent.as_deref(), Some(TRACEPARENT));

    let attempts = f.store.attempts();
    assert_eq!(attempts.len(), 1);
    let a = &attempts[0];
    assert_eq!(a.idempotency_key, expected_key());
    assert_eq!(a.attempt, 1);
    assert_eq!(a.status, AttemptStatus::Delivered);
    assert_eq!(a.response_code, Some(204));
    assert_eq!(a.error, None);
    assert_eq!(a.tenant, f.sub.tenant);
    assert_eq!(a.subscription, KEY);
    assert_eq!(a.event_tenant, "dysart");
    assert_eq!(a.event_source, "/dysart/permitting");
    assert_eq!(a.event_id, "P-2026-0042");
    assert!(a.duration < Duration::from_secs(5));

    assert_eq!(f.log.settled(), [Settled::Ack]);
    assert_eq!(f.publisher.calls(), 0);
}

#[tokio::test]
async fn an_already_delivered_key_is_not_sent_again() {
    let f = fixture(vec![]);
    f.store.mark_delivered(&expected_key());
    f.worker.handle(delivery(&f.log, "m", &[])).await;
    assert!(f.sink.sent().is_empty(), "not sent");
    assert_eq!(f.log.settled(), [Settled::Ack]);
    assert_eq!(f.publisher.calls(), 0);
}

#[tokio::test]
async fn the_second_copy_of_a_delivered_message_is_acked_without_sending() {
    let f = fixture(vec![]);
    f.worker.handle(delivery(&f.log, "first", &[])).await;
    let mut again = delivery(&f.log, "again", &[]);
    again.redelivered = true;
    f.worker.handle(again).await;
    assert_eq!(f.sink.sent().len(), 1);
    assert_eq!(f.log.settled(), [Settled::Ack, Settled::Ack]);
}

#[tokio::test]
async fn a_retryable_failure_waits_in_the_retry_queue() {
    let f = fixture(vec![retryable(
        "HTTP 503 from https://records.dysart.example",
    )]);
    let rabbit = [
        (
            "x-death",
            r#"[{"queue":"civicbus.sub.dysart.records.retry"}]"#,
        ),
        ("x-first-death-queue", "civicbus.sub.dysart.records"),
        ("x-first-death-reason", "expired"),
        ("x-last-death-queue", "civicbus.sub.dysart.records.retry"),
        ("x-last-death-reason", "expired"),
        ("x-delivery-count", "0"),
    ];
    f.worker.handle(delivery(&f.log, "m", &rabbit)).await;

    let published = f.publisher.published();
    assert_eq!(published.len(), 1);
    let (to, msg) = &published[0];
    let Destination::Retry { key, delay } = to else {
        panic!("published to {to:?}, not to the delay queues");
    };
    assert_eq!(key, KEY);
    // The default policy waits 5 s ± 20 % after the first failure.
    assert!(
        *delay >= Duration::from_secs(4) && *delay <= Duration::from_secs(6),
        "{delay:?}"
    );
    assert_eq!(header(msg, HEADER_ATTEMPT), Some("2"), "next attempt");
    assert_eq!(header_count(msg, HEADER_ATTEMPT), 1);
    assert_eq!(header(msg, HEADER_OUTCOME), Some("retryable"));
    assert_eq!(
        header(msg, HEADER_ERROR),
        Some("HTTP 503 from https://records.dysart.example")
    );
    for (name, _) in rabbit {
        assert_eq!(header(msg, name), None, "{name} stripped");
    }
    assert_eq!(header(msg, HEADER_SUBSCRIPTION), Some(KEY));
    assert_eq!(header(msg, HEADER_OUTPUT_INDEX), Some("0"));
    assert_eq!(header(msg, HEADER_TRACEPARENT), Some(TRACEPARENT));
    assert_eq!(
        msg.body,
        civicbus_core::wire::to_amqp(&permit(), vec![]).body
    );

    let attempts = f.store.attempts();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, AttemptStatus::Retryable);
    assert_eq!(attempts[0].response_code, Some(503));
    assert_eq!(
        attempts[0].error.as_deref(),
        Some("HTTP 503 from https://records.dysart.example")
    );
    assert_eq!(f.log.settled(), [Settled::Ack], "acked after the confirm");
}

#[tokio::test]
async fn terminal_and_gone_go_to_the_dead_letter_queue() {
    let cases = [
        (
            SinkOutcome::Terminal {
                status: Some(422),
                reason: "HTTP 422: permit_number is required".into(),
            },
            "terminal",
            Some(422),
        ),
        (
            SinkOutcome::Gone {
                reason: "HTTP 410: endpoint retired".into(),
            },
            "gone",
            Some(410),
        ),
    ];
    for (outcome, status, code) in cases {
        let f = fixture(vec![outcome.clone()]);
        f.worker.handle(delivery(&f.log, "m", &[])).await;
        let (announced, published): (Vec<_>, Vec<_>) = f
            .publisher
            .published()
            .into_iter()
            .partition(|(to, _)| matches!(to, Destination::Events { .. }));
        // A 410 also disables the endpoint, which is announced with an event.
        assert_eq!(announced.len(), usize::from(status == "gone"), "{status}");
        assert_eq!(published.len(), 1, "{status}");
        let (to, msg) = &published[0];
        assert_eq!(*to, Destination::DeadLetter { key: KEY.into() }, "{status}");
        assert_eq!(header(msg, HEADER_OUTCOME), Some(status));
        assert_eq!(header(msg, HEADER_ERROR), outcome.error(), "{status}");
        assert_eq!(
            header(msg, HEADER_ATTEMPT),
            Some("1"),
            "{status}: the attempt that failed"
        );
        assert_eq!(header_count(msg, HEADER_ATTEMPT), 1, "{status}");
        let attempts = f.store.attempts();
        assert_eq!(attempts[0].status.as_str(), status);
        assert_eq!(attempts[0].response_code, code);
        assert_eq!(f.log.settled(), [Settled::Ack], "{status}");
    }
}

#[tokio::test]
async fn dead_letters_carry_the_attempt_that_failed() {
    let f = fixture(vec![SinkOutcome::Terminal {
        status: Some(400),
        reason: "bad request".into(),
    }]);
    let mut msg = inbound_event(
        &permit(),
        &[(HEADER_SUBSCRIPTION, KEY), (HEADER_ATTEMPT, "4")],
        &f.log,
        "m",
    );
    msg.delivery_count = 1;
    f.worker.handle(msg).await;
    let (_, dead) = &f.publisher.published()[0];
    assert_eq!(header(dead, HEADER_ATTEMPT), Some("5"));
    assert_eq!(f.store.attempts()[0].attempt, 5);
}

#[tokio::test]
async fn a_failure_to_move_or_record_hands_the_message_back() {
    let cases: [(&str, SinkOutcome, Option<StoreOp>, bool); 5] = [
        ("retry not confirmed", retryable("timeout"), None, true),
        (
            "dead letter not confirmed",
            SinkOutcome::Terminal {
                status: Some(400),
                reason: "bad".into(),
            },
            None,
            true,
        ),
        (
            "attempt not recorded (delivered)",
            SinkOutcome::Delivered { status: Some(200) },
            Some(StoreOp::RecordAttempt),
            false,
        ),
        (
            "attempt not recorded (retryable)",
            retryable("timeout"),
            Some(StoreOp::RecordAttempt),
            false,
        ),
        (
            "idempotency not checkable",
            SinkOutcome::Delivered { status: Some(200) },
            Some(StoreOp::IsDelivered),
            false,
        ),
    ];
    for (name, outcome, store_fails, publish_fails) in cases {
        let f = fixture(vec![outcome]);
        if let Some(op) = store_fails {
            f.store.fail_next(op, 1);
        }
        if publish_fails {
            f.publisher
                .fail_next(1, PortError::unavailable("RabbitMQ is down"));
        }
        f.worker.handle(delivery(&f.log, "m", &[])).await;
        assert_eq!(
            f.log.settled(),
            [REQUEUED],
            "{name}: handed back, not acked"
        );
        assert!(f.publisher.published().is_empty(), "{name}");
        if store_fails == Some(StoreOp::RecordAttempt) {
            assert_eq!(
                f.publisher.calls(),
                0,
                "{name}: not moved on without the record"
            );
        }
        if store_fails == Some(StoreOp::IsDelivered) {
            assert!(f.sink.sent().is_empty(), "{name}: not sent unchecked");
        }
    }
}

#[tokio::test]
async fn the_attempt_number_counts_redeliveries() {
    // (x-civicbus-attempt header, delivery_count, attempt)
    let cases = [
        (Some("1"), 0, 1),
        (Some("1"), 2, 3),
        (Some("4"), 0, 4),
        (Some("4"), 3, 7),
        (None, 0, 1),
        (Some("garbage"), 1, 2),
        (Some("0"), 0, 1),
    ];
    for (attempt_header, delivery_count, want) in cases {
        let f = fixture(vec![]);
        let mut headers = vec![(HEADER_SUBSCRIPTION, KEY)];
        if let Some(a) = attempt_header {
            headers.push((HEADER_ATTEMPT, a));
        }
        let mut msg = inbound_event(&permit(), &headers, &f.log, "m");
        msg.delivery_count = delivery_count;
        f.worker.handle(msg).await;
        let case = format!("{attempt_header:?} + {delivery_count}");
        assert_eq!(f.sink.sent()[0].attempt, want, "{case}: sent");
        assert_eq!(f.store.attempts()[0].attempt, want, "{case}: recorded");
    }
}

#[tokio::test]
async fn the_attempt_number_never_overflows() {
    let f = fixture(vec![retryable("timeout")]);
    let mut msg = inbound_event(
        &permit(),
        &[(HEADER_ATTEMPT, &u32::MAX.to_string())],
        &f.log,
        "m",
    );
    msg.delivery_count = 3;
    f.worker.handle(msg).await;
    let (_, next) = &f.publisher.published()[0];
    assert_eq!(header(next, HEADER_ATTEMPT), Some(&*u32::MAX.to_string()));
    assert_eq!(f.log.settled(), [Settled::Ack]);
}

#[tokio::test]
async fn the_idempotency_key_is_the_same_on_every_attempt() {
    let f = fixture(vec![
        retryable("timeout"),
        retryable("HTTP 502"),
        SinkOutcome::Delivered { status: Some(200) },
    ]);
    // First delivery, then a channel-close redelivery of the retried copy, then the copy
    // back from the retry queue.
    f.worker.handle(delivery(&f.log, "1", &[])).await;
    let next = |f: &Fixture| -> OutboundMessage {
        let published = f.publisher.published();
        published.last().expect("a retry copy").1.clone()
    };
    let mut second = inbound(next(&f), &f.log, "2");
    second.delivery_count = 1;
    second.redelivered = true;
    f.worker.handle(second).await;
    f.worker.handle(inbound(next(&f), &f.log, "3")).await;

    let sent = f.sink.sent();
    let keys: Vec<&str> = sent.iter().map(|s| s.idempotency_key.as_str()).collect();
    let key = expected_key();
    assert_eq!(keys, [key.as_str(); 3]);
    let attempts: Vec<u32> = sent.iter().map(|s| s.attempt).collect();
    assert_eq!(attempts, [1, 3, 4]);
    assert_eq!(f.log.settled(), [Settled::Ack; 3]);
    // Delivered: a fourth copy is not sent.
    f.worker.handle(delivery(&f.log, "4", &[])).await;
    assert_eq!(f.sink.sent().len(), 3);
}

#[tokio::test]
async fn the_output_index_is_part_of_the_key() {
    let f = fixture(vec![]);
    f.worker
        .handle(inbound_event(
            &permit(),
            &[(HEADER_OUTPUT_INDEX, "2")],
            &f.log,
            "m",
        ))
        .await;
    let ev = permit();
    assert_eq!(
        f.sink.sent()[0].idempotency_key,
        idempotency_key(KEY, &ev.source, &ev.id, 2)
    );
}

#[tokio::test]
async fn a_message_that_is_not_an_event_is_quarantined() {
    let f = fixture(vec![]);
    f.worker
        .handle(inbound_raw(
            b"{}",
            Some("application/cloudevents+json"),
            &[],
            &f.log,
            "m",
        ))
        .await;
    let q = f.store.quarantined();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].transport, "delivery");
    assert_eq!(q[0].tenant.as_deref(), Some("dysart"));
    assert!(f.sink.sent().is_empty());
    assert_eq!(f.log.settled(), [Settled::Ack]);
}

fn fixture_with(policy: civicbus_core::RetryPolicy, outcomes: Vec<SinkOutcome>) -> Fixture {
    let mut f = fixture(outcomes);
    f.sub.retry = policy;
    f.worker = DeliveryWorker::new(
        f.sub.clone(),
        f.sink.clone(),
        f.store.clone(),
        f.publisher.clone(),
        Default::default(),
    )
    .with_infra_backoff(NO_BACKOFF);
    f
}

#[tokio::test]
async fn retry_after_from_the_subscriber_sets_the_wait() {
    let f = fixture(vec![SinkOutcome::Retryable {
        status: Some(429),
        reason: "HTTP 429".into(),
        retry_after: Some(Duration::from_secs(90)),
    }]);
    f.worker.handle(delivery(&f.log, "m", &[])).await;
    let (to, _) = &f.publisher.published()[0];
    assert_eq!(
        *to,
        Destination::Retry {
            key: KEY.into(),
            delay: Duration::from_secs(90)
        }
    );
}

#[tokio::test]
async fn exhausted_retries_are_dead_lettered_with_the_whole_context() {
    let policy = civicbus_core::RetryPolicy {
        max_attempts: 3,
        ..civicbus_core::RetryPolicy::default()
    };
    let f = fixture_with(policy, vec![retryable("HTTP 503: month-end close")]);
    let msg = inbound_event(
        &permit(),
        &[(HEADER_SUBSCRIPTION, KEY), (HEADER_ATTEMPT, "3")],
        &f.log,
        "m",
    );
    f.worker.handle(msg).await;
    let (to, dead) = &f.publisher.published()[0];
    assert_eq!(*to, Destination::DeadLetter { key: KEY.into() });
    assert_eq!(
        header(dead, civicbus_core::delivery::HEADER_DEAD_LETTER_REASON),
        Some("attempts-exhausted")
    );
    let records = f.store.dead_letters();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(
        r.reason,
        civicbus_core::ports::DeadLetterReason::AttemptsExhausted
    );
    assert_eq!(r.attempts, 3);
    assert_eq!(r.subscription, KEY);
    assert_eq!(r.event.id, permit().id);
    assert_eq!(r.error, "HTTP 503: month-end close");
    assert_eq!(
        r.idempotency_key,
        idempotency_key(KEY, &permit().source, &permit().id, 0)
    );
    assert_eq!(f.log.settled(), [Settled::Ack]);
}

#[tokio::test]
async fn events_older_than_max_age_are_dead_lettered() {
    let policy = civicbus_core::RetryPolicy {
        max_age: Duration::from_secs(3600),
        ..civicbus_core::RetryPolicy::default()
    };
    let f = fixture_with(policy, vec![retryable("timeout")]);
    let old = (chrono::Utc::now() - chrono::Duration::hours(2)).to_rfc3339();
    let msg = inbound_event(
        &permit(),
        &[
            (HEADER_SUBSCRIPTION, KEY),
            (civicbus_core::delivery::HEADER_RECEIVED_AT, old.as_str()),
        ],
        &f.log,
        "m",
    );
    f.worker.handle(msg).await;
    let records = f.store.dead_letters();
    assert_eq!(
        records[0].reason,
        civicbus_core::ports::DeadLetterReason::MaxAgeExceeded
    );
}

#[tokio::test]
async fn a_dead_letter_the_store_cannot_take_is_handed_back() {
    let f = fixture(vec![SinkOutcome::Terminal {
        status: Some(422),
        reason: "HTTP 422".into(),
    }]);
    f.store.fail_next(StoreOp::DeadLetter, 1);
    f.worker.handle(delivery(&f.log, "m", &[])).await;
    assert!(f.publisher.published().is_empty(), "nothing moved on");
    assert_eq!(f.log.settled(), [REQUEUED]);
}

#[tokio::test]
async fn a_delivery_handed_back_again_and_again_waits_in_the_delay_queues_instead() {
    // The store is down: the first hand-backs go back to the queue (they count towards
    // its delivery limit)…
    let f = fixture(vec![]);
    f.store.fail_next(StoreOp::IsDelivered, 2);
    let mut msg = inbound_event(
        &permit(),
        &[(HEADER_SUBSCRIPTION, KEY), (HEADER_ATTEMPT, "2")],
        &f.log,
        "early",
    );
    msg.delivery_count = 1;
    f.worker.handle(msg).await;
    assert_eq!(f.log.settled(), [REQUEUED]);
    assert_eq!(f.publisher.calls(), 0);

    // …but one handed back HAND_BACKS_BEFORE_DELAY times moves to the delay queues with
    // its attempt count unchanged and is acked, so a long outage never makes it poison.
    let mut msg = inbound_event(
        &permit(),
        &[(HEADER_SUBSCRIPTION, KEY), (HEADER_ATTEMPT, "2")],
        &f.log,
        "late",
    );
    msg.delivery_count = civicbus_router::deliver::HAND_BACKS_BEFORE_DELAY - 1;
    f.worker.handle(msg).await;
    let published = f.publisher.published();
    assert_eq!(published.len(), 1);
    let (to, copy) = &published[0];
    assert!(
        matches!(to, Destination::Retry { key, delay } if key == KEY && *delay >= Duration::from_secs(1)),
        "{to:?}"
    );
    assert_eq!(header(copy, HEADER_ATTEMPT), Some("2"));
    assert_eq!(f.log.settled(), [REQUEUED, Settled::Ack]);
    assert!(f.sink.sent().is_empty());
}
