//! End to end on the real RabbitMQ, on SQLite and on PostgreSQL: HTTP ingest (structured,
//! binary, batch) → webhook subscribers, verified with an independent Standard Webhooks
//! implementation; AMQP ingest → AMQP subscriber; tenant isolation and sharing; the archive
//! and delivery attempts; quarantine of bad AMQP input.

use std::time::Duration;

use civicbus_core::ports::{AttemptStatus, EventQuery, EventStore};
use civicbus_server::auth::generate_secret;
use civicbus_server::config::WebhookMode;
use civicbus_tests::{
    Backend, Harness, WebhookSimulator, address_event, delete_rabbitmq_user, eventually, exact,
    permit_event, prefix, rabbitmq_user,
};
use futures::StreamExt;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both_backends!(http_to_webhooks, amqp_to_amqp);

async fn http_to_webhooks(backend: Backend) {
    let old_secret = generate_secret();
    let new_secret = generate_secret();
    // Records is mid-rotation: civicbus signs with both secrets, the subscriber already
    // verifies with the new one only.
    let records = WebhookSimulator::start("dysart records", vec![new_secret.clone()])
        .await
        .expect("simulator");
    let finance_secret = generate_secret();
    let finance = WebhookSimulator::start("county finance", vec![finance_secret.clone()])
        .await
        .expect("simulator");
    let minden_secret = generate_secret();
    let minden = WebhookSimulator::start("minden permitting", vec![minden_secret.clone()])
        .await
        .expect("simulator");
    let he_secret = generate_secret();
    let he = WebhookSimulator::start("highlands-east all", vec![he_secret.clone()])
        .await
        .expect("simulator");

    let mut h = Harness::new("http", backend).await.expect("harness");
    h.webhook(
        "dysart",
        "records",
        vec![prefix("type", "ca.haliburton.permitting.permit.")],
        records.url(),
        vec![old_secret.clone(), new_secret.clone()],
        WebhookMode::Binary,
    );
    h.webhook(
        "county",
        "finance",
        vec![exact("type", "ca.haliburton.permitting.permit.issued")],
        finance.url(),
        vec![finance_secret.clone()],
        WebhookMode::Structured,
    );
    h.webhook(
        "minden-hills",
        "addresses",
        vec![prefix("type", "ca.haliburton.gis.address.")],
        minden.url(),
        vec![minden_secret.clone()],
        WebhookMode::Binary,
    );
    h.webhook(
        "highlands-east",
        "everything",
        vec![],
        he.url(),
        vec![he_secret.clone()],
        WebhookMode::Structured,
    );
    let bus = h.start().await.expect("bus starts");

    // Dysart: two structured events, one binary, a batch of three.
    for (id, action) in [("d-1", "issued"), ("d-2", "closed")] {
        let (status, body) = bus
            .publish(
                "dysart",
                &permit_event("dysart", id, action, "BP-2026-0147"),
            )
            .await
            .expect("post");
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["accepted"], 1);
    }
    let resp = bus
        .client
        .post(format!("{}/v1/events", bus.base_url))
        .bearer_auth(&bus.tokens["dysart"])
        .header("ce-specversion", "1.0")
        .header("ce-id", "d-3")
        .header("ce-source", "/dysart/permitting")
        .header(
            "ce-type",
            "ca.haliburton.permitting.permit.application-submitted",
        )
        .header("ce-subject", "Ch%C3%A2teau%20Rd%20BP-2026-0160")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("content-type", "application/json")
        .body(
            permit_event("dysart", "d-3", "application-submitted", "BP-2026-0160")["data"]
                .to_string(),
        )
        .send()
        .await
        .expect("binary post");
    assert_eq!(resp.status().as_u16(), 202);
    let batch = json!([
        permit_event("dysart", "d-4", "fee-assessed", "BP-2026-0161"),
        permit_event("dysart", "d-5", "status-changed", "BP-2026-0161"),
        permit_event("dysart", "d-6", "issued", "BP-2026-0161"),
    ]);
    let (status, body) = bus
        .post(
            "dysart",
            "application/cloudevents-batch+json",
            batch.to_string(),
        )
        .await
        .expect("batch");
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 3);
    // Other tenants.
    let (status, _) = bus
        .publish(
            "highlands-east",
            &permit_event("highlands-east", "h-1", "issued", "HE-1"),
        )
        .await
        .expect("post");
    assert_eq!(status, 202);
    let (status, _) = bus
        .publish("county", &address_event("c-1", "4616020003007000000"))
        .await
        .expect("post");
    assert_eq!(status, 202);
    let (status, _) = bus
        .publish("county", &permit_event("county", "c-2", "issued", "CTY-9"))
        .await
        .expect("post");
    assert_eq!(status, 202);

    assert!(
        records.wait_for(6, WAIT).await,
        "records got {:?}",
        records.distinct_ids()
    );
    assert!(finance.wait_for(1, WAIT).await);
    assert!(minden.wait_for(1, WAIT).await);
    assert!(he.wait_for(2, WAIT).await);
    // Let anything that should not arrive have the chance to.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Isolation and sharing: each subscriber got exactly what it may see.
    let ids = |sim: &WebhookSimulator| {
        let mut v: Vec<String> = sim
            .received()
            .into_iter()
            .filter_map(|r| r.event.map(|e| e.id))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    assert_eq!(ids(&records), ["d-1", "d-2", "d-3", "d-4", "d-5", "d-6"]);
    assert_eq!(
        ids(&finance),
        ["c-2"],
        "county finance sees only county events"
    );
    assert_eq!(
        ids(&minden),
        ["c-1"],
        "county GIS is shared with every partner"
    );
    assert_eq!(
        ids(&he),
        ["c-1", "h-1"],
        "own events plus shared county GIS"
    );

    for sim in [&records, &finance, &minden, &he] {
        for r in sim.received() {
            assert!(r.verified, "{}: signature verifies", r.system);
            let ev = r.event.as_ref().expect("subscriber parses the CloudEvent");
            // The tenant is stamped by the bus.
            let expected_tenant = ev.source.split('/').nth(1).expect("source names tenant");
            assert_eq!(ev.tenant(), Some(expected_tenant));
        }
    }
    // An independent Standard Webhooks implementation accepts every signature, and each
    // of the two rotated secrets verifies on its own.
    for r in records.received() {
        for secret in [&old_secret, &new_secret] {
            standardwebhooks::Webhook::new(secret)
                .expect("secret")
                .verify(&r.body, &r.headers)
                .expect("standardwebhooks verifies the delivery");
        }
        assert_eq!(r.mode, "binary");
    }
    for r in finance.received() {
        standardwebhooks::Webhook::new(&finance_secret)
            .expect("secret")
            .verify(&r.body, &r.headers)
            .expect("standardwebhooks verifies the structured delivery");
        assert_eq!(r.mode, "structured");
    }
    // Binary mode: the percent-encoded subject round-trips; traceparent travels.
    let d3 = records
        .received()
        .into_iter()
        .find(|r| r.event.as_ref().is_some_and(|e| e.id == "d-3"))
        .expect("d-3 delivered");
    assert_eq!(
        d3.event.as_ref().and_then(|e| e.subject.clone()).as_deref(),
        Some("Château Rd BP-2026-0160")
    );
    assert_eq!(
        d3.traceparent.as_deref(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );

    // The archive holds every accepted event; attempts are recorded per delivery.
    let store = bus.store();
    assert_eq!(store.count_events(None).await.expect("count"), 9);
    assert_eq!(store.count_events(Some("dysart")).await.expect("count"), 6);
    let found = store
        .search_events(&EventQuery {
            tenant: Some("dysart".into()),
            subject: Some("BP-2026-0161".into()),
            ..EventQuery::default()
        })
        .await
        .expect("search");
    assert_eq!(found.len(), 3);
    let attempts = store
        .attempts_for_event("dysart", "/dysart/permitting", "d-1")
        .await
        .expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, AttemptStatus::Delivered);
    assert_eq!(attempts[0].subscription, "dysart.records");
    assert_eq!(attempts[0].response_code, Some(204));
    let webhook_ids: Vec<String> = records
        .received()
        .into_iter()
        .filter(|r| r.event.as_ref().is_some_and(|e| e.id == "d-1"))
        .map(|r| r.webhook_id)
        .collect();
    assert_eq!(webhook_ids, [attempts[0].idempotency_key.clone()]);

    // The API shows one event with its attempts, only to its own tenant.
    let show = bus
        .client
        .get(format!(
            "{}/v1/events/dysart/d-1?source=/dysart/permitting",
            bus.base_url
        ))
        .bearer_auth(&bus.tokens["dysart"])
        .send()
        .await
        .expect("show");
    assert_eq!(show.status().as_u16(), 200);
    let body: serde_json::Value = show.json().await.expect("json");
    assert_eq!(body["attempts"][0]["status"], "delivered");
    let other = bus
        .client
        .get(format!(
            "{}/v1/events/dysart/d-1?source=/dysart/permitting",
            bus.base_url
        ))
        .bearer_auth(&bus.tokens["minden-hills"])
        .send()
        .await
        .expect("show");
    assert_eq!(other.status().as_u16(), 404);

    // Re-publishing the same source + id is harmless: one archive row, no new delivery.
    let (status, _) = bus
        .publish(
            "dysart",
            &permit_event("dysart", "d-1", "issued", "BP-2026-0147"),
        )
        .await
        .expect("post");
    assert_eq!(status, 202);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(store.count_events(Some("dysart")).await.expect("count"), 6);
    assert_eq!(records.distinct_ids().len(), 6);
    let verified = store.verify_audit().await.expect("verify");
    assert!(verified.is_intact(), "{verified:?}");

    bus.stop().await;
}

