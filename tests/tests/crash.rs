//! Crash: thousands of events in flight, `kill -9` the bus, restart it. Every event the API
//! answered 202 for is in the archive and reaches its subscriber at least once (counted as
//! distinct `webhook-id`s). Then SIGTERM stops the bus cleanly with exit code 0.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use civicbus_core::ports::EventStore;
use civicbus_server::auth::{generate_secret, generate_token};
use civicbus_server::config::token_hash;
use civicbus_store::SqlStore;
use civicbus_tests::{
    Backend, StoreFixture, WebhookSimulator, amqp_url, permit_event, unique_prefix,
};

const EVENTS: usize = 5_000;
const PUBLISHERS: usize = 16;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn spawn_bus(config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    Command::new(env!("CARGO_BIN_EXE_civicbus-e2e"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start civicbus")
}

async fn wait_ready(base: &str) {
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("civicbus did not become ready at {base}");
}

/// Publish `ids` with `PUBLISHERS` concurrent clients; returns (accepted, not accepted).
async fn publish_all(
    base: &str,
    token: &str,
    ids: Vec<usize>,
    accepted: Arc<Mutex<BTreeSet<usize>>>,
) -> Vec<usize> {
    let queue = Arc::new(Mutex::new(ids));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..PUBLISHERS {
        let queue = queue.clone();
        let failed = failed.clone();
        let accepted = accepted.clone();
        let base = base.to_string();
        let token = token.to_string();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client");
            loop {
                let Some(i) = queue.lock().expect("lock").pop() else {
                    break;
                };
                let ev = permit_event(
                    "dysart",
                    &format!("crash-{i}"),
                    "issued",
                    &format!("BP-{i}"),
                );
                let ok = client
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(&token)
                    .header("content-type", "application/cloudevents+json")
                    .body(ev.to_string())
                    .send()
                    .await
                    .map(|r| r.status().as_u16() == 202)
                    .unwrap_or(false);
                if ok {
                    accepted.lock().expect("lock").insert(i);
                } else {
                    failed.lock().expect("lock").push(i);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut rest = failed.lock().expect("lock").clone();
    rest.sort_unstable();
    rest
}

async fn crash_and_recover(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = StoreFixture::new(backend).await.expect("store");
    let secret = generate_secret();
    let sim = WebhookSimulator::start("records", vec![secret.clone()])
        .await
        .expect("sim");
    let token = generate_token();
    let prefix = unique_prefix("crash");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = format!(
        r#"
[api]
listen = "127.0.0.1:{port}"
[broker]
url = "{amqp}"
prefix = "{prefix}"
[store]
url = "{store}"
[delivery]
concurrency = 32
[delivery.retry]
initial_backoff = "1s"
multiplier = 1.0

[[tenants]]
id = "dysart"
tokens = [{{ name = "dysart-permitting", sha256 = "{hash}" }}]

[[subscriptions]]
id = "records"
tenant = "dysart"
filters = [{{ prefix = {{ type = "ca.haliburton.permitting." }} }}]
[subscriptions.webhook]
url = "{url}"
secrets = ["{secret}"]
"#,
        amqp = amqp_url(),
        store = store.url,
        hash = hex::encode(token_hash(&token)),
        url = sim.url(),
    );
    let config_path = dir.path().join("civicbus.toml");
    std::fs::write(&config_path, config).expect("write config");
    let log = dir.path().join("civicbus.log");

    let mut bus = spawn_bus(&config_path, &log);
    wait_ready(&base).await;

    // Publish in the background; kill -9 the bus while events are in flight.
    let accepted = Arc::new(Mutex::new(BTreeSet::new()));
    let publishing = {
        let base = base.clone();
        let token = token.clone();
        let accepted = accepted.clone();
        tokio::spawn(
            async move { publish_all(&base, &token, (0..EVENTS).collect(), accepted).await },
        )
    };
    loop {
        let n = accepted.lock().expect("lock").len();
        if n >= EVENTS / 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bus.kill().expect("kill -9");
    let _ = bus.wait();
    let accepted_before_crash: BTreeSet<usize> = accepted.lock().expect("lock").clone();
    let mut not_accepted = publishing.await.expect("publisher task");
    assert!(
        accepted_before_crash.len() < EVENTS,
        "the crash happened with events still to publish"
    );

    // Restart; the producer re-sends what was not accepted (as any HTTP client would).
    let mut bus = spawn_bus(&config_path, &log);
    wait_ready(&base).await;
    for _ in 0..5 {
        if not_accepted.is_empty() {
            break;
        }
        not_accepted = publish_all(&base, &token, not_accepted, accepted.clone()).await;
    }
    assert!(
        not_accepted.is_empty(),
        "every event accepted after the restart"
    );
    assert_eq!(accepted.lock().expect("lock").len(), EVENTS);

    // Every accepted event reaches the subscriber at least once.
    let all = sim.wait_for(EVENTS, Duration::from_secs(240)).await;
    let distinct = sim.distinct_ids().len();
    assert!(all, "distinct webhook-ids: {distinct} of {EVENTS}");
    assert_eq!(distinct, EVENTS);

    // Nothing the API answered 202 for is missing from the archive.
    let reader = SqlStore::connect(&store.url).await.expect("open store");
    assert_eq!(
        reader.count_events(Some("dysart")).await.expect("count"),
        EVENTS as u64
    );
    for i in &accepted_before_crash {
        let found = reader
            .get_event("dysart", "/dysart/permitting", &format!("crash-{i}"))
            .await
            .expect("lookup");
        assert!(
            found.is_some(),
            "crash-{i} was accepted before the crash and must be archived"
        );
    }
    let audit = reader.verify_audit().await.expect("verify");
    assert!(audit.is_intact(), "{audit:?}");
    reader.close().await;

    // SIGTERM: graceful shutdown, exit code 0.
    let pid = bus.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    assert!(sent.success());
    let status = bus.wait().expect("wait");
    assert_eq!(
        status.code(),
        Some(0),
        "graceful shutdown exits 0; log: {}",
        log.display()
    );

    let admin = civicbus_broker::Broker::connect(
        &amqp_url(),
        civicbus_broker::Topology::new(prefix),
        civicbus_broker::BrokerOptions::default(),
    )
    .await
    .expect("broker");
    let _ = admin.teardown(&["dysart.records".to_string()]).await;
    let _ = admin.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_loses_nothing_sqlite() {
    crash_and_recover(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_loses_nothing_postgres() {
    crash_and_recover(Backend::Postgres).await;
}
