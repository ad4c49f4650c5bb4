//! A subscriber that fails: retryable failures wait durably in RabbitMQ and are retried
//! with the same `webhook-id` until delivered; terminal failures are dead-lettered with
//! their cause; nothing is acknowledged as delivered that was not.

use std::time::Duration;

use civicbus_core::ports::{AttemptStatus, DeadLetterQuery, DeadLetterReason, EventStore};
use civicbus_server::auth::generate_secret;
use civicbus_server::config::WebhookMode;
use civicbus_tests::{Backend, Harness, WebhookSimulator, eventually, permit_event, prefix};
use futures::StreamExt;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retryable_failures_are_retried_until_delivered_with_the_same_webhook_id() {
    let secret = generate_secret();
    let sim = WebhookSimulator::start("records", vec![secret.clone()])
        .await
        .expect("sim");
    sim.answer_with(503);
    let mut h = Harness::new("retry", Backend::Sqlite)
        .await
        .expect("harness");
    h.webhook(
        "dysart",
        "records",
        vec![prefix("type", "ca.haliburton.permitting.")],
        sim.url(),
        vec![secret],
        WebhookMode::Binary,
    );
    let bus = h.start().await.expect("bus");
    let (status, _) = bus
        .publish("dysart", &permit_event("dysart", "r-1", "issued", "BP-1"))
        .await
        .expect("post");
    assert_eq!(status, 202);

    let store = bus.store();
    let failed_twice = eventually(WAIT, || {
        let store = store.clone();
        async move {
            store
                .attempts_for_event("dysart", "/dysart/permitting", "r-1")
                .await
                .map(|a| a.len() >= 2)
                .unwrap_or(false)
        }
    })
    .await;
    assert!(failed_twice, "the failing delivery is retried");
    assert!(sim.distinct_ids().is_empty(), "nothing accepted yet");
    sim.answer_with(204);
    assert!(
        sim.wait_for(1, WAIT).await,
        "delivered once the subscriber recovers"
    );

    let attempts = store
        .attempts_for_event("dysart", "/dysart/permitting", "r-1")
        .await
        .expect("attempts");
    let last = attempts.last().expect("attempts");
    assert_eq!(last.status, AttemptStatus::Delivered);
    assert!(
        attempts[..attempts.len() - 1]
            .iter()
            .all(|a| a.status == AttemptStatus::Retryable && a.response_code == Some(503))
    );
    let numbers: Vec<u32> = attempts.iter().map(|a| a.attempt).collect();
    let expected: Vec<u32> = (1..=attempts.len() as u32).collect();
    assert_eq!(numbers, expected, "attempts are numbered 1, 2, 3 …");
    let ids: std::collections::BTreeSet<String> =
        sim.received().into_iter().map(|r| r.webhook_id).collect();
    assert_eq!(ids.len(), 1, "every attempt carries the same webhook-id");
    assert!(attempts.iter().all(|a| ids.contains(&a.idempotency_key)));
    bus.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn terminal_failures_are_dead_lettered_with_their_cause() {
    let secret = generate_secret();
    let sim = WebhookSimulator::start("finance", vec![secret.clone()])
        .await
        .expect("sim");
    sim.answer_with(422);
    let mut h = Harness::new("dead", Backend::Sqlite)
        .await
        .expect("harness");
    h.webhook(
        "dysart",
        "finance",
        vec![],
        sim.url(),
        vec![secret],
        WebhookMode::Structured,
    );
    let bus = h.start().await.expect("bus");
    let (status, _) = bus
        .publish(
            "dysart",
            &permit_event("dysart", "t-1", "fee-assessed", "BP-2"),
        )
        .await
        .expect("post");
    assert_eq!(status, 202);

    let dead_queue = bus.admin.topology().dead_letter_queue("dysart.finance");
    let mut dead = bus
        .admin
        .consume(&dead_queue, "e2e-dead", 8)
        .await
        .expect("consume dead letters");
    let msg = tokio::time::timeout(WAIT, dead.next())
        .await
        .expect("dead letter within the wait")
        .expect("stream open")
        .expect("message");
    assert_eq!(msg.header("x-civicbus-outcome"), Some("terminal"));
    assert!(
        msg.header("x-civicbus-error")
            .is_some_and(|e| e.contains("422")),
        "the cause names the status: {:?}",
        msg.header("x-civicbus-error")
    );
    let ev = civicbus_core::wire::from_amqp(&msg, &Default::default()).expect("event intact");
    assert_eq!(ev.id, "t-1");
    msg.acker.ack().await.expect("ack");
    drop(dead);

    let attempts = bus
        .store()
        .attempts_for_event("dysart", "/dysart/permitting", "t-1")
        .await
        .expect("attempts");
    assert_eq!(attempts.len(), 1, "a terminal failure is not retried");
    assert_eq!(attempts[0].status, AttemptStatus::Terminal);
    assert_eq!(attempts[0].response_code, Some(422));
    let dead = bus
        .store()
        .list_dead_letters(&DeadLetterQuery::default())
        .await
        .expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, DeadLetterReason::Terminal);
    assert_eq!(dead[0].last_response_code, Some(422));
    assert_eq!(dead[0].event.id, "t-1");
    assert_eq!(dead[0].subscription, "dysart.finance");
    bus.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_subscriber_is_retried_not_lost() {
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let secret = generate_secret();
    let mut h = Harness::new("down", Backend::Sqlite)
        .await
        .expect("harness");
    h.webhook(
        "dysart",
        "gis",
        vec![],
        format!("http://127.0.0.1:{port}/events"),
        vec![secret],
        WebhookMode::Binary,
    );
    let bus = h.start().await.expect("bus");
    let (status, _) = bus
        .publish("dysart", &permit_event("dysart", "u-1", "issued", "BP-3"))
        .await
        .expect("post");
    assert_eq!(status, 202);
    let store = bus.store();
    let retried = eventually(WAIT, || {
        let store = store.clone();
        async move {
            store
                .attempts_for_event("dysart", "/dysart/permitting", "u-1")
                .await
                .map(|a| {
                    a.len() >= 2
                        && a.iter().all(|x| {
                            x.status == AttemptStatus::Retryable
                                && x.error.as_deref().is_some_and(|e| e.contains("refused"))
                        })
                })
                .unwrap_or(false)
        }
    })
    .await;
    assert!(
        retried,
        "connection refused is retried, with the reason recorded"
    );
    bus.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_down_for_good_is_dead_lettered_after_the_policy_and_blocks_nothing() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let secret = generate_secret();
    let healthy = WebhookSimulator::start("finance", vec![secret.clone()])
        .await
        .expect("sim");
    let mut h = Harness::new("exhaust", Backend::Sqlite)
        .await
        .expect("harness");
    h.webhook(
        "dysart",
        "down",
        vec![],
        format!("http://127.0.0.1:{port}/events"),
        vec![secret.clone()],
        WebhookMode::Binary,
    );
    if let Some(s) = h.config.subscriptions.last_mut() {
        s.retry = Some(civicbus_server::config::RetryOverride {
            max_attempts: Some(3),
            ..Default::default()
        });
        // This test is about the retry policy: with the circuit breaker on, an endpoint
        // down for good has its deliveries wait (not dead-lettered) after 5 failures;
        // `endpoint_health.rs` covers that.
        s.health = Some(civicbus_server::config::HealthOverride {
            failure_threshold: Some(0),
            ..Default::default()
        });
    }
    h.webhook(
        "dysart",
        "healthy",
        vec![],
        healthy.url(),
        vec![secret],
        WebhookMode::Binary,
    );
    let bus = h.start().await.expect("bus");
    for i in 0..5 {
        let (status, _) = bus
            .publish(
                "dysart",
                &permit_event("dysart", &format!("x-{i}"), "issued", "BP-9"),
            )
            .await
            .expect("post");
        assert_eq!(status, 202);
    }
    // The healthy subscriber is not held up by the dead one.
    assert!(healthy.wait_for(5, WAIT).await);
    let store = bus.store();
    let all_dead = eventually(WAIT, || {
        let store = store.clone();
        async move {
            store
                .list_dead_letters(&DeadLetterQuery::default())
                .await
                .map(|d| d.len() == 5)
                .unwrap_or(false)
        }
    })
    .await;
    assert!(all_dead, "every event dead-lettered after 3 attempts");
    for d in store
        .list_dead_letters(&DeadLetterQuery::default())
        .await
        .expect("list")
    {
        assert_eq!(d.reason, DeadLetterReason::AttemptsExhausted);
        assert_eq!(d.attempts, 3);
        assert_eq!(d.subscription, "dysart.down");
        assert!(d.error.contains("refused"), "{}", d.error);
        let attempts = store
            .attempts_for_event("dysart", "/dysart/permitting", &d.event.id)
            .await
            .expect("attempts");
        let down: Vec<_> = attempts
            .iter()
            .filter(|a| a.subscription == "dysart.down")
            .collect();
        assert_eq!(down.len(), 3, "every attempt kept");
        // Waits were honoured: about 1 s between attempts.
        for w in down.windows(2) {
            let gap = (w[1].at - w[0].at).to_std().unwrap_or_default();
            assert!(gap >= Duration::from_millis(900), "{gap:?}");
        }
    }
    bus.stop().await;
}
