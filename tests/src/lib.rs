//! End-to-end test harness: a real bus on the real RabbitMQ and a real store (SQLite file or
//! a fresh PostgreSQL database), isolated per test by a unique queue-name prefix and its own
//! database, with simulated subscribers.
//!
//! A missing RabbitMQ or PostgreSQL makes tests fail, never skip.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use civicbus_broker::{Broker, BrokerConsumer, BrokerOptions, Topology};
use civicbus_core::Filter;
use civicbus_server::app::{self, RunningBus};
use civicbus_server::config::{
    AmqpSinkConfig, Config, ShareConfig, SubscriptionConfig, TenantConfig, WebhookConfig,
    WebhookMode, resolve,
};
use civicbus_store::SqlStore;
use civicbus_store::testing::{TempPgDatabase, pg_admin_url};
use serde_json::{Value, json};

pub use civicbus_server::sim::{Received, WebhookSimulator};

/// The five tenants of the example deployment.
pub const TENANTS: [&str; 5] = [
    "county",
    "algonquin-highlands",
    "dysart",
    "highlands-east",
    "minden-hills",
];

/// RabbitMQ for tests: `CIVICBUS_TEST_AMQP_URL`, default the local guest account.
pub fn amqp_url() -> String {
    std::env::var("CIVICBUS_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

/// A queue-name prefix unique to one test run.
pub fn unique_prefix(test: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("t-{test}-{}.", &id[..10])
}

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh PostgreSQL database.
    Postgres,
}

/// A store of the test's own; removed when dropped.
pub struct StoreFixture {
    /// Store URL.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<TempPgDatabase>,
}

impl StoreFixture {
    /// A new empty store on `backend`.
    pub async fn new(backend: Backend) -> anyhow::Result<StoreFixture> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().context("temporary directory")?;
                let url = format!("sqlite://{}", dir.path().join("civicbus.db").display());
                Ok(StoreFixture {
                    url,
                    _dir: Some(dir),
                    _pg: None,
                })
            }
            Backend::Postgres => {
                let db = TempPgDatabase::create(&pg_admin_url())
                    .await
                    .context("PostgreSQL is required for the end-to-end tests")?;
                Ok(StoreFixture {
                    url: db.url().to_string(),
                    _dir: None,
                    _pg: Some(db),
                })
            }
        }
    }
}

/// A filter `{ exact = { <attr> = <value> } }`.
pub fn exact(attr: &str, value: &str) -> Filter {
    Filter::Exact(BTreeMap::from([(attr.to_string(), value.to_string())]))
}

/// A filter `{ prefix = { <attr> = <value> } }`.
pub fn prefix(attr: &str, value: &str) -> Filter {
    Filter::Prefix(BTreeMap::from([(attr.to_string(), value.to_string())]))
}

/// Builds a test deployment: the five tenants with fresh tokens, the county sharing
/// `ca.haliburton.gis.` with everyone, and whatever subscriptions the test adds.
pub struct Harness {
    /// The configuration being built.
    pub config: Config,
    /// Plain tokens by tenant.
    pub tokens: BTreeMap<String, String>,
    store: StoreFixture,
}

impl Harness {
    /// A deployment on `backend` with a unique prefix for `test`.
    pub async fn new(test: &str, backend: Backend) -> anyhow::Result<Harness> {
        // `CIVICBUS_TEST_LOG=debug cargo test … -- --nocapture` shows the bus's logs.
        if let Ok(level) = std::env::var("CIVICBUS_TEST_LOG") {
            civicbus_server::telemetry::init(false, &level);
        }
        let store = StoreFixture::new(backend).await?;
        let mut config = Config::default();
        config.api.listen = "127.0.0.1:0".parse().context("listen address")?;
        config.api.request_timeout = Duration::from_secs(10);
        config.broker.url = amqp_url();
        config.broker.prefix = unique_prefix(test);
        config.store.url = store.url.clone();
        config.delivery.retry.initial_backoff = Duration::from_secs(1);
        config.delivery.retry.multiplier = 1.0;
        config.delivery.retry.jitter = 0.0;
        config.delivery.timeout = Duration::from_secs(5);
        let mut tokens = BTreeMap::new();
        for id in TENANTS {
            let (mut t, token) = TenantConfig::with_new_token(id, id);
            if id == "county" {
                t.shares.push(ShareConfig {
                    type_prefix: "ca.haliburton.gis.".into(),
                    with: vec!["*".into()],
                });
            }
            tokens.insert(id.to_string(), token);
            config.tenants.push(t);
        }
        Ok(Harness {
            config,
            tokens,
            store,
        })
    }

