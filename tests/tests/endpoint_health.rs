//! Endpoint health end to end: a subscriber that is down gets the breaker's threshold
//! plus one probe per open period, not one request per event; its deliveries wait in
//! RabbitMQ without using up attempts, and when it comes back every event is delivered
//! exactly once. A subscriber that answers 410 is disabled: audited, announced with an
//! `endpoint.disabled` event an operator's subscription receives, its later deliveries
//! dead-lettered unattempted; enabled again, it receives deliveries again.

use std::collections::BTreeMap;
use std::time::Duration;

use civicbus_core::Data;
use civicbus_core::ports::{AttemptStatus, DeadLetterQuery, DeadLetterReason, EventStore};
use civicbus_server::auth::generate_secret;
use civicbus_server::config::WebhookMode;
use civicbus_tests::{Backend, Harness, WebhookSimulator, eventually, exact, permit_event, prefix};

const WAIT: Duration = Duration::from_secs(30);
const EVENTS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_endpoint_is_probed_not_hammered_and_drains_when_it_returns() {
    let secret = generate_secret();
    let sim = WebhookSimulator::start("records", vec![secret.clone()])
        .await
        .expect("sim");
    sim.answer_with(503);
    let mut h = Harness::new("health", Backend::Sqlite)
        .await
        .expect("harness");
    // One delivery at a time, so the breaker sees each failure before the next call.
    h.config.delivery.concurrency = 1;
    h.config.delivery.retry.initial_backoff = Duration::from_secs(1);
    h.config.delivery.retry.max_backoff = Duration::from_secs(1);
    h.config.delivery.health.failure_threshold = 2;
    h.config.delivery.health.open_for = Duration::from_secs(1);
    h.config.delivery.health.max_open_for = Duration::from_secs(2);
    h.webhook(
        "dysart",
        "records",
        vec![prefix("type", "ca.haliburton.permitting.")],
        sim.url(),
        vec![secret],
        WebhookMode::Binary,
    );
    let bus = h.start().await.expect("bus");
    for i in 0..EVENTS {
        let (status, _) = bus
            .publish(
                "dysart",
                &permit_event("dysart", &format!("h-{i}"), "issued", &format!("BP-{i}")),
            )
            .await
            .expect("post");
        assert_eq!(status, 202);
    }

    // The outage: a few seconds in which, without a breaker, every event would have been
    // sent at least once (and the first ones retried).
    let threshold_reached = eventually(WAIT, || {
        let n = sim.request_count();
        async move { n >= 2 }
    })
    .await;
    assert!(threshold_reached, "the threshold's failures arrive");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = sim.request_count();
    // 2 failures open the circuit; then one probe per open period (1 s, then 2 s, 2 s …),
    // far fewer than the EVENTS requests (40 in 4 s without the breaker).
    assert!(
        during <= 2 + 4,
        "{during} requests during the outage: threshold plus probes, not one per event"
    );
    assert!(sim.distinct_ids().is_empty(), "nothing accepted yet");

    sim.answer_with(204);
    let store = bus.store();
    let all_delivered = eventually(WAIT, || {
        let store = store.clone();
        async move {
            let mut n = 0;
            for i in 0..EVENTS {
                if let Ok(a) = store
                    .attempts_for_event("dysart", "/dysart/permitting", &format!("h-{i}"))
                    .await
                    && a.iter().any(|a| a.status == AttemptStatus::Delivered)
                {
                    n += 1;
                }
            }
            n == EVENTS
        }
    })
    .await;
    assert!(
        all_delivered,
        "every event is delivered once the subscriber is back"
    );
    // Give stray copies a moment to show up, then count acceptances per webhook-id.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut accepted: BTreeMap<String, usize> = BTreeMap::new();
    for r in sim.received().into_iter().filter(|r| r.accepted) {
        *accepted.entry(r.webhook_id).or_default() += 1;
    }
    assert_eq!(accepted.len(), EVENTS, "every event accepted");
    assert!(
        accepted.values().all(|&n| n == 1),
        "each event accepted exactly once: {accepted:?}"
    );
    for i in 0..EVENTS {
        let attempts = store
            .attempts_for_event("dysart", "/dysart/permitting", &format!("h-{i}"))
            .await
            .expect("attempts");
        let delivered = attempts
            .iter()
            .filter(|a| a.status == AttemptStatus::Delivered)
            .count();
        assert_eq!(delivered, 1, "h-{i}: {attempts:?}");
    }
    let dead = store
        .list_dead_letters(&DeadLetterQuery::default())
        .await
        .expect("dead letters");
    assert!(dead.is_empty(), "nothing dead-lettered for the outage");
    bus.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gone_endpoint_is_disabled_announced_and_enabled_again() {
    let secret = generate_secret();
    let records = WebhookSimulator::start("records", vec![secret.clone()])
        .await
        .expect("sim");
    records.answer_with(410);
    let ops_secret = generate_secret();
    let ops = WebhookSimulator::start("ops", vec![ops_secret.clone()])
        .await
        .expect("sim");
    let mut h = Harness::new("gone", Backend::Postgres)
        .await
        .expect("harness");
    h.config.delivery.concurrency = 1;
    h.webhook(
        "dysart",
        "records",
        vec![prefix("type", "ca.haliburton.permitting.")],
        records.url(),
        vec![secret],
        WebhookMode::Binary,
    );
    // Dysart's IT subscribes to its own endpoint.disabled events.
    h.webhook(
        "dysart",
        "ops",
        vec![exact("type", "ca.haliburton.civicbus.endpoint.disabled")],
        ops.url(),
        vec![ops_secret],
        WebhookMode::Structured,
    );
    let bus = h.start().await.expect("bus");
    let store = bus.store();
    let publish = |i: usize| {
        let bus = &bus;
        async move {
            let (status, _) = bus
                .publish(
                    "dysart",
                    &permit_event("dysart", &format!("g-{i}"), "issued", &format!("BP-{i}")),
                )
                .await
                .expect("post");
            assert_eq!(status, 202);
        }
    };
    let dead_count = |n: usize| {
        let store = store.clone();
        async move {
            store
                .list_dead_letters(&DeadLetterQuery::default())
                .await
                .is_ok_and(|d| d.len() == n)
        }
    };

    publish(0).await;
    assert!(
        eventually(WAIT, || dead_count(1)).await,
        "the 410 is dead-lettered"
    );
    let state = store
        .endpoint("dysart.records")
        .await
        .expect("read")
        .expect("state kept");
    let disabled = state.disabled.expect("disabled by the 410");
    assert_eq!(disabled.response_code, Some(410));

    // The announcement reaches the operator's subscription.
    assert!(
        eventually(WAIT, || {
            let n = ops.distinct_count();
            async move { n == 1 }
        })
        .await,
        "the endpoint.disabled event is delivered"
    );
    let ev = ops
        .received()
        .into_iter()
        .find_map(|r| r.event)
        .expect("event parsed");
    assert_eq!(ev.subject.as_deref(), Some("dysart.records"));
    let Some(Data::Json(data)) = ev.data else {
        panic!("JSON data expected")
    };
    assert_eq!(data["reason"], "gone");
    assert_eq!(data["sink"], records.url());

    // While disabled, deliveries are not attempted but kept as dead letters.
    publish(1).await;
    publish(2).await;
    assert!(
        eventually(WAIT, || dead_count(3)).await,
        "held back as dead letters"
    );
    assert_eq!(records.request_count(), 1, "no call to a disabled endpoint");
    let held = store
        .list_dead_letters(&DeadLetterQuery {
            reason: Some(DeadLetterReason::EndpointDisabled),
            ..DeadLetterQuery::default()
        })
        .await
        .expect("dead letters");
    assert_eq!(held.len(), 2);

    // The audit log says who disabled it and why.
    let log = store.audit_entries(0, 1_000).await.expect("audit");
    assert!(
        log.iter()
            .any(|e| e.action == "endpoint-disabled" && e.target == "endpoint:dysart.records"),
        "audited"
    );

    // Enabled again (what `civicbus endpoints enable` does), deliveries resume.
    records.answer_with(204);
    assert!(
        store
            .set_endpoint_enabled("dysart.records", "operator:test")
            .await
            .expect("enable")
    );
    // Workers read the endpoint's status again within 5 s.
    tokio::time::sleep(Duration::from_secs(6)).await;
    publish(3).await;
    assert!(
        eventually(WAIT, || {
            let n = records.distinct_count();
            async move { n == 1 }
        })
        .await,
        "delivered after enabling"
    );
    bus.stop().await;
}
