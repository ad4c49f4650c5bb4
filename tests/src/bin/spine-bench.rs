//! Ingest → webhook throughput of civicbus, side by side with a baseline relay doing the
//! same broker and HTTP work without civicbus (no archive, audit, routing or signing).
//!
//! ```sh
//! cargo run --release -p civicbus-tests --bin spine-bench -- [EVENTS] [sqlite|postgres]
//! ```
//!
//! Both runs publish EVENTS events over HTTP (batches of 50, 4 concurrent clients) and
//! count distinct deliveries at the same webhook receiver; the time is from the first
//! request to the last delivery. The baseline: an axum endpoint that publishes each batch
//! persistent and confirmed to a quorum queue (through `civicbus-broker`, i.e. lapin), and
//! a consumer that POSTs each message to the receiver with the same concurrency, then acks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use civicbus_broker::{Broker, BrokerOptions, Topology};
use civicbus_core::ports::{Destination, OutboundMessage, Publisher};
use civicbus_server::auth::generate_secret;
use civicbus_server::config::WebhookMode;
use civicbus_tests::{
    Backend, Harness, WebhookSimulator, amqp_url, permit_event, prefix, unique_prefix,
};
use futures::StreamExt;
use serde_json::Value;

const BATCH: usize = 50;
const CLIENTS: usize = 4;
const CONCURRENCY: u16 = 32;

fn batches(n: usize, run: &str) -> Vec<String> {
    (0..n)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|c| {
            let evs: Vec<Value> = c
                .iter()
                .map(|i| {
                    permit_event(
                        "dysart",
                        &format!("{run}-{i}"),
                        "issued",
                        &format!("BP-{i}"),
                    )
                })
                .collect();
            Value::Array(evs).to_string()
        })
        .collect()
}

async fn post_all(url: String, token: Option<String>, bodies: Vec<String>) -> anyhow::Result<()> {
    let queue = Arc::new(std::sync::Mutex::new(bodies));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let queue = queue.clone();
        let url = url.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop());
                let Some(body) = next else { break };
                let mut rb = client
                    .post(&url)
                    .header("content-type", "application/cloudevents-batch+json")
                    .body(body);
                if let Some(t) = &token {
                    rb = rb.bearer_auth(t);
                }
                let status = rb.send().await.map(|r| r.status().as_u16()).unwrap_or(0);
                if status != 202 {
                    return Err(anyhow::anyhow!("publish answered {status}"));
                }
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await.context("publisher task")??;
    }
    Ok(())
}

async fn run_civicbus(n: usize, backend: Backend) -> anyhow::Result<Duration> {
    let secret = generate_secret();
    let sim = WebhookSimulator::start("receiver", vec![secret.clone()]).await?;
    let mut h = Harness::new("bench", backend).await?;
    h.webhook(
        "dysart",
        "records",
        vec![prefix("type", "ca.haliburton.permitting.")],
        sim.url(),
        vec![secret],
        WebhookMode::Binary,
    );
    if let Some(s) = h.config.subscriptions.last_mut() {
        s.concurrency = Some(CONCURRENCY);
    }
    let bus = h.start().await?;
    let bodies = batches(n, "cb");
    let started = Instant::now();
    post_all(
        format!("{}/v1/events", bus.base_url),
        Some(bus.tokens["dysart"].clone()),
        bodies,
    )
    .await?;
    let ingested = started.elapsed();
    anyhow::ensure!(
        sim.wait_for(n, Duration::from_secs(600)).await,
        "civicbus: deliveries missing"
    );
    let took = started.elapsed();
    println!(
        "civicbus   ingest {:>8.0} events/s   end-to-end {:>8.0} events/s",
        n as f64 / ingested.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    bus.stop().await;
    Ok(took)
}

#[derive(Clone)]
struct Relay {
    publisher: Arc<dyn Publisher>,
    queue: String,
}

async fn relay_ingest(State(r): State<Relay>, body: Bytes) -> StatusCode {
    let Ok(Value::Array(events)) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let msgs = events
        .iter()
        .map(|e| {
            (
                Destination::Exchange {
                    exchange: String::new(),
                    routing_key: r.queue.clone(),
                },
                OutboundMessage {
                    body: bytes::Bytes::from(e.to_string()),
                    content_type: "application/cloudevents+json".into(),
                    headers: vec![],
                    message_id: e["id"].as_str().map(str::to_string),
                },
            )
        })
        .collect();
    match r.publisher.publish_confirmed(msgs).await {
        Ok(()) => StatusCode::ACCEPTED,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn run_baseline(n: usize) -> anyhow::Result<Duration> {
    let sim = WebhookSimulator::start("receiver", vec![generate_secret()]).await?;
    let prefix = unique_prefix("baseline");
    let broker = Broker::connect(
        &amqp_url(),
        Topology::new(prefix.clone()),
        BrokerOptions::default(),
    )
    .await?;
    let queue = format!("{prefix}relay");
    broker.declare_quorum_queue(&queue).await?;
    let relay = Relay {
        publisher: Arc::new(broker.publisher()),
        queue: queue.clone(),
    };
    let app = axum::Router::new()
        .route("/v1/events", axum::routing::post(relay_ingest))
        .with_state(relay);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let consumer = broker.consume(&queue, "baseline", CONCURRENCY).await?;
    let target = sim.url();
    let relay_task = tokio::spawn(async move {
        let client = reqwest::Client::new();
        consumer
            .for_each_concurrent(usize::from(CONCURRENCY), |m| {
                let client = client.clone();
                let target = target.clone();
                async move {
                    let Ok(m) = m else { return };
                    let id = m.message_id.clone().unwrap_or_default();
                    // The receiver checks signatures; the baseline does not sign, so the
                    // receiver answers 401 — it is still one HTTP round trip per event.
                    let sent = client
                        .post(&target)
                        .header("webhook-id", id)
                        .header("content-type", "application/cloudevents+json")
                        .body(m.body.clone())
                        .send()
                        .await;
                    if sent.is_ok() {
                        let _ = m.acker.ack().await;
                    } else {
                        let _ = m.acker.nack(true).await;
                    }
                }
            })
            .await;
    });
    let bodies = batches(n, "base");
    let started = Instant::now();
    post_all(format!("http://{addr}/v1/events"), None, bodies).await?;
    let ingested = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while sim.request_count() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::ensure!(sim.request_count() >= n, "baseline: deliveries missing");
    let took = started.elapsed();
    println!(
        "baseline   ingest {:>8.0} events/s   end-to-end {:>8.0} events/s",
        n as f64 / ingested.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    relay_task.abort();
    server.abort();
    let _ = broker.delete_queue(&queue).await;
    let _ = broker.close().await;
    Ok(took)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let backend = match args.get(2).map(String::as_str) {
        Some("postgres") => Backend::Postgres,
        _ => Backend::Sqlite,
    };
    println!(
        "{n} events, batches of {BATCH}, {CLIENTS} HTTP clients, delivery concurrency {CONCURRENCY}, store {backend:?}"
    );
    let base = run_baseline(n).await?;
    let cb = run_civicbus(n, backend).await?;
    println!(
        "civicbus end-to-end throughput = {:.2} × baseline",
        base.as_secs_f64() / cb.as_secs_f64()
    );
    Ok(())
}
