//! Endpoint auto-disable as a specification: a 410 disables the endpoint at once; an
//! endpoint whose every delivery has failed for `disable_after` (counted from the store,
//! so across restarts) is disabled at its next failure. Disabling is audited and
//! announced with an `endpoint.disabled` event in the subscription's tenant; while
//! disabled, deliveries are not attempted but dead-lettered (`endpoint-disabled`), and an
//! answer from the endpoint ends a run of failures. Enabling resumes deliveries.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use civicbus_core::delivery::{
    HEADER_ACTOR, HEADER_ATTEMPT, HEADER_DEAD_LETTER_REASON, HEADER_OUTPUT_INDEX,
    HEADER_SUBSCRIPTION,
};
use civicbus_core::ports::{
    DeadLetterReason, Destination, DisableReason, EndpointState, EventStore, InboundMessage,
    SinkOutcome,
};
use civicbus_core::{CloudEvent, Data, RetryPolicy};
use civicbus_router::endpoint::STATUS_REFRESH;
use civicbus_router::{DeliveryWorker, ENDPOINT_DISABLED_TYPE, HealthPolicy};
use common::{
    AckLog, ManualClock, MemoryStore, NO_BACKOFF, RecordingPublisher, ScriptedSink, Settled,
    StoreOp, decode, header, inbound_event, subscription, tenant_event,
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

fn fixture(outcomes: Vec<SinkOutcome>, disable_after: Duration) -> Fixture {
    let mut sub = subscription("dysart", "records", vec![]);
    sub.retry = RetryPolicy {
        max_attempts: 15,
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
        failure_threshold: 0,
        disable_after,
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

fn delivery(log: &AckLog, n: u32, attempt: &str) -> InboundMessage {
    let ev: CloudEvent = tenant_event(
        "dysart",
        &format!("P-2026-{n:04}"),
        "ca.haliburton.permitting.permit.issued",
    );
    inbound_event(
        &ev,
        &[
            (HEADER_SUBSCRIPTION, KEY),
            (HEADER_OUTPUT_INDEX, "0"),
            (HEADER_ATTEMPT, attempt),
        ],
        log,
        &format!("m{n}"),
    )
}

fn gone() -> SinkOutcome {
    SinkOutcome::Gone {
        reason: "HTTP 410 from https://records.dysart.example/hooks".into(),
    }
}

fn unavailable() -> SinkOutcome {
    SinkOutcome::Retryable {
        status: Some(503),
        reason: "HTTP 503 from https://records.dysart.example/hooks".into(),
        retry_after: None,
    }
}

/// The `endpoint.disabled` events published so far.
fn announcements(publisher: &RecordingPublisher) -> Vec<CloudEvent> {
    publisher
        .published()
        .iter()
        .filter(|(to, _)| matches!(to, Destination::Events { .. }))
        .map(|(to, msg)| {
            assert_eq!(
                *to,
                Destination::Events {
                    routing_key: format!("dysart.{ENDPOINT_DISABLED_TYPE}")
                }
            );
            assert_eq!(header(msg, HEADER_ACTOR), Some("civicbus"));
            decode(msg)
        })
        .collect()
}

#[tokio::test]
async fn gone_disables_announces_and_later_deliveries_are_dead_lettered_unattempted() {
    let f = fixture(vec![gone()], Duration::ZERO);
    f.worker.handle(delivery(&f.log, 1, "1")).await;
    assert_eq!(f.sink.sent().len(), 1);

    // The 410'd delivery itself: dead-lettered as gone.
    let dead = f.store.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, DeadLetterReason::Gone);

    // Disabled, audited once, announced once in the subscription's tenant.
    let state = f.store.endpoint(KEY).expect("endpoint state");
    let disabled = state.disabled.expect("disabled");
    assert_eq!(disabled.reason, DisableReason::Gone);
    assert_eq!(disabled.response_code, Some(410));
    assert!(disabled.notified_at.is_some(), "announcement noted");
    assert_eq!(
        f.store.endpoint_audit(),
        [(
            "endpoint-disabled".to_string(),
            KEY.to_string(),
            "civicbus".to_string()
        )]
    );
    let events = announcements(&f.publisher);
    assert_eq!(events.len(), 1);
    let ev = &events[0];
    assert_eq!(ev.ty, ENDPOINT_DISABLED_TYPE);
    assert_eq!(ev.tenant(), Some("dysart"));
    assert_eq!(ev.subject.as_deref(), Some(KEY));
    let Some(Data::Json(data)) = &ev.data else {
        panic!("JSON data expected, got {:?}", ev.data)
    };
    assert_eq!(data["reason"], "gone");
    assert_eq!(data["last_response_code"], 410);
    assert_eq!(
        data["enable_with"],
        format!("civicbus endpoints enable {KEY}")
    );

    // The next deliveries are not attempted; each is dead-lettered with the reason and
    // how to recover, and acked (moved to the dead-letter queue).
    for n in 2..=4 {
        f.worker.handle(delivery(&f.log, n, "1")).await;
    }
    assert_eq!(f.sink.sent().len(), 1, "no call to a disabled endpoint");
    let dead = f.store.dead_letters();
    assert_eq!(dead.len(), 4);
    for d in &dead[1..] {
        assert_eq!(d.reason, DeadLetterReason::EndpointDisabled);
        assert_eq!(d.attempts, 0, "not attempted");
        assert!(
            d.error.contains("civicbus endpoints enable dysart.records"),
            "{}",
            d.error
        );
    }
    let to_dead: Vec<_> = f
        .publisher
        .published()
        .into_iter()
        .filter(|(to, _)| matches!(to, Destination::DeadLetter { .. }))
        .collect();
    assert_eq!(to_dead.len(), 4);
    assert_eq!(
        header(&to_dead[3].1, HEADER_DEAD_LETTER_REASON),
        Some("endpoint-disabled")
    );
    assert!(f.log.settled().iter().all(|s| *s == Settled::Ack));
    assert_eq!(announcements(&f.publisher).len(), 1, "announced once");

    // An operator enables it; within the refresh period deliveries resume.
    assert!(
        f.store
            .enable_endpoint(KEY, "operator:alice")
            .await
            .expect("enable")
    );
    f.clock.advance(STATUS_REFRESH);
    f.worker.handle(delivery(&f.log, 5, "1")).await;
    assert_eq!(f.sink.sent().len(), 2, "delivered again");
    assert_eq!(f.store.dead_letters().len(), 4);
}

#[tokio::test]
async fn continuous_failure_for_disable_after_disables_across_restarts() {
    let f = fixture(
        vec![unavailable(), unavailable(), unavailable()],
        Duration::from_secs(3600),
    );
    // The first failure starts the run; nothing is disabled yet and the delivery waits
    // for a retry.
    f.worker.handle(delivery(&f.log, 1, "1")).await;
    let since = f
        .store
        .endpoint(KEY)
        .and_then(|s| s.failing_since)
        .expect("run of failures recorded");
    assert!(f.store.endpoint(KEY).and_then(|s| s.disabled).is_none());
    assert!(f.store.dead_letters().is_empty());

    // A restart: a new worker reads the run from the store. Pretend it began two hours
    // ago (as an earlier process would have recorded it).
    f.store.set_endpoint(EndpointState {
        failing_since: Some(since - chrono::Duration::hours(2)),
        ..f.store.endpoint(KEY).expect("state")
    });
    let g = fixture(vec![unavailable()], Duration::from_secs(3600));
    g.store.set_endpoint(f.store.endpoint(KEY).expect("state"));
    g.worker.handle(delivery(&g.log, 2, "3")).await;
    let state = g.store.endpoint(KEY).expect("state");
    let disabled = state.disabled.expect("disabled after an hour of failures");
    assert_eq!(disabled.reason, DisableReason::Failing);
    assert!(
        disabled.error.contains("every delivery failed for 2h"),
        "{}",
        disabled.error
    );
    let dead = g.store.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, DeadLetterReason::EndpointDisabled);
    assert_eq!(dead[0].attempts, 3, "the failed attempt counts");
    assert_eq!(dead[0].last_response_code, Some(503));
    assert_eq!(announcements(&g.publisher).len(), 1);
}

#[tokio::test]
async fn an_answer_ends_the_run_of_failures() {
    let f = fixture(vec![unavailable()], Duration::from_secs(3600));
    f.worker.handle(delivery(&f.log, 1, "1")).await;
    assert!(
        f.store
            .endpoint(KEY)
            .and_then(|s| s.failing_since)
            .is_some()
    );
    f.worker.handle(delivery(&f.log, 2, "1")).await;
    assert_eq!(f.sink.sent().len(), 2);
    let state = f.store.endpoint(KEY).expect("state");
    assert_eq!(state.failing_since, None, "a success ends the run");
    assert!(state.disabled.is_none());
}

#[tokio::test]
async fn an_unannounced_disabling_is_announced_by_the_next_delivery() {
    // A process disabled the endpoint and stopped before publishing the event.
    let f = fixture(vec![], Duration::ZERO);
    f.store
        .disable_endpoint(&civicbus_core::ports::DisableEndpoint {
            subscription: KEY.into(),
            tenant: "dysart".into(),
            reason: DisableReason::Gone,
            error: "HTTP 410".into(),
            response_code: Some(410),
            failing_since: None,
            at: Utc::now(),
        })
        .await
        .expect("disable");
    f.publisher.fail_next(
        1,
        civicbus_core::ports::PortError::unavailable("broker down"),
    );
    f.worker.handle(delivery(&f.log, 1, "1")).await;
    assert!(announcements(&f.publisher).is_empty(), "publish failed");
    assert!(
        f.store
            .endpoint(KEY)
            .and_then(|s| s.disabled)
            .and_then(|d| d.notified_at)
            .is_none()
    );
    f.worker.handle(delivery(&f.log, 2, "1")).await;
    assert_eq!(announcements(&f.publisher).len(), 1, "tried again");
    assert!(
        f.store
            .endpoint(KEY)
            .and_then(|s| s.disabled)
            .and_then(|d| d.notified_at)
            .is_some()
    );
    assert!(f.sink.sent().is_empty());
}

#[tokio::test]
async fn a_store_that_cannot_say_whether_the_endpoint_is_enabled_holds_the_delivery() {
    let f = fixture(vec![], Duration::ZERO);
    f.store.fail_next(StoreOp::EndpointState, 1);
    f.worker.handle(delivery(&f.log, 1, "1")).await;
    assert!(f.sink.sent().is_empty());
    assert_eq!(f.log.settled(), [Settled::Nack { requeue: true }]);
}
