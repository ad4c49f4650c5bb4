//! RabbitMQ becomes unreachable while the bus runs: ingest answers 503 with `Retry-After`
//! (nothing is promised that RabbitMQ did not confirm), the bus keeps serving, and once
//! RabbitMQ is back it accepts and delivers again — including what it accepted before.
//!
//! The outage is made by a TCP proxy between the bus and RabbitMQ that the test cuts, so
//! the shared broker keeps running for other tests.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use civicbus_server::auth::generate_secret;
use civicbus_server::config::WebhookMode;
use civicbus_tests::{Backend, Harness, WebhookSimulator, eventually, permit_event, prefix};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP proxy to RabbitMQ that can be cut and restored on the same port.
struct Proxy {
    addr: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start(addr: Option<SocketAddr>) -> Proxy {
        let listener =
            TcpListener::bind(addr.unwrap_or_else(|| "127.0.0.1:0".parse().expect("addr")))
                .await
                .expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::new(Mutex::new(Vec::new()));
        let t = tasks.clone();
        let acceptor = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect("127.0.0.1:5672").await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                if let Ok(mut v) = t.lock() {
                    v.push(conn);
                }
            }
        });
        Proxy {
            addr,
            tasks,
            acceptor: Some(acceptor),
        }
    }

    /// Drop every connection and stop listening.
    fn cut(&mut self) {
        if let Some(a) = self.acceptor.take() {
            a.abort();
        }
        if let Ok(mut v) = self.tasks.lock() {
            for t in v.drain(..) {
                t.abort();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_outage_gives_503_then_recovers() {
    let mut proxy = Proxy::start(None).await;
    let secret = generate_secret();
    let sim = WebhookSimulator::start("records", vec![secret.clone()])
        .await
        .expect("sim");
    let mut h = Harness::new("outage", Backend::Sqlite)
        .await
        .expect("harness");
    h.config.broker.url = format!("amqp://guest:guest@{}/%2f", proxy.addr);
    h.config.api.request_timeout = Duration::from_secs(3);
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
        .publish("dysart", &permit_event("dysart", "o-1", "issued", "BP-1"))
        .await
        .expect("post");
    assert_eq!(status, 202);
    assert!(sim.wait_for(1, Duration::from_secs(30)).await);

    proxy.cut();
    // Wait until the bus notices (readiness turns 503), then ingest must refuse with 503.
    let client = reqwest::Client::new();
    let not_ready = eventually(Duration::from_secs(20), || {
        let client = client.clone();
        let url = format!("{}/readyz", bus.base_url);
        async move {
            client
                .get(url)
                .send()
                .await
                .map(|r| r.status().as_u16() == 503)
                .unwrap_or(false)
        }
    })
    .await;
    assert!(not_ready, "/readyz reports the broker outage");
    let started = std::time::Instant::now();
    let resp = bus
        .client
        .post(format!("{}/v1/events", bus.base_url))
        .bearer_auth(&bus.tokens["dysart"])
        .header("content-type", "application/cloudevents+json")
        .body(permit_event("dysart", "o-2", "issued", "BP-2").to_string())
        .send()
        .await
        .expect("post during outage");
    assert_eq!(resp.status().as_u16(), 503);
    assert!(
        resp.headers().get("retry-after").is_some(),
        "503 carries Retry-After"
    );
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    assert!(
        started.elapsed() <= Duration::from_secs(5),
        "answered within the request timeout"
    );
    // The API itself keeps serving.
    let health = client
        .get(format!("{}/healthz", bus.base_url))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status().as_u16(), 200);

    // RabbitMQ is back: the bus reconnects, accepts and delivers again.
    let _proxy = Proxy::start(Some(proxy.addr)).await;
    let accepted = eventually(Duration::from_secs(60), || {
        let bus = &bus;
        async move {
            bus.publish("dysart", &permit_event("dysart", "o-3", "issued", "BP-3"))
                .await
                .map(|(s, _)| s == 202)
                .unwrap_or(false)
        }
    })
    .await;
    assert!(accepted, "ingest accepts again after RabbitMQ returns");
    assert!(
        sim.wait_for(2, Duration::from_secs(60)).await,
        "delivery resumes: {:?}",
        sim.distinct_ids()
    );
    let ids: Vec<String> = sim
        .received()
        .into_iter()
        .filter(|r| r.accepted)
        .filter_map(|r| r.event.map(|e| e.id))
        .collect();
    assert!(ids.contains(&"o-3".to_string()));
    assert!(
        !ids.contains(&"o-2".to_string()),
        "an event answered 503 was not accepted and is not delivered"
    );
    bus.stop().await;
}
