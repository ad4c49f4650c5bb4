//! Endpoint health as a specification: after `failure_threshold` consecutive retryable
//! failures the subscription's circuit opens; while open the endpoint is not called and
//! messages wait in the retry queue without using up an attempt (nothing is recorded,
//! nothing dead-lettered); after the open period one probe goes through: success closes
//! the circuit, failure opens it again for longer.

mod common;

use std::sync::Arc;
use std::time::Duration;

use civicbus_core::delivery::{HEADER_ATTEMPT, HEADER_OUTPUT_INDEX, HEADER_SUBSCRIPTION};
use civicbus_core::ports::{AttemptStatus, Destination, InboundMessage, SinkOutcome};
use civicbus_core::{CloudEvent, RetryPolicy};
use civicbus_router::circuit::BreakerState;
use civicbus_router::{Clock, DeliveryWorker, HealthPolicy};
use common::{
    AckLog, ManualClock, MemoryStore, NO_BACKOFF, RecordingPublisher, ScriptedSink, Settled,
    header, inbound_event, subscription, tenant_event,
};

const KEY: &str = "dysart.records";

struct Fixture {
    sink: Arc<ScriptedSink>,
    publisher: Arc<RecordingPublisher>,
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    log: AckLog,
    worker: DeliveryWorker,
}

fn fixture(outcomes: Vec<SinkOutcome>, max_attempts: u32) -> Fixture {
    let mut sub = subscription("dysart", "records", vec![]);
    sub.retry = RetryPolicy {
        max_attempts,
        ..RetryPolicy::default()
    };
    let sink = ScriptedSink::new(outcomes);
    let publisher = RecordingPublisher::new();
    let store = MemoryStore::new();
    let clock = ManualClock::new();
    let worker = DeliveryWorker::new(
        sub,
        sink.clone(),
        store.clone(),
        publisher.clone(),
        Default::default(),
    )
    .with_infra_backoff(NO_BACKOFF)
    .with_health(HealthPolicy {
        failure_threshold: 3,
        open_for: Duration::from_secs(30),
        max_open_for: Duration::from_secs(600),
        ..HealthPolicy::default()
    })
    .with_clock(clock.clone());
    Fixture {
        sink,
        publisher,
        store,
        clock,
        log: AckLog::new(),
        worker,
    }
}

fn permit(n: u32) -> CloudEvent {
    tenant_event(
        "dysart",
        &format!("P-2026-{n:04}"),
        "ca.haliburton.permitting.permit.issued",
    )
}

fn delivery(log: &AckLog, n: u32, attempt: &str) -> InboundMessage {
    inbound_event(
        &permit(n),
        &[
            (HEADER_SUBSCRIPTION, KEY),
            (HEADER_OUTPUT_INDEX, "0"),
            (HEADER_ATTEMPT, attempt),
        ],
        log,
        &format!("m{n}"),
    )
}

fn unavailable() -> SinkOutcome {
    SinkOutcome::Retryable {
        status: Some(503),
        reason: "HTTP 503 from https://records.dysart.example".into(),
        retry_after: None,
    }
}

fn retry_delay(to: &Destination) -> Duration {
    match to {
        Destination::Retry { key, delay } => {
            assert_eq!(key, KEY);
            *delay
        }
        other => panic!("published to {other:?}, not to the retry queue"),
    }
}

