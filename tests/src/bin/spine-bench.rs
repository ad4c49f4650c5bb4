//! Ingest → webhook throughput of civicbus, side by side with a baseline, in three
//! scenarios.
//!
//! ```sh
//! cargo run --release -p civicbus-tests --bin spine-bench -- [EVENTS] [sqlite|postgres] [throughput|retries|backlog]
//! ```
//!
//! Every run publishes EVENTS events over HTTP (batches of 50, 4 concurrent clients) and
//! counts distinct deliveries (`webhook-id`s answered 2xx) at a webhook receiver.
//!
//! - `throughput` (the default): the time from the first request to the last delivery,
//!   civicbus against a baseline relay doing the same broker and HTTP work without
//!   civicbus (no archive, audit, routing or signing): an axum endpoint that publishes
//!   each batch persistent and confirmed to a quorum queue (through `civicbus-broker`,
//!   i.e. lapin), and a consumer that POSTs each message to the receiver with the same
//!   concurrency, then acks.
//! - `retries`: the receiver answers 503 to the first attempt of every 5th event (by
//!   index: exactly EVENTS / 5 events), then 204; the subscription retries after 1 s.
//!   Time from the first request to the last distinct delivery, against the plain
//!   civicbus run (no failures) in the same process; attempts made; each event checked
//!   delivered exactly once.
//! - `backlog`: the receiver answers 503 while every event is published and routed and
//!   for 5 s more (the circuit breaker opens; deliveries wait in RabbitMQ), then 204.
//!   Time from the receiver coming back to the last distinct delivery (the drain),
//!   against the plain civicbus run's end-to-end rate; each event checked delivered
//!   exactly once.
//!
//! The retry and health policies of the `retries` and `backlog` subscriptions are printed
//! with the results. The process exits non-zero if a check fails.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use civicbus_broker::{Broker, BrokerOptions, Topology};
use civicbus_core::ports::{
    AttemptStatus, DeadLetterQuery, Destination, EventStore, OutboundMessage, Publisher,
};
use civicbus_server::auth::generate_secret;
use civicbus_server::config::{HealthOverride, RetryOverride, WebhookMode};
use civicbus_tests::{
    Backend, Harness, TestBus, WebhookSimulator, amqp_url, permit_event, prefix, unique_prefix,
};
use futures::StreamExt;
use serde_json::Value;

const BATCH: usize = 50;
const CLIENTS: usize = 4;
const CONCURRENCY: u16 = 32;
/// `retries`: one event in this many has its first attempt refused.
const FAIL_ONE_IN: usize = 5;
/// `backlog`: how long the receiver stays down after every event was routed.
const OUTAGE_HOLD: Duration = Duration::from_secs(5);
/// Wait after the last delivery before counting, so stray duplicates show up.
const SETTLE: Duration = Duration::from_secs(2);
/// Longest wait for deliveries.
const WAIT: Duration = Duration::from_secs(600);

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

/// One civicbus run's subscription settings beyond the defaults of [`Harness`].
#[derive(Default)]
struct Policies {
    retry: Option<RetryOverride>,
    health: Option<HealthOverride>,
}

/// A bus with one binary-mode webhook subscription (`dysart.records`, concurrency
/// [`CONCURRENCY`]) to `sim`.
async fn start_bus(
    test: &str,
    backend: Backend,
    sim: &WebhookSimulator,
    secret: String,
    policies: Policies,
) -> anyhow::Result<TestBus> {
    let mut h = Harness::new(test, backend).await?;
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
        s.retry = policies.retry;
        s.health = policies.health;
    }
    h.start().await
}