async fn amqp_to_amqp(backend: Backend) {
    let user = format!("e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let password = rabbitmq_user(&user).expect("rabbitmq user");
    let stranger = format!("{user}-x");
    let stranger_password = rabbitmq_user(&stranger).expect("rabbitmq user");

    let mut h = Harness::new("amqp", backend).await.expect("harness");
    h.amqp_user("dysart", &user);
    let out_key = format!("{}gis.permits", h.prefix());
    h.amqp(
        "dysart",
        "gis",
        vec![exact("type", "ca.haliburton.permitting.permit.issued")],
        "amq.topic",
        &out_key,
    );
    let mut bus = h.start().await.expect("bus starts");
    let mut inbox = bus
        .listen("gis-inbox", "amq.topic", &out_key)
        .await
        .expect("listen");
    let topology = bus.admin.topology().clone();

    // A system publishing as its own RabbitMQ user, in binary mode with `ce_` headers.
    let url = civicbus_tests::amqp_url().replace("guest:guest", &format!("{user}:{password}"));
    let system = civicbus_broker::Broker::connect(
        &url,
        topology.clone(),
        civicbus_broker::BrokerOptions::default(),
    )
    .await
    .expect("system connects as its own user");
    let binary = civicbus_core::ports::OutboundMessage {
        body: bytes::Bytes::from(
            permit_event("dysart", "amqp-1", "issued", "BP-2026-0200")["data"].to_string(),
        ),
        content_type: "application/json".into(),
        headers: vec![
            ("ce_specversion".into(), "1.0".into()),
            ("ce_id".into(), "amqp-1".into()),
            ("ce_source".into(), "/dysart/permitting".into()),
            (
                "ce_type".into(),
                "ca.haliburton.permitting.permit.issued".into(),
            ),
            ("ce_subject".into(), "BP-2026-0200".into()),
        ],
        message_id: Some("amqp-1".into()),
    };
    let structured = civicbus_core::wire::to_amqp(
        &civicbus_core::binding::parse_structured(
            permit_event("dysart", "amqp-2", "issued", "BP-2026-0201")
                .to_string()
                .as_bytes(),
            &Default::default(),
        )
        .expect("event"),
        vec![],
    );
    let malformed = civicbus_core::ports::OutboundMessage {
        body: bytes::Bytes::from_static(b"{not json"),
        content_type: "application/cloudevents+json".into(),
        headers: vec![],
        message_id: None,
    };
    let ingress = || civicbus_core::ports::Destination::Exchange {
        exchange: topology.ingress_exchange(),
        routing_key: "dysart.permitting".into(),
    };
    let publisher = system.publisher();
    publisher
        .publish_confirmed_as(
            &user,
            vec![
                (ingress(), binary),
                (ingress(), structured),
                (ingress(), malformed),
            ],
        )
        .await
        .expect("published with confirms");
    // Without user_id, and from a user no tenant claims: quarantined.
    use civicbus_core::ports::Publisher as _;
    publisher
        .publish_confirmed(vec![(
            ingress(),
            civicbus_core::wire::to_amqp(
                &civicbus_core::CloudEvent::new("amqp-3", "/dysart/permitting", "ca.x")
                    .expect("event"),
                vec![],
            ),
        )])
        .await
        .expect("published without user id");
    let stranger_url = civicbus_tests::amqp_url()
        .replace("guest:guest", &format!("{stranger}:{stranger_password}"));
    let other = civicbus_broker::Broker::connect(
        &stranger_url,
        topology.clone(),
        civicbus_broker::BrokerOptions::default(),
    )
    .await
    .expect("stranger connects");
    other
        .publisher()
        .publish_confirmed_as(
            &stranger,
            vec![(
                ingress(),
                civicbus_core::wire::to_amqp(
                    &civicbus_core::CloudEvent::new("amqp-4", "/dysart/permitting", "ca.x")
                        .expect("event"),
                    vec![],
                ),
            )],
        )
        .await
        .expect("stranger publishes");

    // The AMQP subscriber receives both valid events, in structured mode with webhook-id.
    let mut got = Vec::new();
    while got.len() < 2 {
        let msg = tokio::time::timeout(WAIT, inbox.next())
            .await
            .expect("delivery within the wait")
            .expect("stream open")
            .expect("message");
        let ev = civicbus_core::wire::from_amqp(&msg, &Default::default()).expect("CloudEvent");
        assert!(
            msg.header("webhook-id")
                .is_some_and(|v| v.starts_with("msg_"))
        );
        assert_eq!(msg.header("cloudEvents_tenant"), Some("dysart"));
        assert_eq!(ev.tenant(), Some("dysart"));
        msg.acker.ack().await.expect("ack");
        got.push(ev.id);
    }
    got.sort();
    assert_eq!(got, ["amqp-1", "amqp-2"]);

    // Three inputs quarantined with their reasons; none left to be redelivered.
    let store = bus.store();
    let quarantined = eventually(WAIT, || {
        let store = store.clone();
        async move {
            store
                .list_quarantine(None, 10)
                .await
                .map(|q| q.len() >= 3)
                .unwrap_or(false)
        }
    })
    .await;
    assert!(quarantined, "three inputs quarantined");
    let q = store.list_quarantine(None, 10).await.expect("list");
    let mut kinds: Vec<&str> = q.iter().map(|r| r.reason_kind.as_str()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["malformed-json", "missing-user-id", "unknown-amqp-user"]
    );
    let malformed = q
        .iter()
        .find(|r| r.reason_kind == "malformed-json")
        .expect("malformed");
    assert_eq!(malformed.body, b"{not json");
    assert_eq!(malformed.tenant.as_deref(), Some("dysart"));
    let stats = bus
        .admin
        .queue_stats(&topology.ingress_queue())
        .await
        .expect("stats");
    assert_eq!(stats.messages, 0, "nothing left on the ingress queue");
    assert_eq!(store.count_events(Some("dysart")).await.expect("count"), 2);

    let _ = system.close().await;
    let _ = other.close().await;
    bus.stop().await;
    delete_rabbitmq_user(&user);
    delete_rabbitmq_user(&stranger);
}