    /// Map a RabbitMQ user to a tenant for AMQP ingress.
    pub fn amqp_user(&mut self, tenant: &str, user: &str) {
        if let Some(t) = self.config.tenants.iter_mut().find(|t| t.id == tenant) {
            t.amqp_users.push(user.to_string());
        }
    }

    /// Add a webhook subscription.
    pub fn webhook(
        &mut self,
        tenant: &str,
        id: &str,
        filters: Vec<Filter>,
        url: String,
        secrets: Vec<String>,
        mode: WebhookMode,
    ) {
        self.config.subscriptions.push(SubscriptionConfig {
            id: id.into(),
            tenant: tenant.into(),
            filters,
            concurrency: None,
            webhook: Some(WebhookConfig {
                url,
                secrets,
                secrets_env: vec![],
                mode,
                timeout: None,
            }),
            amqp: None,
            retry: None,
            health: None,
            ordering: Default::default(),
            transforms: Vec::new(),
        });
    }

    /// Add an AMQP subscription.
    pub fn amqp(
        &mut self,
        tenant: &str,
        id: &str,
        filters: Vec<Filter>,
        exchange: &str,
        routing_key: &str,
    ) {
        self.config.subscriptions.push(SubscriptionConfig {
            id: id.into(),
            tenant: tenant.into(),
            filters,
            concurrency: None,
            webhook: None,
            amqp: Some(AmqpSinkConfig {
                exchange: exchange.into(),
                routing_key: Some(routing_key.into()),
            }),
            retry: None,
            health: None,
            ordering: Default::default(),
            transforms: Vec::new(),
        });
    }

    /// The broker prefix of this deployment.
    pub fn prefix(&self) -> &str {
        &self.config.broker.prefix
    }

    /// Check the configuration and start the bus.
    pub async fn start(self) -> anyhow::Result<TestBus> {
        let env = BTreeMap::new();
        let problems = civicbus_server::config::check(&self.config, &env);
        if let Some(p) = problems.iter().find(|p| !p.warning) {
            anyhow::bail!("test configuration is invalid: {p}");
        }
        let resolved = resolve(&self.config, &env);
        let keys = resolved.subscriptions.iter().map(|s| s.key()).collect();
        let admin = Broker::connect(
            &self.config.broker.url,
            Topology::new(self.config.broker.prefix.clone()),
            BrokerOptions::default(),
        )
        .await
        .context("RabbitMQ is required for the end-to-end tests")?;
        let bus = app::start(&self.config, resolved).await?;
        Ok(TestBus {
            base_url: format!("http://{}", bus.api_addr()),
            bus: Some(bus),
            tokens: self.tokens,
            keys,
            admin,
            extra_queues: Vec::new(),
            client: reqwest::Client::new(),
            store_url: self.store.url.clone(),
            broker_url: self.config.broker.url.clone(),
            _store: self.store,
        })
    }
}

/// A running test deployment.
pub struct TestBus {
    /// The bus (taken by `stop`).
    pub bus: Option<RunningBus>,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// Plain tokens by tenant.
    pub tokens: BTreeMap<String, String>,
    /// Subscription keys.
    pub keys: Vec<String>,
    /// A broker connection of the test's own (for test queues and teardown).
    pub admin: Broker,
    extra_queues: Vec<String>,
    /// HTTP client.
    pub client: reqwest::Client,
    /// The store's URL.
    pub store_url: String,
    /// The broker's URL.
    pub broker_url: String,
    _store: StoreFixture,
}

