//! Per-subject ordering end to end (real RabbitMQ, PostgreSQL, HTTP subscriber): events
//! for several permits, interleaved, to a subscription with `ordering = "per-subject"`
//! and 8 deliveries in flight. The subscriber refuses the first attempt of one event of
//! permit BP-1: BP-1's later events wait (parked in the store) until it is delivered,
//! then follow in order, while the other permits' events are delivered without waiting.
//! Every event is accepted exactly once and each permit's events in publication order.

use std::collections::BTreeMap;
use std::time::Duration;

use civicbus_core::ports::EventStore;
use civicbus_server::auth::generate_secret;
use civicbus_server::config::{OrderingConfig, WebhookMode};
use civicbus_tests::{Backend, Harness, WebhookSimulator, eventually, permit_event, prefix};

const PERMITS: usize = 4;
const PER_PERMIT: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_subject_in_order_and_a_failing_subject_holds_back_only_itself() {
    let secret = generate_secret();
    let sim = WebhookSimulator::start("finance", vec![secret.clone()])
        .await
        .expect("sim");
    // The second event of BP-1 fails once; its retry comes 3 s later.
    sim.fail_first_attempt(503, |id| id == "o-BP-1-1");
    let mut h = Harness::new("ordering", Backend::Postgres)
        .await
        .expect("harness");
    h.config.delivery.concurrency = 8;
    h.config.delivery.retry.initial_backoff = Duration::from_secs(3);
    h.config.delivery.retry.max_backoff = Duration::from_secs(3);
    h.webhook(
        "dysart",
        "finance",
        vec![prefix("type", "ca.haliburton.permitting.")],
        sim.url(),
        vec![secret],
        WebhookMode::Structured,
    );
    if let Some(s) = h.config.subscriptions.last_mut() {
        s.ordering = OrderingConfig::PerSubject;
    }
    let bus = h.start().await.expect("bus");

    // Interleaved: BP-0 #0, BP-1 #0, …, BP-3 #0, BP-0 #1, …
    let mut published = Vec::new();
    for n in 0..PER_PERMIT {
        for p in 0..PERMITS {
            let id = format!("o-BP-{p}-{n}");
            let (status, _) = bus
                .publish(
                    "dysart",
                    &permit_event("dysart", &id, "fee-assessed", &format!("BP-{p}")),
                )
                .await
                .expect("post");
            assert_eq!(status, 202);
            published.push(id);
        }
    }
    let all = eventually(Duration::from_secs(60), || {
        let n = sim.distinct_count();
        async move { n == PERMITS * PER_PERMIT }
    })
    .await;
    assert!(
        all,
        "every event delivered: {} of {}",
        sim.distinct_count(),
        published.len()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    let accepted: Vec<String> = sim
        .received()
        .into_iter()
        .filter(|r| r.accepted)
        .filter_map(|r| r.event.map(|e| e.id))
        .collect();
    assert_eq!(
        accepted.len(),
        published.len(),
        "each accepted exactly once"
    );
    let mut per_permit: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for id in &accepted {
        let permit = id
            .rsplit_once('-')
            .map(|(p, _)| p.to_string())
            .unwrap_or_default();
        per_permit.entry(permit).or_default().push(id.clone());
    }
    for p in 0..PERMITS {
        let expected: Vec<String> = (0..PER_PERMIT).map(|n| format!("o-BP-{p}-{n}")).collect();
        assert_eq!(
            per_permit.get(&format!("o-BP-{p}")),
            Some(&expected),
            "BP-{p} in publication order"
        );
    }
    // The other permits did not wait for BP-1's retry: all of them were accepted before
    // BP-1's second event.
    let pos = |id: &str| accepted.iter().position(|a| a == id).expect("accepted");
    for p in [0, 2, 3] {
        assert!(
            pos(&format!("o-BP-{p}-{}", PER_PERMIT - 1)) < pos("o-BP-1-1"),
            "BP-{p} held back by BP-1: {accepted:?}"
        );
    }
    // Nothing is left waiting.
    let store = bus.store();
    assert_eq!(store.count_parked(None).await.expect("parked"), 0);
    bus.stop().await;
}