#[tokio::test]
async fn the_circuit_opens_parks_without_attempts_probes_and_closes() {
    let f = fixture(vec![unavailable(), unavailable(), unavailable()], 15);
    for n in 1..=3 {
        f.worker.handle(delivery(&f.log, n, "1")).await;
    }
    assert_eq!(f.sink.sent().len(), 3, "closed: every delivery calls");
    assert!(matches!(
        f.worker.breaker().state(),
        BreakerState::Open { .. }
    ));
    let attempts_before = f.store.attempts().len();
    assert_eq!(attempts_before, 3);

    // Open: ten more messages (some on their 4th attempt) are parked, not sent.
    f.clock.advance(Duration::from_secs(10));
    for n in 10..20 {
        f.worker.handle(delivery(&f.log, n, "4")).await;
    }
    assert_eq!(f.sink.sent().len(), 3, "no call while open");
    assert_eq!(
        f.store.attempts().len(),
        attempts_before,
        "no attempt recorded"
    );
    assert!(f.store.dead_letters().is_empty(), "nothing dead-lettered");
    let published = f.publisher.published();
    assert_eq!(published.len(), 13);
    for (to, msg) in &published[3..] {
        assert_eq!(
            retry_delay(to),
            Duration::from_secs(20),
            "rest of the open period"
        );
        assert_eq!(header(msg, HEADER_ATTEMPT), Some("4"), "attempt unchanged");
    }
    assert!(f.log.settled().iter().all(|s| *s == Settled::Ack));

    // After the open period one probe goes through; it succeeds and closes the circuit.
    f.clock.advance(Duration::from_secs(20));
    f.worker.handle(delivery(&f.log, 10, "4")).await;
    assert_eq!(f.sink.sent().len(), 4);
    assert_eq!(
        f.sink.sent()[3].attempt,
        4,
        "the probe is the parked attempt"
    );
    assert_eq!(
        f.worker.breaker().state(),
        BreakerState::Closed { failures: 0 }
    );
    for n in 11..20 {
        f.worker.handle(delivery(&f.log, n, "4")).await;
    }
    assert_eq!(f.sink.sent().len(), 13, "closed again: everything flows");
    let delivered = f
        .store
        .attempts()
        .iter()
        .filter(|a| a.status == AttemptStatus::Delivered)
        .count();
    assert_eq!(delivered, 10);
}

#[tokio::test]
async fn a_failed_probe_reopens_for_twice_as_long() {
    let f = fixture(vec![unavailable(); 4], 15);
    for n in 1..=3 {
        f.worker.handle(delivery(&f.log, n, "1")).await;
    }
    f.clock.advance(Duration::from_secs(30));
    // The probe fails.
    f.worker.handle(delivery(&f.log, 4, "1")).await;
    assert_eq!(f.sink.sent().len(), 4);
    let BreakerState::Open { until } = f.worker.breaker().state() else {
        panic!("re-opened");
    };
    assert_eq!(until - f.clock.now(), Duration::from_secs(60));
    // While the probe is out, and after it failed, others wait.
    f.worker.handle(delivery(&f.log, 5, "1")).await;
    assert_eq!(f.sink.sent().len(), 4);
    let published = f.publisher.published();
    assert_eq!(
        retry_delay(&published.last().expect("parked").0),
        Duration::from_secs(60)
    );
    // The probe's own failure was an attempt like any other: recorded, retried.
    assert_eq!(f.store.attempts().len(), 4);
}

#[tokio::test]
async fn an_outage_does_not_dead_letter_parked_messages() {
    // A policy of two attempts: a message on its 2nd attempt would be dead-lettered if it
    // failed, but while the circuit is open it is not tried, so it is kept.
    let f = fixture(vec![unavailable(); 3], 2);
    for n in 1..=3 {
        f.worker.handle(delivery(&f.log, n, "1")).await;
    }
    for _ in 0..5 {
        f.clock.advance(Duration::from_secs(5));
        f.worker.handle(delivery(&f.log, 7, "2")).await;
    }
    assert!(f.store.dead_letters().is_empty());
    assert_eq!(f.sink.sent().len(), 3);
    let (to, msg) = f.publisher.published().pop().expect("parked");
    assert!(matches!(to, Destination::Retry { .. }));
    assert_eq!(header(&msg, HEADER_ATTEMPT), Some("2"));
}

#[tokio::test]
async fn an_answer_that_is_not_retryable_resets_the_count() {
    let f = fixture(
        vec![
            unavailable(),
            unavailable(),
            SinkOutcome::Terminal {
                status: Some(422),
                reason: "HTTP 422".into(),
            },
            unavailable(),
            unavailable(),
        ],
        15,
    );
    for n in 1..=5 {
        f.worker.handle(delivery(&f.log, n, "1")).await;
    }
    assert_eq!(
        f.worker.breaker().state(),
        BreakerState::Closed { failures: 2 }
    );
}