impl TestBus {
    /// The bus's store.
    pub fn store(&self) -> std::sync::Arc<SqlStore> {
        self.bus
            .as_ref()
            .map(|b| b.store())
            .expect("bus is running")
    }

    /// POST a body to `/v1/events` as `tenant`.
    pub async fn post(
        &self,
        tenant: &str,
        content_type: &str,
        body: String,
    ) -> anyhow::Result<(u16, Value)> {
        let resp = self
            .client
            .post(format!("{}/v1/events", self.base_url))
            .bearer_auth(&self.tokens[tenant])
            .header("content-type", content_type)
            .body(body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// POST one structured event as `tenant`.
    pub async fn publish(&self, tenant: &str, event: &Value) -> anyhow::Result<(u16, Value)> {
        self.post(tenant, "application/cloudevents+json", event.to_string())
            .await
    }

    /// A queue of the test's own bound to `exchange` with `key`, consumed.
    pub async fn listen(
        &mut self,
        queue: &str,
        exchange: &str,
        key: &str,
    ) -> anyhow::Result<BrokerConsumer> {
        let name = format!("{}{queue}", self.admin.topology().prefix());
        self.admin.declare_quorum_queue(&name).await?;
        self.admin.bind_queue(&name, exchange, key).await?;
        self.extra_queues.push(name.clone());
        Ok(self.admin.consume(&name, "e2e-listener", 64).await?)
    }

    /// Stop the bus and remove the test's queues and exchanges.
    pub async fn stop(mut self) {
        if let Some(bus) = self.bus.take() {
            bus.stop().await;
        }
        for q in &self.extra_queues {
            let _ = self.admin.delete_queue(q).await;
        }
        let _ = self.admin.teardown(&self.keys).await;
        let _ = self.admin.close().await;
    }
}

impl Drop for TestBus {
    /// A test that panicked before `stop` still removes its queues and exchanges (on a
    /// thread of its own: Drop cannot await).
    fn drop(&mut self) {
        if self.bus.is_none() {
            return;
        }
        let url = self.broker_url.clone();
        let topology = self.admin.topology().clone();
        let keys = self.keys.clone();
        let extra = std::mem::take(&mut self.extra_queues);
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(b) = Broker::connect(&url, topology, BrokerOptions::default()).await {
                    for q in &extra {
                        let _ = b.delete_queue(q).await;
                    }
                    let _ = b.teardown(&keys).await;
                    let _ = b.close().await;
                }
            });
        })
        .join();
    }
}

/// A BLDS permit event from `tenant`'s permitting system, of type
/// `ca.haliburton.permitting.permit.<action>`; its data is valid against the catalogue's
/// schema of every permit event type (issued, closed, fee-assessed, …).
pub fn permit_event(tenant: &str, id: &str, action: &str, permit: &str) -> Value {
    let status = match action {
        "closed" => "Permit Finaled",
        "application-submitted" => "Application Accepted",
        "fee-assessed" => "Fees/Payment",
        _ => "Permit Issued",
    };
    json!({
        "specversion": "1.0",
        "id": id,
        "source": format!("/{tenant}/permitting"),
        "type": format!("ca.haliburton.permitting.permit.{action}"),
        "subject": permit,
        "time": "2026-11-25T14:03:00Z",
        "datacontenttype": "application/json",
        "data": {
            "PermitNum": permit,
            "Jurisdiction": tenant,
            "Description": "Single-family dwelling, new construction",
            "AppliedDate": "2026-10-02",
            "IssuedDate": "2026-11-25",
            "CompletedDate": "2026-11-25",
            "StatusCurrentMapped": status,
            "StatusDate": "2026-11-25",
            "OriginalAddress1": "1043 Kennisis Lake Rd",
            "OriginalCity": "Haliburton",
            "PermitTypeMapped": "Building",
            "Fee": "2150.00",
            "FeeAssessedDate": "2026-11-20",
            "PIN": "4624010001023000000"
        }
    })
}