async fn run_civicbus(n: usize, backend: Backend) -> anyhow::Result<Run> {
    let secret = generate_secret();
    let sim = WebhookSimulator::start("receiver", vec![secret.clone()]).await?;
    let bus = start_bus("bench", backend, &sim, secret, Policies::default()).await?;
    let bodies = batches(n, "cb");
    let started = Instant::now();
    post_all(
        format!("{}/v1/events", bus.base_url),
        Some(bus.tokens["dysart"].clone()),
        bodies,
    )
    .await?;
    let ingested = started.elapsed();
    anyhow::ensure!(sim.wait_for(n, WAIT).await, "civicbus: deliveries missing");
    let took = started.elapsed();
    println!(
        "civicbus   ingest {:>8.0} events/s   end-to-end {:>8.0} events/s",
        n as f64 / ingested.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    bus.stop().await;
    Ok(Run {
        took,
        tally: Tally::of(&sim),
    })
}

/// A finished civicbus run: the measured time and what the receiver saw.
struct Run {
    took: Duration,
    tally: Tally,
}

/// What the receiver saw, after the run (see [`SETTLE`]).
struct Tally {
    /// Requests, accepted or not.
    requests: usize,
    /// Requests answered 2xx.
    accepted: usize,
    /// Distinct `webhook-id`s accepted.
    distinct: usize,
    /// Acceptances beyond the first of a `webhook-id`.
    duplicates: usize,
}

impl Tally {
    fn of(sim: &WebhookSimulator) -> Tally {
        let mut per_id: HashMap<String, usize> = HashMap::new();
        let received = sim.received();
        for r in received.iter().filter(|r| r.accepted) {
            *per_id.entry(r.webhook_id.clone()).or_default() += 1;
        }
        let accepted: usize = per_id.values().sum();
        Tally {
            requests: received.len(),
            accepted,
            distinct: per_id.len(),
            duplicates: accepted - per_id.len(),
        }
    }
}

/// What the store recorded for the events `<run>-0` … `<run>-<n-1>`.
struct StoreTally {
    /// Attempts recorded, any outcome.
    attempts: usize,
    /// Attempts that failed and were retried.
    retryable: usize,
    /// Events with exactly one `delivered` attempt.
    delivered_once: usize,
    /// Dead letters of the deployment.
    dead: usize,
}

impl StoreTally {
    async fn of(bus: &TestBus, run: &str, n: usize) -> anyhow::Result<StoreTally> {
        let store = bus.store();
        let mut t = StoreTally {
            attempts: 0,
            retryable: 0,
            delivered_once: 0,
            dead: 0,
        };
        for i in 0..n {
            let attempts = store
                .attempts_for_event("dysart", "/dysart/permitting", &format!("{run}-{i}"))
                .await
                .context("reading attempts")?;
            t.attempts += attempts.len();
            t.retryable += attempts
                .iter()
                .filter(|a| a.status == AttemptStatus::Retryable)
                .count();
            let delivered = attempts
                .iter()
                .filter(|a| a.status == AttemptStatus::Delivered)
                .count();
            if delivered == 1 {
                t.delivered_once += 1;
            }
        }
        t.dead = store
            .list_dead_letters(&DeadLetterQuery::default())
            .await
            .context("reading dead letters")?
            .len();
        Ok(t)
    }
}

/// The exactly-once check of a run: every event accepted once, none twice, one
/// `delivered` attempt each, nothing dead-lettered.
fn exactly_once(n: usize, tally: &Tally, store: &StoreTally) -> Result<(), String> {
    let mut problems = Vec::new();
    if tally.distinct != n {
        problems.push(format!("{} of {n} events accepted", tally.distinct));
    }
    if tally.duplicates > 0 {
        problems.push(format!("{} duplicate acceptances", tally.duplicates));
    }
    if store.delivered_once != n {
        problems.push(format!(
            "{} of {n} events with exactly one delivered attempt",
            store.delivered_once
        ));
    }
    if store.attempts != tally.requests {
        problems.push(format!(
            "{} attempts recorded for {} requests received",
            store.attempts, tally.requests
        ));
    }
    if store.dead > 0 {
        problems.push(format!("{} dead letters", store.dead));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The index `i` of an event id `<run>-<i>`.
fn event_index(id: &str) -> Option<usize> {
    id.rsplit('-').next()?.parse().ok()
}

/// Results of the `retries` scenario.
struct Retries {
    took: Duration,
    ingested: Duration,
    failed_first: usize,
    tally: Tally,
    store: StoreTally,
}

/// The receiver refuses with 503 the first attempt of every [`FAIL_ONE_IN`]th event (by
/// index, so exactly n / FAIL_ONE_IN events); the retry brings each through.
async fn run_retries(n: usize, backend: Backend) -> anyhow::Result<Retries> {
    let secret = generate_secret();
    let sim = WebhookSimulator::start("receiver", vec![secret.clone()]).await?;
    sim.fail_first_attempt(503, |id| {
        event_index(id).is_some_and(|i| i % FAIL_ONE_IN == 0)
    });
    let bus = start_bus("bench-retries", backend, &sim, secret, retries_policies()).await?;
    let bodies = batches(n, "rt");
    let started = Instant::now();
    post_all(
        format!("{}/v1/events", bus.base_url),
        Some(bus.tokens["dysart"].clone()),
        bodies,
    )
    .await?;
    let ingested = started.elapsed();
    let delivered = sim.wait_for(n, WAIT).await;
    let took = started.elapsed();
    tokio::time::sleep(SETTLE).await;
    let tally = Tally::of(&sim);
    let store = StoreTally::of(&bus, "rt", n).await;
    bus.stop().await;
    anyhow::ensure!(delivered, "retries: deliveries missing");
    Ok(Retries {
        took,
        ingested,
        failed_first: n.div_ceil(FAIL_ONE_IN),
        tally,
        store: store?,
    })
}

fn retries_policies() -> Policies {
    Policies {
        retry: Some(RetryOverride {
            max_attempts: Some(5),
            initial_backoff: Some(Duration::from_secs(1)),
            max_backoff: Some(Duration::from_secs(1)),
            multiplier: Some(1.0),
            jitter: Some(0.0),
            ..RetryOverride::default()
        }),
        health: Some(HealthOverride {
            failure_threshold: Some(5),
            open_for: Some(Duration::from_secs(1)),
            max_open_for: Some(Duration::from_secs(2)),
            ..HealthOverride::default()
        }),
    }
}

/// Results of the `backlog` scenario.
struct Backlog {
    /// From the first publish to the receiver coming back.
    outage: Duration,
    /// Requests the receiver got (and refused) during the outage.
    outage_requests: usize,
    /// Messages ready in the delivery queue and in the delay queues at recovery.
    queued_at_recovery: (u32, u32),
    /// From recovery to the first accepted delivery.
    first: Duration,
    /// From recovery to the last distinct delivery.
    drain: Duration,
    tally: Tally,
    store: StoreTally,
}

/// The receiver answers 503 while every event is published and routed, and for
/// [`OUTAGE_HOLD`] after, then comes back.
async fn run_backlog(n: usize, backend: Backend) -> anyhow::Result<Backlog> {
    let secret = generate_secret();
    let sim = WebhookSimulator::start("receiver", vec![secret.clone()]).await?;
    sim.answer_with(503);
    let bus = start_bus("bench-backlog", backend, &sim, secret, backlog_policies()).await?;
    let result = backlog_phases(n, &bus, &sim).await;
    bus.stop().await;
    result
}

async fn backlog_phases(
    n: usize,
    bus: &TestBus,
    sim: &WebhookSimulator,
) -> anyhow::Result<Backlog> {
    let started = Instant::now();
    post_all(
        format!("{}/v1/events", bus.base_url),
        Some(bus.tokens["dysart"].clone()),
        batches(n, "bl"),
    )
    .await?;
    wait_routed(bus).await?;
    tokio::time::sleep(OUTAGE_HOLD).await;
    let t = bus.admin.topology();
    let ready = bus
        .admin
        .queue_stats(&t.subscription_queue("dysart.records"))
        .await?
        .messages;
    let mut delayed = 0;
    for level in 0..4 {
        delayed += bus.admin.queue_stats(&t.delay_queue(level)).await?.messages;
    }
    let outage_requests = sim.request_count();

    sim.answer_with(204);
    let recovered = Instant::now();
    let outage = recovered - started;
    let mut first = None;
    while sim.distinct_count() < n && recovered.elapsed() < WAIT {
        if first.is_none() && sim.distinct_count() > 0 {
            first = Some(recovered.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drain = recovered.elapsed();
    anyhow::ensure!(sim.distinct_count() >= n, "backlog: deliveries missing");
    tokio::time::sleep(SETTLE).await;
    Ok(Backlog {
        outage,
        outage_requests,
        queued_at_recovery: (ready, delayed),
        first: first.unwrap_or(drain),
        drain,
        tally: Tally::of(sim),
        store: StoreTally::of(bus, "bl", n).await?,
    })
}

/// Wait until the route queue stayed empty for three polls in a row: every event was
/// routed to the subscription's queue.
async fn wait_routed(bus: &TestBus) -> anyhow::Result<()> {
    let route = bus.admin.topology().route_queue();
    let deadline = Instant::now() + WAIT;
    let mut empty = 0;
    while empty < 3 {
        anyhow::ensure!(Instant::now() < deadline, "backlog: events not routed");
        if bus.admin.queue_stats(&route).await?.messages == 0 {
            empty += 1;
        } else {
            empty = 0;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn backlog_policies() -> Policies {
    Policies {
        retry: Some(RetryOverride {
            max_attempts: Some(1000),
            max_age: Some(Duration::from_secs(24 * 3600)),
            initial_backoff: Some(Duration::from_secs(1)),
            max_backoff: Some(Duration::from_secs(2)),
            multiplier: Some(1.0),
            jitter: Some(0.0),
        }),
        health: Some(HealthOverride {
            failure_threshold: Some(5),
            open_for: Some(Duration::from_secs(1)),
            max_open_for: Some(Duration::from_secs(2)),
            ..HealthOverride::default()
        }),
    }
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
    let deadline = Instant::now() + WAIT;
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

/// Which scenario to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Throughput,
    Retries,
    Backlog,
}

impl Scenario {
    fn parse(s: &str) -> Option<Scenario> {
        match s {
            "throughput" => Some(Scenario::Throughput),
            "retries" => Some(Scenario::Retries),
            "backlog" => Some(Scenario::Backlog),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scenario::Throughput => "throughput",
            Scenario::Retries => "retries",
            Scenario::Backlog => "backlog",
        }
    }
}

/// Print `rows` under `header` as a plain table: the first column left-aligned, the
/// others right-aligned.
fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let out: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, &w))| {
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        println!("{}", out.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    line(widths.iter().map(|&w| "-".repeat(w)).collect());
    for r in rows {
        line(r.clone());
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn rate(n: usize, d: Duration) -> String {
    format!("{:.0}", n as f64 / d.as_secs_f64())
}

fn ratio(x: f64) -> String {
    format!("{x:.2}×")
}

fn check(result: &Result<(), String>) -> String {
    match result {
        Ok(()) => "ok".into(),
        Err(e) => format!("FAILED: {e}"),
    }
}

fn plain_check(n: usize, t: &Tally) -> Result<(), String> {
    if t.distinct == n && t.duplicates == 0 {
        Ok(())
    } else {
        Err(format!(
            "{} of {n} accepted, {} duplicates",
            t.distinct, t.duplicates
        ))
    }
}

fn describe_retry(r: Option<&RetryOverride>) -> String {
    let Some(r) = r else {
        return "defaults".into();
    };
    let mut parts = Vec::new();
    if let Some(v) = r.max_attempts {
        parts.push(format!("max_attempts {v}"));
    }
    if let Some(v) = r.max_age {
        parts.push(format!("max_age {}s", v.as_secs()));
    }
    if let Some(v) = r.initial_backoff {
        parts.push(format!("initial_backoff {}s", v.as_secs()));
    }
    if let Some(v) = r.max_backoff {
        parts.push(format!("max_backoff {}s", v.as_secs()));
    }
    if let Some(v) = r.multiplier {
        parts.push(format!("multiplier {v}"));
    }
    if let Some(v) = r.jitter {
        parts.push(format!("jitter {v}"));
    }
    parts.join(", ")
}

fn describe_health(h: Option<&HealthOverride>) -> String {
    let Some(h) = h else {
        return "defaults".into();
    };
    let mut parts = Vec::new();
    if let Some(v) = h.failure_threshold {
        parts.push(format!("failure_threshold {v}"));
    }
    if let Some(v) = h.open_for {
        parts.push(format!("open_for {}s", v.as_secs()));
    }
    if let Some(v) = h.max_open_for {
        parts.push(format!("max_open_for {}s", v.as_secs()));
    }
    parts.join(", ")
}

fn print_policies(p: &Policies) {
    println!(
        "subscription retry policy: {}; health policy: {}",
        describe_retry(p.retry.as_ref()),
        describe_health(p.health.as_ref())
    );
}

async fn throughput(n: usize, backend: Backend) -> anyhow::Result<()> {
    let base = run_baseline(n).await?;
    let cb = run_civicbus(n, backend).await?;
    println!(
        "civicbus end-to-end throughput = {:.2} × baseline",
        base.as_secs_f64() / cb.took.as_secs_f64()
    );
    Ok(())
}

async fn retries(n: usize, backend: Backend) -> anyhow::Result<bool> {
    let plain = run_civicbus(n, backend).await?;
    let r = run_retries(n, backend).await?;
    println!();
    print_policies(&retries_policies());
    let plain_ok = plain_check(n, &plain.tally);
    let retries_ok = exactly_once(n, &r.tally, &r.store);
    let refused = |t: &Tally| (t.requests - t.accepted).to_string();
    table(
        &[
            "run",
            "events",
            "time s",
            "events/s",
            "vs plain",
            "requests",
            "refused",
            "duplicates",
            "exactly once",
        ],
        &[
            vec![
                "civicbus, receiver always 2xx".into(),
                n.to_string(),
                secs(plain.took),
                rate(n, plain.took),
                ratio(1.0),
                plain.tally.requests.to_string(),
                refused(&plain.tally),
                plain.tally.duplicates.to_string(),
                check(&plain_ok),
            ],
            vec![
                format!("civicbus, 1st attempt of 1 in {FAIL_ONE_IN} → 503"),
                n.to_string(),
                secs(r.took),
                rate(n, r.took),
                ratio(plain.took.as_secs_f64() / r.took.as_secs_f64()),
                r.tally.requests.to_string(),
                refused(&r.tally),
                r.tally.duplicates.to_string(),
                check(&retries_ok),
            ],
        ],
    );
    println!(
        "retries run: {} events refused once by design, {} attempts recorded ({} retryable), \
         ingest {} events/s, {} dead letters",
        r.failed_first,
        r.store.attempts,
        r.store.retryable,
        rate(n, r.ingested),
        r.store.dead
    );
    Ok(plain_ok.is_ok() && retries_ok.is_ok())
}

async fn backlog(n: usize, backend: Backend) -> anyhow::Result<bool> {
    let plain = run_civicbus(n, backend).await?;
    let b = run_backlog(n, backend).await?;
    println!();
    print_policies(&backlog_policies());
    let plain_ok = plain_check(n, &plain.tally);
    let backlog_ok = exactly_once(n, &b.tally, &b.store);
    table(
        &[
            "run",
            "events",
            "time s",
            "events/s",
            "vs plain",
            "requests",
            "duplicates",
            "exactly once",
        ],
        &[
            vec![
                "civicbus, receiver up: publish → last delivery".into(),
                n.to_string(),
                secs(plain.took),
                rate(n, plain.took),
                ratio(1.0),
                plain.tally.requests.to_string(),
                plain.tally.duplicates.to_string(),
                check(&plain_ok),
            ],
            vec![
                "civicbus, backlog: receiver back → last delivery".into(),
                n.to_string(),
                secs(b.drain),
                rate(n, b.drain),
                ratio(plain.took.as_secs_f64() / b.drain.as_secs_f64()),
                b.tally.requests.to_string(),
                b.tally.duplicates.to_string(),
                check(&backlog_ok),
            ],
        ],
    );
    println!(
        "backlog run: receiver down {} s (publish, routing, then {} s), {} requests refused \
         meanwhile; at recovery {} messages ready in the delivery queue and {} in delay \
         queues (the rest in flight); first delivery {} s after recovery; {} attempts \
         recorded ({} retryable), {} dead letters",
        secs(b.outage),
        OUTAGE_HOLD.as_secs(),
        b.outage_requests,
        b.queued_at_recovery.0,
        b.queued_at_recovery.1,
        secs(b.first),
        b.store.attempts,
        b.store.retryable,
        b.store.dead
    );
    Ok(plain_ok.is_ok() && backlog_ok.is_ok())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let backend = match args.get(2).map(String::as_str) {
        Some("postgres") => Backend::Postgres,
        _ => Backend::Sqlite,
    };
    let scenario = match args.get(3) {
        None => Scenario::Throughput,
        Some(s) => Scenario::parse(s).with_context(|| {
            format!("unknown scenario '{s}': use throughput, retries or backlog")
        })?,
    };
    println!(
        "{n} events, batches of {BATCH}, {CLIENTS} HTTP clients, delivery concurrency {CONCURRENCY}, store {backend:?}, scenario {}",
        scenario.name()
    );
    let ok = match scenario {
        Scenario::Throughput => throughput(n, backend).await.map(|()| true)?,
        Scenario::Retries => retries(n, backend).await?,
        Scenario::Backlog => backlog(n, backend).await?,
    };
    let store = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    println!(
        "reproduce: cargo run --release -p civicbus-tests --bin spine-bench -- {n} {store} {}",
        scenario.name()
    );
    anyhow::ensure!(ok, "a delivery check failed (see the table)");
    Ok(())
}