/// A county GIS address event (GeoJSON feature).
pub fn address_event(id: &str, arn: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "/county/gis",
        "type": "ca.haliburton.gis.address.updated",
        "subject": arn,
        "datacontenttype": "application/geo+json",
        "data": {
            "type": "Feature",
            "geometry": { "type": "Point", "coordinates": [-78.6339, 44.9551] },
            "id": format!("ADR-{id}"),
            "properties": {
                "civicNumber": 7, "street": "Bobcaygeon Rd", "municipality": "minden-hills",
                "postalCode": "K0M 2K0", "arn": arn, "status": "active"
            }
        }
    })
}

/// Create (or reset) a RabbitMQ user with full permissions on `/`, via `rabbitmqctl`.
/// Returns its password.
pub fn rabbitmq_user(user: &str) -> anyhow::Result<String> {
    let password = uuid::Uuid::new_v4().simple().to_string();
    let run = |args: &[&str]| -> anyhow::Result<std::process::Output> {
        std::process::Command::new("rabbitmqctl")
            .args(args)
            .output()
            .context("rabbitmqctl is required to create test users")
    };
    let added = run(&["add_user", user, &password])?;
    if !added.status.success() {
        let changed = run(&["change_password", user, &password])?;
        anyhow::ensure!(
            changed.status.success(),
            "rabbitmqctl could not create user {user}: {}",
            String::from_utf8_lossy(&added.stderr)
        );
    }
    let perms = run(&["set_permissions", "-p", "/", user, ".*", ".*", ".*"])?;
    anyhow::ensure!(
        perms.status.success(),
        "rabbitmqctl set_permissions failed: {}",
        String::from_utf8_lossy(&perms.stderr)
    );
    Ok(password)
}

/// Delete a RabbitMQ user (best effort).
pub fn delete_rabbitmq_user(user: &str) {
    let _ = std::process::Command::new("rabbitmqctl")
        .args(["delete_user", user])
        .output();
}

/// Wait until `cond` holds or `timeout` passes; returns whether it held.
pub async fn eventually<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The repository's root (the `tests` crate's parent).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default()
}

/// Run a build script once per test process; its result (the directory it fills).
fn built(
    cell: &'static std::sync::OnceLock<Result<std::path::PathBuf, String>>,
    script: &str,
    args: &[&str],
    out: std::path::PathBuf,
) -> anyhow::Result<std::path::PathBuf> {
    cell.get_or_init(|| {
        let status = std::process::Command::new("bash")
            .arg(repo_root().join(script))
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
            .map_err(|e| format!("cannot run {script}: {e}"))?;
        if status.success() {
            Ok(out)
        } else {
            Err(format!(
                "{script} failed ({status}); it builds WebAssembly plugins for wasm32-wasip2 (rustup target add wasm32-wasip2)"
            ))
        }
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// The example plugins (`transforms/examples`), built as components: the directory of
/// `<name>.wasm` files.
pub fn example_plugins() -> anyhow::Result<std::path::PathBuf> {
    static CELL: std::sync::OnceLock<Result<std::path::PathBuf, String>> =
        std::sync::OnceLock::new();
    built(
        &CELL,
        "transforms/examples/build.sh",
        &[],
        repo_root().join("transforms/examples/target/plugins"),
    )
}

/// The transform host's test guests (runaway loops, memory hogs, …), built as
/// components: the directory of `<name>.wasm` files.
pub fn guest_plugins() -> anyhow::Result<std::path::PathBuf> {
    static CELL: std::sync::OnceLock<Result<std::path::PathBuf, String>> =
        std::sync::OnceLock::new();
    let out = repo_root().join("target/transform-guests");
    let arg = out.to_string_lossy().into_owned();
    built(&CELL, "transforms/host/tests/guests/build.sh", &[&arg], out)
}
