//! The configuration file: one TOML document, every key documented, `CIVICBUS_*` overrides.
//!
//! Loading goes in three steps so that `civicbus config check` can report *every* error
//! with its key path: parse the TOML, apply environment overrides, then deserialise each
//! section (and each element of `tenants`/`subscriptions`) on its own, and finally check
//! the meaning (names, references, secrets, filters) of what deserialised.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use civicbus_core::subscription::{
    AmqpSinkSpec, HttpMode, Ordering, SinkSpec, Subscription, WebhookSpec,
};
use civicbus_core::tenant::{Audience, SharingRule, validate_name};
use civicbus_core::{Filter, RetryPolicy};
use civicbus_router::HealthPolicy;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_path_to_error::Segment;

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "CIVICBUS_";

/// Sections whose scalar keys may be overridden by `CIVICBUS_<SECTION>_<KEY>`.
pub const OVERRIDABLE_SECTIONS: [&str; 7] = [
    "api",
    "broker",
    "store",
    "limits",
    "delivery",
    "schemas",
    "transforms",
];

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// HTTP API.
    #[serde(default)]
    pub api: ApiConfig,
    /// RabbitMQ.
    #[serde(default)]
    pub broker: BrokerConfig,
    /// SQL store.
    #[serde(default)]
    pub store: StoreConfig,
    /// Input limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Delivery defaults.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// The schema catalogue and its enforcement.
    #[serde(default)]
    pub schemas: SchemasConfig,
    /// The WebAssembly sandbox transform plugins run in.
    #[serde(default)]
    pub transforms: TransformsConfig,
    /// Transform plugins subscriptions may use.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    /// Tenants (municipalities).
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    /// Subscriptions.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionConfig>,
}

/// `[schemas]`: the JSON Schema catalogue every event's data is checked against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchemasConfig {
    /// Check events against the catalogue at all.
    pub enabled: bool,
    /// Load the catalogue shipped with civicbus.
    pub builtin: bool,
    /// More catalogue directories (every `*.json` below them, except `examples/`).
    pub dirs: Vec<PathBuf>,
    /// What to do with events of types the catalogue does not know.
    pub unknown_types: UnknownTypes,
    /// How often to look for changed catalogue files (`0s` = only on SIGHUP).
    #[serde(with = "humantime_serde")]
    pub watch_interval: Duration,
}

impl Default for SchemasConfig {
    fn default() -> Self {
        SchemasConfig {
            enabled: true,
            builtin: true,
            dirs: Vec::new(),
            unknown_types: UnknownTypes::Reject,
            watch_interval: Duration::from_secs(2),
        }
    }
}

/// `unknown_types`: events of types without a schema.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownTypes {
    /// Refuse them (422 on HTTP, quarantine on AMQP), naming the closest known types.
    #[default]
    Reject,
    /// Accept them without validation.
    AcceptUnvalidated,
}

/// `[transforms]`: the sandbox every transform plugin runs in. Limits apply to each call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransformsConfig {
    /// Where compiled plugins are cached (default: the system cache directory).
    pub cache_dir: Option<PathBuf>,
    /// Fuel (roughly, wasm instructions) one call may use; 0 turns fuel metering off.
    pub fuel: u64,
    /// Wall-clock time one call may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Linear memory one instance may grow to (bytes).
    pub memory_bytes: usize,
    /// Wasm stack (bytes).
    pub stack_bytes: usize,
    /// Most events one call may return.
    pub max_output_events: usize,
    /// Most bytes of data all the events of one call may carry.
    pub max_output_bytes: usize,
    /// Calls an instance serves before it is replaced by a fresh one.
    pub max_calls_per_instance: u64,
    /// Instance slots of the pooling allocator (all plugins together).
    pub instances: u32,
    /// How often to look for changed plugin files (`0s` = never).
    #[serde(with = "humantime_serde")]
    pub watch_interval: Duration,
}

impl Default for TransformsConfig {
    fn default() -> Self {
        let host = civicbus_transform_host::HostConfig::default();
        let l = &host.limits;
        TransformsConfig {
            cache_dir: None,
            fuel: l.fuel.unwrap_or(0),
            timeout: l.timeout,
            memory_bytes: l.memory_bytes,
            stack_bytes: l.stack_bytes,
            max_output_events: l.max_output_events,
            max_output_bytes: l.max_output_bytes,
            max_calls_per_instance: host.max_calls_per_instance,
            instances: host.instances,
            watch_interval: Duration::from_secs(2),
        }
    }
}

impl TransformsConfig {
    /// The host configuration these settings describe.
    pub fn host_config(&self) -> civicbus_transform_host::HostConfig {
        let mut host = civicbus_transform_host::HostConfig {
            cache_dir: self.cache_dir.clone().or_else(default_cache_dir),
            max_calls_per_instance: self.max_calls_per_instance,
            instances: self.instances,
            ..civicbus_transform_host::HostConfig::default()
        };
        host.limits.fuel = (self.fuel > 0).then_some(self.fuel);
        host.limits.timeout = self.timeout;
        host.limits.memory_bytes = self.memory_bytes;
        host.limits.stack_bytes = self.stack_bytes;
        host.limits.max_output_events = self.max_output_events;
        host.limits.max_output_bytes = self.max_output_bytes;
        host
    }
}

/// `$XDG_CACHE_HOME/civicbus/wasm`, else `$HOME/.cache/civicbus/wasm`.
fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("civicbus").join("wasm"))
}

/// `[[plugins]]`: a transform plugin (a WebAssembly component) subscriptions may name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Name subscriptions use in `transforms`.
    pub name: String,
    /// The `.wasm` component file.
    pub path: PathBuf,
    /// Expected digest (`sha256:<hex>`, as `civicbus transform build` prints); a file
    /// with another digest is refused.
    #[serde(default)]
    pub digest: Option<String>,
    /// Static configuration handed to the plugin's `init` (as JSON).
    #[serde(default)]
    pub config: Option<toml::Table>,
}

impl PluginConfig {
    /// The plugin's configuration as JSON text (`{}` when none).
    pub fn config_json(&self) -> String {
        self.config
            .as_ref()
            .and_then(|t| serde_json::to_string(t).ok())
            .unwrap_or_else(|| "{}".to_string())
    }
}

/// `[api]`: the HTTP API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest request body accepted, checked before parsing (bytes).
    pub max_body_bytes: usize,
    /// Time allowed for one request, including the broker's confirm.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Seconds sent in `Retry-After` when the broker is unreachable.
    pub retry_after_seconds: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            retry_after_seconds: 5,
        }
    }
}

/// `[broker]`: RabbitMQ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// AMQP URL.
    pub url: String,
    /// Prefix of every exchange and queue name (isolates deployments sharing a vhost).
    pub prefix: String,
    /// Unacknowledged messages a router consumer holds at most.
    pub prefetch: u16,
    /// Publishes awaiting confirmation at most, per publishing channel.
    pub confirm_window: u16,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            prefix: String::new(),
            prefetch: 64,
            confirm_window: 512,
        }
    }
}

/// `[store]`: the SQL store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://path` or `postgres://user@host/db`.
    pub url: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "sqlite://civicbus.db".into(),
        }
    }
}

/// `[limits]`: input limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Deepest JSON nesting accepted.
    pub max_json_depth: usize,
    /// Most events in one batch.
    pub max_batch_events: usize,
    /// Largest single event, structured-mode encoded (bytes).
    pub max_event_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_json_depth: 32,
            max_batch_events: 100,
            max_event_bytes: 256 * 1024,
        }
    }
}

/// `[delivery]`: defaults for every subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Deliveries in flight per subscription unless the subscription says otherwise.
    pub concurrency: u16,
    /// Webhook request timeout unless the subscription says otherwise.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Retry policy of every subscription unless the subscription overrides it.
    pub retry: RetryConfig,
    /// Endpoint health (circuit breaker) of every subscription unless the subscription
    /// overrides it.
    pub health: HealthConfig,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            concurrency: 8,
            timeout: Duration::from_secs(10),
            retry: RetryConfig::default(),
            health: HealthConfig::default(),
        }
    }
}

/// `[delivery.retry]`: when failed deliveries are retried, and when they are dead-lettered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Most attempts in all, the first included.
    pub max_attempts: u32,
    /// Longest time from acceptance of the event to the last attempt.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Wait after the first failed attempt.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Longest single wait.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Growth of the wait per attempt.
    pub multiplier: f64,
    /// Fraction of each wait randomised either way.
    pub jitter: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig::from(RetryPolicy::default())
    }
}

impl From<RetryPolicy> for RetryConfig {
    fn from(p: RetryPolicy) -> Self {
        RetryConfig {
            max_attempts: p.max_attempts,
            max_age: p.max_age,
            initial_backoff: p.initial_backoff,
            max_backoff: p.max_backoff,
            multiplier: p.multiplier,
            jitter: p.jitter,
        }
    }
}

impl RetryConfig {
    /// The policy, with `over` (a subscription's `retry` table) applied on top.
    pub fn policy(&self, over: Option<&RetryOverride>) -> RetryPolicy {
        let o = over.cloned().unwrap_or_default();
        RetryPolicy {
            max_attempts: o.max_attempts.unwrap_or(self.max_attempts),
            max_age: o.max_age.unwrap_or(self.max_age),
            initial_backoff: o.initial_backoff.unwrap_or(self.initial_backoff),
            max_backoff: o.max_backoff.unwrap_or(self.max_backoff),
            multiplier: o.multiplier.unwrap_or(self.multiplier),
            jitter: o.jitter.unwrap_or(self.jitter),
        }
    }
}

/// `[subscriptions.retry]`: any key of `[delivery.retry]`, for one subscription.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryOverride {
    /// Most attempts in all.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Longest time from acceptance to the last attempt.
    #[serde(default, with = "humantime_serde")]
    pub max_age: Option<Duration>,
    /// Wait after the first failed attempt.
    #[serde(default, with = "humantime_serde")]
    pub initial_backoff: Option<Duration>,
    /// Longest single wait.
    #[serde(default, with = "humantime_serde")]
    pub max_backoff: Option<Duration>,
    /// Growth of the wait per attempt.
    #[serde(default)]
    pub multiplier: Option<f64>,
    /// Fraction of each wait randomised either way.
    #[serde(default)]
    pub jitter: Option<f64>,
}

/// `[delivery.health]`: when a failing endpoint's circuit opens, and for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Consecutive retryable failures that open the circuit (0 = never).
    pub failure_threshold: u32,
    /// First open period.
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
    /// Longest open period (the period doubles while probes fail).
    #[serde(with = "humantime_serde")]
    pub max_open_for: Duration,
    /// Disable the endpoint after this long of continuous failure (`0s` = never).
    #[serde(with = "humantime_serde")]
    pub disable_after: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        let p = HealthPolicy::default();
        HealthConfig {
            failure_threshold: p.failure_threshold,
            open_for: p.open_for,
            max_open_for: p.max_open_for,
            disable_after: p.disable_after,
        }
    }
}

impl HealthConfig {
    /// The policy, with `over` (a subscription's `health` table) applied on top.
    pub fn policy(&self, over: Option<&HealthOverride>) -> HealthPolicy {
        let o = over.cloned().unwrap_or_default();
        HealthPolicy {
            failure_threshold: o.failure_threshold.unwrap_or(self.failure_threshold),
            open_for: o.open_for.unwrap_or(self.open_for),
            max_open_for: o.max_open_for.unwrap_or(self.max_open_for),
            disable_after: o.disable_after.unwrap_or(self.disable_after),
        }
    }
}

/// `[subscriptions.health]`: any key of `[delivery.health]`, for one subscription.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthOverride {
    /// Consecutive retryable failures that open the circuit (0 = never).
    #[serde(default)]
    pub failure_threshold: Option<u32>,
    /// First open period.
    #[serde(default, with = "humantime_serde")]
    pub open_for: Option<Duration>,
    /// Longest open period.
    #[serde(default, with = "humantime_serde")]
    pub max_open_for: Option<Duration>,
    /// Disable the endpoint after this long of continuous failure (`0s` = never).
    #[serde(default, with = "humantime_serde")]
    pub disable_after: Option<Duration>,
}

/// `[[tenants]]`: one municipality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Tenant id (`county`, `dysart`, …).
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// RabbitMQ users whose messages on the ingress exchange belong to this tenant.
    #[serde(default)]
    pub amqp_users: Vec<String>,
    /// API tokens.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Event types this tenant shares with others.
    #[serde(default)]
    pub shares: Vec<ShareConfig>,
    /// What to do with this tenant's events of types the catalogue does not know
    /// (default `schemas.unknown_types`).
    #[serde(default)]
    pub unknown_types: Option<UnknownTypes>,
}

/// `[[tenants.tokens]]`: one API token, by hash or from the environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Name of the credential (shown in the audit log as the actor).
    pub name: String,
    /// Hex SHA-256 of the token (`civicbus token generate` prints both).
    #[serde(default)]
    pub sha256: Option<String>,
    /// Name of an environment variable holding the token itself.
    #[serde(default)]
    pub env: Option<String>,
}

/// `[[tenants.shares]]`: share events by type prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareConfig {
    /// Types starting with this are shared.
    pub type_prefix: String,
    /// Tenant ids, or `["*"]` for every tenant.
    pub with: Vec<String>,
}

/// `[[subscriptions]]`: which events go where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    /// Name, unique within the tenant.
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// CloudEvents Subscriptions API filters, all of which must match.
    #[serde(default)]
    pub filters: Vec<Filter>,
    /// Deliveries in flight at once (default `delivery.concurrency`).
    #[serde(default)]
    pub concurrency: Option<u16>,
    /// Deliver over HTTP.
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    /// Deliver to a RabbitMQ exchange.
    #[serde(default)]
    pub amqp: Option<AmqpSinkConfig>,
    /// Retry policy overrides (default `[delivery.retry]`).
    #[serde(default)]
    pub retry: Option<RetryOverride>,
    /// Endpoint health overrides (default `[delivery.health]`).
    #[serde(default)]
    pub health: Option<HealthOverride>,
    /// `unordered` (default) or `per-subject`.
    #[serde(default)]
    pub ordering: OrderingConfig,
    /// Transform chain: names of `[[plugins]]` (`name`, or `name@sha256:<hex>` to pin
    /// the digest) or paths of `.wasm` components (no configuration), applied in order to
    /// each event before delivery.
    #[serde(default)]
    pub transforms: Vec<String>,
}

/// `subscriptions[].ordering`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrderingConfig {
    /// No order between deliveries.
    #[default]
    Unordered,
    /// Events with the same `partitionkey` (else `subject`) in acceptance order.
    PerSubject,
}

/// `[subscriptions.webhook]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Endpoint URL (http or https).
    pub url: String,
    /// Signing secrets, each adding one signature: `whsec_…` (HMAC-SHA256, `v1`) or
    /// `whsk_…` (ed25519 signing key, `v1a`); several during rotation.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Names of environment variables holding signing secrets (`whsec_…` or `whsk_…`).
    #[serde(default)]
    pub secrets_env: Vec<String>,
    /// `binary` (default) or `structured`.
    #[serde(default)]
    pub mode: WebhookMode,
    /// Request timeout (default `delivery.timeout`).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

/// CloudEvents HTTP binding mode for a webhook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookMode {
    /// Attributes in `ce-*` headers, body = data.
    #[default]
    Binary,
    /// `application/cloudevents+json` body.
    Structured,
}

/// `[subscriptions.amqp]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSinkConfig {
    /// Exchange to publish to (must exist).
    pub exchange: String,
    /// Routing key (default: the event type).
    #[serde(default)]
    pub routing_key: Option<String>,
}

/// One problem in a configuration, with the key path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Key path, e.g. `subscriptions[2].webhook.url`.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
    /// Warnings do not stop `serve`.
    pub warning: bool,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = if self.warning { "warning" } else { "error" };
        if self.path.is_empty() {
            write!(f, "{level}: {}", self.message)
        } else {
            write!(f, "{level}: {}: {}", self.path, self.message)
        }
    }
}

/// The result of loading: the config when it deserialised, and every problem found.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The configuration (`None` if any part of it could not be read).
    pub config: Option<Config>,
    /// Errors and warnings: first those found reading each section (in key order), then
    /// those found checking what the sections mean.
    pub problems: Vec<ConfigProblem>,
}

impl Loaded {
    /// Whether any problem is an error.
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| !p.warning)
    }
}

fn problem(path: impl Into<String>, message: impl Into<String>) -> ConfigProblem {
    ConfigProblem {
        path: path.into(),
        message: message.into(),
        warning: false,
    }
}

fn warning(path: impl Into<String>, message: impl Into<String>) -> ConfigProblem {
    ConfigProblem {
        path: path.into(),
        message: message.into(),
        warning: true,
    }
}

/// Load a configuration file, apply `CIVICBUS_*` overrides from `env`, and check it.
pub fn load_file(path: &Path, env: &BTreeMap<String, String>) -> Loaded {
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&text, env),
        Err(e) => Loaded {
            config: None,
            problems: vec![problem(
                "",
                format!(
                    "cannot read {}: {e}; write one with `civicbus config example > {}`",
                    path.display(),
                    path.display()
                ),
            )],
        },
    }
}

/// Load a configuration from TOML text, apply overrides from `env`, and check it.
///
/// Every problem is reported, not just the first: a key that cannot be read is reported
/// and set aside, and the rest of its section is still read and checked.
pub fn load_str(text: &str, env: &BTreeMap<String, String>) -> Loaded {
    let mut root: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            return Loaded {
                config: None,
                problems: vec![problem("", format!("not valid TOML: {e}"))],
            };
        }
    };
    let mut reader = Reader::default();
    let from_env = apply_env_overrides(&mut root, env, &mut reader.problems);

    let mut config = Config::default();
    let mut index = DocIndex::default();
    for (key, value) in root {
        match key.as_str() {
            "api" => reader.section(value, &key, &mut config.api),
            "broker" => reader.section(value, &key, &mut config.broker),
            "store" => reader.section(value, &key, &mut config.store),
            "limits" => reader.section(value, &key, &mut config.limits),
            "delivery" => reader.section(value, &key, &mut config.delivery),
            "schemas" => reader.section(value, &key, &mut config.schemas),
            "transforms" => reader.section(value, &key, &mut config.transforms),
            "plugins" => {
                let mut ignored = Vec::new();
                reader.array(value, &key, &mut config.plugins, &mut ignored);
            }
            "tenants" => {
                index.declared_tenants = declared_ids(&value);
                reader.array(value, &key, &mut config.tenants, &mut index.tenants);
            }
            "subscriptions" => reader.array(
                value,
                &key,
                &mut config.subscriptions,
                &mut index.subscriptions,
            ),
            other => {
                reader.failed = true;
                reader.problems.push(problem(
                    other,
                    "unknown section; expected one of api, broker, store, limits, delivery, schemas, transforms, plugins, tenants, subscriptions",
                ));
            }
        }
    }
    let meaning = check_indexed(&config, env, &index);
    let Reader {
        mut problems,
        removed,
        failed,
    } = reader;
    problems.extend(
        meaning
            .into_iter()
            .filter(|p| !follows_from_removal(p, &removed)),
    );
    for p in &mut problems {
        if let Some(var) = from_env.get(&p.path) {
            p.message.push_str(&format!(
                " (the value comes from the environment variable {var})"
            ));
        }
    }
    Loaded {
        config: (!failed).then_some(config),
        problems,
    }
}

/// Most problems reported for one section or array element before giving up on it.
const MAX_PROBLEMS_PER_VALUE: usize = 64;

/// Where each deserialised tenant and subscription sits in the document (an element that
/// could not be read is left out of the config, so positions differ), and every tenant id
/// the document declares, read or not.
#[derive(Debug, Default)]
struct DocIndex {
    tenants: Vec<usize>,
    subscriptions: Vec<usize>,
    declared_tenants: HashSet<String>,
}

impl DocIndex {
    fn tenant(&self, i: usize) -> usize {
        self.tenants.get(i).copied().unwrap_or(i)
    }

    fn subscription(&self, i: usize) -> usize {
        self.subscriptions.get(i).copied().unwrap_or(i)
    }
}

/// The `id` strings of a `tenants` array, whether or not the rest of each tenant reads.
fn declared_ids(value: &toml::Value) -> HashSet<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("id")?.as_str().map(str::to_string))
        .collect()
}

/// Deserialises sections, collecting every problem.
#[derive(Debug, Default)]
struct Reader {
    problems: Vec<ConfigProblem>,
    /// Key paths that could not be read and were set aside so the rest could be.
    removed: Vec<String>,
    /// Whether anything could not be read.
    failed: bool,
}

impl Reader {
    fn section<T: DeserializeOwned>(&mut self, value: toml::Value, path: &str, slot: &mut T) {
        if let Some(v) = self.read(value, path) {
            *slot = v;
        }
    }

    fn array<T: DeserializeOwned>(
        &mut self,
        value: toml::Value,
        path: &str,
        slot: &mut Vec<T>,
        positions: &mut Vec<usize>,
    ) {
        let toml::Value::Array(items) = value else {
            self.failed = true;
            self.problems.push(problem(
                path,
                format!("must be an array of tables: write [[{path}]] blocks"),
            ));
            return;
        };
        for (i, item) in items.into_iter().enumerate() {
            if let Some(v) = self.read(item, &format!("{path}[{i}]")) {
                slot.push(v);
                positions.push(i);
            }
        }
    }

    /// Deserialise `value`, found at `path`. When a key is at fault, report it, set it
    /// aside and read the rest again, so one pass reports every bad key.
    fn read<T: DeserializeOwned>(&mut self, mut value: toml::Value, path: &str) -> Option<T> {
        // (table path, key) of the key set aside last.
        let mut set_aside: Option<(String, String)> = None;
        for _ in 0..MAX_PROBLEMS_PER_VALUE {
            let err = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
                Ok(v) => return Some(v),
                Err(e) => e,
            };
            self.failed = true;
            let at = join_path(path, &err.path().to_string());
            let message = err.inner().message().trim().to_string();
            // Setting aside a required key makes it missing: the problem is already told.
            if let Some((table, key)) = &set_aside
                && *table == at
                && message == format!("missing field `{key}`")
            {
                return None;
            }
            self.problems.push(problem(at, message));
            let segments: Vec<&Segment> = err.path().iter().collect();
            let (table, key) = remove_key(&mut value, &segments)?;
            let table = join_path(path, &table);
            self.removed.push(join_path(&table, &key));
            set_aside = Some((table, key));
        }
        None
    }
}

/// `base` followed by the relative path `rel` (`.` or empty for `base` itself).
fn join_path(base: &str, rel: &str) -> String {
    if rel.is_empty() || rel == "." {
        base.to_string()
    } else if base.is_empty() {
        rel.to_string()
    } else if rel.starts_with('[') {
        format!("{base}{rel}")
    } else {
        format!("{base}.{rel}")
    }
}

/// Remove the innermost table key named by `segments` from `value`. Returns the path of
/// the table it was in (relative to `value`) and the key; `None` if no key can be removed.
fn remove_key(value: &mut toml::Value, segments: &[&Segment]) -> Option<(String, String)> {
    let last = segments
        .iter()
        .rposition(|s| matches!(s, Segment::Map { .. }))?;
    let Segment::Map { key } = segments[last] else {
        return None;
    };
    let mut here = value;
    let mut table = String::new();
    for segment in &segments[..last] {
        here = match segment {
            Segment::Map { key } | Segment::Enum { variant: key } => {
                table = join_path(&table, key);
                here.as_table_mut()?.get_mut(key)?
            }
            Segment::Seq { index } => {
                table = format!("{table}[{index}]");
                here.as_array_mut()?.get_mut(*index)?
            }
            _ => return None,
        };
    }
    here.as_table_mut()?.remove(key)?;
    Some((table, key.clone()))
}

/// Whether a problem of meaning only follows from a key that was set aside because it
/// could not be read (e.g. "set one of `sha256` or `env`" after a `sha256` that is not a
/// string): the reading problem already says what to fix.
fn follows_from_removal(p: &ConfigProblem, removed: &[String]) -> bool {
    removed.iter().any(|r| {
        p.path == *r
            || p.path
                .strip_prefix(r.as_str())
                .is_some_and(|rest| rest.starts_with(['.', '[']))
            || r.rsplit_once('.').is_some_and(|(table, key)| {
                table == p.path && ["sha256", "env", "webhook", "amqp"].contains(&key)
            })
    })
}

/// Apply `CIVICBUS_<SECTION>_<KEY>=value` overrides (e.g. `CIVICBUS_BROKER_URL`,
/// `CIVICBUS_API_LISTEN`, `CIVICBUS_LIMITS_MAX_JSON_DEPTH`) to the sections `api`,
/// `broker`, `store`, `limits` and `delivery`; other `CIVICBUS_*` variables are left
/// alone. A value is taken as the type the key's default has (so `CIVICBUS_BROKER_PREFIX=2024`
/// stays a string); one that does not parse as that type stays a string and is reported
/// with the key. Returns the key paths set, each with the variable that set it.
pub fn apply_env_overrides(
    root: &mut toml::Table,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<ConfigProblem>,
) -> BTreeMap<String, String> {
    let defaults = toml::Table::try_from(Config::default()).unwrap_or_default();
    let mut applied = BTreeMap::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let lower = rest.to_ascii_lowercase();
        let Some((section, key)) = lower.split_once('_') else {
            continue;
        };
        if !OVERRIDABLE_SECTIONS.contains(&section) || key.is_empty() {
            continue;
        }
        let table = root
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(table) = table.as_table_mut() else {
            problems.push(problem(
                section,
                format!("{name} overrides a key of [{section}], but `{section}` is not a table"),
            ));
            continue;
        };
        let default = defaults.get(section).and_then(|s| s.get(key));
        table.insert(key.to_string(), env_value(value, default));
        applied.insert(format!("{section}.{key}"), name.clone());
    }
    applied
}

/// An environment variable's value as the TOML type of `default`.
fn env_value(value: &str, default: Option<&toml::Value>) -> toml::Value {
    let string = || toml::Value::String(value.to_string());
    match default {
        Some(toml::Value::Integer(_)) => value
            .trim()
            .parse::<i64>()
            .map_or_else(|_| string(), toml::Value::Integer),
        Some(toml::Value::Boolean(_)) => value
            .trim()
            .parse::<bool>()
            .map_or_else(|_| string(), toml::Value::Boolean),
        Some(_) => string(),
        // Not a key (reported as unknown): take it as what it looks like.
        None => {
            if let Ok(i) = value.parse::<i64>() {
                toml::Value::Integer(i)
            } else if let Ok(b) = value.parse::<bool>() {
                toml::Value::Boolean(b)
            } else {
                string()
            }
        }
    }
}

/// Check the meaning of a deserialised configuration.
pub fn check(config: &Config, env: &BTreeMap<String, String>) -> Vec<ConfigProblem> {
    let index = DocIndex {
        tenants: (0..config.tenants.len()).collect(),
        subscriptions: (0..config.subscriptions.len()).collect(),
        declared_tenants: config.tenants.iter().map(|t| t.id.clone()).collect(),
    };
    check_indexed(config, env, &index)
}

/// [`check`], naming tenants and subscriptions by their place in the document.
fn check_indexed(
    config: &Config,
    env: &BTreeMap<String, String>,
    index: &DocIndex,
) -> Vec<ConfigProblem> {
    let mut out = Vec::new();
    if !(config.store.url.starts_with("sqlite:")
        || config.store.url.starts_with("postgres://")
        || config.store.url.starts_with("postgresql://"))
    {
        out.push(problem(
            "store.url",
            "must start with sqlite:// or postgres:// (e.g. sqlite://civicbus.db)",
        ));
    }
    if !(config.broker.url.starts_with("amqp://") || config.broker.url.starts_with("amqps://")) {
        out.push(problem(
            "broker.url",
            "must be an amqp:// or amqps:// URL, e.g. amqp://guest:guest@127.0.0.1:5672/%2f",
        ));
    }
    if !config.broker.prefix.is_empty()
        && !config
            .broker
            .prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        out.push(problem(
            "broker.prefix",
            "use only letters, digits, '-', '_' and '.'",
        ));
    }
    for (path, v) in [
        ("broker.prefetch", u64::from(config.broker.prefetch)),
        (
            "broker.confirm_window",
            u64::from(config.broker.confirm_window),
        ),
        ("limits.max_json_depth", config.limits.max_json_depth as u64),
        (
            "limits.max_batch_events",
            config.limits.max_batch_events as u64,
        ),
        (
            "limits.max_event_bytes",
            config.limits.max_event_bytes as u64,
        ),
        ("api.max_body_bytes", config.api.max_body_bytes as u64),
        (
            "delivery.concurrency",
            u64::from(config.delivery.concurrency),
        ),
    ] {
        if v == 0 {
            out.push(problem(path, "must be greater than 0"));
        }
    }
    for (path, d) in [
        ("api.request_timeout", config.api.request_timeout),
        ("delivery.timeout", config.delivery.timeout),
    ] {
        if d.is_zero() {
            out.push(problem(path, "must be longer than 0s, e.g. \"10s\""));
        }
    }

    for (field, m) in config.delivery.retry.policy(None).problems() {
        out.push(problem(format!("delivery.retry.{field}"), m));
    }
    for (field, m) in config.delivery.health.policy(None).problems() {
        out.push(problem(format!("delivery.health.{field}"), m));
    }

    let mut tenant_ids = HashSet::new();
    let is_tenant = |id: &str| index.declared_tenants.contains(id);
    let mut amqp_users: BTreeMap<&str, &str> = BTreeMap::new();
    let mut token_hashes = HashSet::new();
    for (i, t) in config.tenants.iter().enumerate() {
        let p = format!("tenants[{}]", index.tenant(i));
        if let Err(m) = validate_name("tenant id", &t.id) {
            out.push(problem(format!("{p}.id"), m));
        }
        if !tenant_ids.insert(t.id.as_str()) {
            out.push(problem(
                format!("{p}.id"),
                format!("tenant `{}` is defined twice", t.id),
            ));
        }
        for (j, u) in t.amqp_users.iter().enumerate() {
            if let Some(other) = amqp_users.insert(u, &t.id) {
                out.push(problem(
                    format!("{p}.amqp_users[{j}]"),
                    format!("AMQP user `{u}` already belongs to tenant `{other}`; a user maps to one tenant"),
                ));
            }
        }
        for (j, tok) in t.tokens.iter().enumerate() {
            let tp = format!("{p}.tokens[{j}]");
            if tok.name.trim().is_empty() {
                out.push(problem(format!("{tp}.name"), "give the credential a name"));
            }
            match (&tok.sha256, &tok.env) {
                (Some(_), Some(_)) | (None, None) => out.push(problem(
                    tp.clone(),
                    "set exactly one of `sha256` (hash of the token) or `env` (variable holding it)",
                )),
                (Some(h), None) => {
                    if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                        out.push(problem(
                            format!("{tp}.sha256"),
                            "must be 64 hex digits: the SHA-256 of the token (`civicbus token generate` prints it)",
                        ));
                    } else if !token_hashes.insert(h.to_ascii_lowercase()) {
                        out.push(problem(
                            format!("{tp}.sha256"),
                            "the same token is configured twice; give each credential its own token",
                        ));
                    }
                }
                (None, Some(var)) => match env.get(var).filter(|v| !v.is_empty()) {
                    None => out.push(warning(
                        format!("{tp}.env"),
                        format!("environment variable {var} is not set; this token will not work until it is"),
                    )),
                    // Two credentials with one token would authenticate as only one of them.
                    Some(token) => {
                        if !token_hashes.insert(hex::encode(token_hash(token))) {
                            out.push(problem(
                                format!("{tp}.env"),
                                format!("{var} holds the same token as another credential; give each credential its own token"),
                            ));
                        }
                    }
                },
            }
        }
    }
    for (i, t) in config.tenants.iter().enumerate() {
        for (j, s) in t.shares.iter().enumerate() {
            let sp = format!("tenants[{}].shares[{j}]", index.tenant(i));
            let prefix = &s.type_prefix;
            if prefix.is_empty() {
                out.push(problem(
                    format!("{sp}.type_prefix"),
                    "must not be empty: name the shared types, e.g. \"ca.haliburton.gis.\"",
                ));
            } else if !prefix.ends_with('.') {
                out.push(warning(
                    format!("{sp}.type_prefix"),
                    format!(
                        "`{prefix}` does not end with '.', so it also shares every type that merely starts with it, such as `{prefix}archive.…`; write `{prefix}.` to share one namespace"
                    ),
                ));
            }
            if s.with.is_empty() {
                out.push(problem(
                    format!("{sp}.with"),
                    "name tenants, or [\"*\"] for all",
                ));
            }
            for (k, w) in s.with.iter().enumerate() {
                if w != "*" && !is_tenant(w) {
                    out.push(problem(
                        format!("{sp}.with[{k}]"),
                        format!("no tenant `{w}` is defined"),
                    ));
                }
            }
        }
    }

    let mut plugin_names = HashSet::new();
    for (i, pl) in config.plugins.iter().enumerate() {
        let pp = format!("plugins[{i}]");
        if let Err(m) = validate_name("plugin name", &pl.name) {
            out.push(problem(format!("{pp}.name"), m));
        }
        if !plugin_names.insert(pl.name.as_str()) {
            out.push(problem(
                format!("{pp}.name"),
                format!("plugin `{}` is defined twice", pl.name),
            ));
        }
        if !pl.path.is_file() {
            out.push(problem(
                format!("{pp}.path"),
                format!(
                    "{} is not a file; build the plugin with `civicbus transform build` and give the .wasm it prints",
                    pl.path.display()
                ),
            ));
        }
        if let Some(d) = &pl.digest
            && !is_digest(d)
        {
            out.push(problem(
                format!("{pp}.digest"),
                "must be `sha256:` and 64 hex digits, as `civicbus transform build` prints it",
            ));
        }
    }

    let mut sub_keys = HashSet::new();
    for (i, s) in config.subscriptions.iter().enumerate() {
        let p = format!("subscriptions[{}]", index.subscription(i));
        if let Err(m) = validate_name("subscription id", &s.id) {
            out.push(problem(format!("{p}.id"), m));
        }
        for (k, t) in s.transforms.iter().enumerate() {
            let (name, pin) = match TransformRef::parse(t) {
                TransformRef::Path(path) => {
                    if !Path::new(path).is_file() {
                        out.push(problem(
                            format!("{p}.transforms[{k}]"),
                            format!("{t} is not a file; give the .wasm `civicbus transform build` prints, or a [[plugins]] name"),
                        ));
                    }
                    continue;
                }
                TransformRef::Named { name, pin } => (name, pin),
            };
            let Some(plugin) = config.plugins.iter().find(|pl| pl.name == name) else {
                out.push(problem(
                    format!("{p}.transforms[{k}]"),
                    format!("no plugin `{name}` is defined in [[plugins]]"),
                ));
                continue;
            };
            if let Some(pin) = pin {
                if !is_digest(pin) {
                    out.push(problem(
                        format!("{p}.transforms[{k}]"),
                        "pin a digest as `name@sha256:<64 hex digits>`",
                    ));
                } else if plugin.digest.as_deref().is_some_and(|d| d != pin) {
                    out.push(problem(
                        format!("{p}.transforms[{k}]"),
                        format!("pins {pin}, but plugin `{name}` is pinned to another digest"),
                    ));
                }
            }
        }
        if s.retry.is_some() {
            for (field, m) in config.delivery.retry.policy(s.retry.as_ref()).problems() {
                out.push(problem(format!("{p}.retry.{field}"), m));
            }
        }
        if s.health.is_some() {
            for (field, m) in config.delivery.health.policy(s.health.as_ref()).problems() {
                out.push(problem(format!("{p}.health.{field}"), m));
            }
        }
        if !is_tenant(&s.tenant) {
            out.push(problem(
                format!("{p}.tenant"),
                format!("no tenant `{}` is defined in [[tenants]]", s.tenant),
            ));
        }
        if !sub_keys.insert((s.tenant.as_str(), s.id.as_str())) {
            out.push(problem(
                format!("{p}.id"),
                format!(
                    "tenant `{}` has two subscriptions named `{}`",
                    s.tenant, s.id
                ),
            ));
        }
        if s.concurrency == Some(0) {
            out.push(problem(
                format!("{p}.concurrency"),
                "must be greater than 0",
            ));
        }
        for (j, f) in s.filters.iter().enumerate() {
            for m in f.problems(&format!("{p}.filters[{j}]")) {
                let (path, msg) = m.split_once(": ").unwrap_or((&m, ""));
                out.push(problem(path, msg));
            }
        }
        if s.webhook.is_some() == s.amqp.is_some() {
            out.push(problem(
                p.clone(),
                "set exactly one sink: [subscriptions.webhook] or [subscriptions.amqp]",
            ));
        }
        if let Some(w) = &s.webhook {
            out.extend(check_webhook(w, &format!("{p}.webhook"), env));
        }
        if let Some(a) = &s.amqp
            && a.routing_key.as_deref().is_some_and(|k| k.len() > 255)
        {
            out.push(problem(
                format!("{p}.amqp.routing_key"),
                "is longer than 255 bytes",
            ));
        }
    }
    out
}

fn check_webhook(w: &WebhookConfig, p: &str, env: &BTreeMap<String, String>) -> Vec<ConfigProblem> {
    let mut out = Vec::new();
    match reqwest::Url::parse(&w.url) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {
            if u.host_str().is_none() {
                out.push(problem(format!("{p}.url"), "names no host"));
            }
        }
        Ok(u) => out.push(problem(
            format!("{p}.url"),
            format!(
                "scheme `{}` is not supported; use http:// or https://",
                u.scheme()
            ),
        )),
        Err(e) => out.push(problem(format!("{p}.url"), format!("not a valid URL: {e}"))),
    }
    for (i, s) in w.secrets.iter().enumerate() {
        if let Err(m) = civicbus_webhook::validate_secret(s) {
            out.push(problem(format!("{p}.secrets[{i}]"), m));
        }
    }
    for (i, var) in w.secrets_env.iter().enumerate() {
        match env.get(var) {
            None => out.push(warning(
                format!("{p}.secrets_env[{i}]"),
                format!(
                    "environment variable {var} is not set; deliveries cannot be signed with it"
                ),
            )),
            Some(s) => {
                if let Err(m) = civicbus_webhook::validate_secret(s) {
                    out.push(problem(
                        format!("{p}.secrets_env[{i}]"),
                        format!("{var}: {m}"),
                    ));
                }
            }
        }
    }
    if w.secrets.is_empty() && w.secrets_env.is_empty() {
        out.push(warning(
            format!("{p}.secrets"),
            "no signing secret: the subscriber cannot verify deliveries; add a whsec_ secret (`civicbus token generate --secret`) or a whsk_ ed25519 key (`civicbus token generate --signing-key`)",
        ));
    }
    if w.timeout.is_some_and(|t| t.is_zero()) {
        out.push(problem(format!("{p}.timeout"), "must be longer than 0s"));
    }
    out
}

/// A tenant's token, resolved to what the API checks against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedToken {
    /// Tenant.
    pub tenant: String,
    /// Credential name.
    pub name: String,
    /// SHA-256 of the token.
    pub sha256: [u8; 32],
}

/// Everything the running bus needs, resolved from a checked configuration.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Subscriptions as the core models them.
    pub subscriptions: Vec<Subscription>,
    /// Sharing rules.
    pub shares: Vec<SharingRule>,
    /// API tokens.
    pub tokens: Vec<ResolvedToken>,
    /// AMQP user → tenant.
    pub amqp_users: BTreeMap<String, String>,
    /// Endpoint health policy by subscription key (`<tenant>.<id>`).
    pub health: BTreeMap<String, HealthPolicy>,
    /// Transform chain by subscription key (only subscriptions that have one).
    pub transforms: BTreeMap<String, Vec<String>>,
}

impl Resolved {
    /// The endpoint health policy of the subscription `key` (the default if unknown).
    pub fn health_of(&self, key: &str) -> HealthPolicy {
        self.health.get(key).copied().unwrap_or_default()
    }

    /// The transform chain of the subscription `key` (empty: none).
    pub fn transforms_of(&self, key: &str) -> &[String] {
        self.transforms.get(key).map_or(&[], Vec::as_slice)
    }
}

/// One entry of `subscriptions[].transforms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransformRef<'a> {
    /// A `[[plugins]]` name, with an optional `sha256:` digest pin (`name@sha256:…`).
    Named {
        /// The plugin's name.
        name: &'a str,
        /// The pinned digest, if any.
        pin: Option<&'a str>,
    },
    /// A `.wasm` component by path (no configuration).
    Path(&'a str),
}

impl<'a> TransformRef<'a> {
    /// Read an entry: a path if it ends in `.wasm`, else `name` or `name@pin`.
    pub fn parse(entry: &'a str) -> Self {
        if entry.ends_with(".wasm") {
            return TransformRef::Path(entry);
        }
        match entry.split_once('@') {
            Some((name, pin)) => TransformRef::Named {
                name,
                pin: Some(pin),
            },
            None => TransformRef::Named {
                name: entry,
                pin: None,
            },
        }
    }

    /// The name the plugin is loaded under: its `[[plugins]]` name, or its path.
    pub fn plugin(&self) -> &'a str {
        match self {
            TransformRef::Named { name, .. } => name,
            TransformRef::Path(path) => path,
        }
    }
}

/// Hash a token the way the configuration stores it.
pub fn token_hash(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// Resolve a checked configuration (tokens and secrets from `env`).
pub fn resolve(config: &Config, env: &BTreeMap<String, String>) -> Resolved {
    let mut tokens = Vec::new();
    let mut shares = Vec::new();
    let mut amqp_users = BTreeMap::new();
    for t in &config.tenants {
        for tok in &t.tokens {
            let hash = match (&tok.sha256, &tok.env) {
                (Some(h), _) => {
                    let mut out = [0u8; 32];
                    if hex::decode_to_slice(h, &mut out).is_err() {
                        continue;
                    }
                    out
                }
                (None, Some(var)) => match env.get(var).filter(|v| !v.is_empty()) {
                    Some(v) => token_hash(v),
                    None => continue,
                },
                (None, None) => continue,
            };
            tokens.push(ResolvedToken {
                tenant: t.id.clone(),
                name: tok.name.clone(),
                sha256: hash,
            });
        }
        for s in &t.shares {
            shares.push(SharingRule {
                owner: t.id.clone(),
                type_prefix: s.type_prefix.clone(),
                audience: if s.with.iter().any(|w| w == "*") {
                    Audience::All
                } else {
                    Audience::Tenants(s.with.clone())
                },
            });
        }
        for u in &t.amqp_users {
            amqp_users.insert(u.clone(), t.id.clone());
        }
    }
    let subscriptions = config
        .subscriptions
        .iter()
        .filter_map(|s| {
            let sink = match (&s.webhook, &s.amqp) {
                (Some(w), None) => {
                    let mut secrets = w.secrets.clone();
                    secrets.extend(w.secrets_env.iter().filter_map(|v| env.get(v).cloned()));
                    SinkSpec::Webhook(WebhookSpec {
                        url: w.url.clone(),
                        secrets,
                        mode: match w.mode {
                            WebhookMode::Binary => HttpMode::Binary,
                            WebhookMode::Structured => HttpMode::Structured,
                        },
                        timeout: w.timeout.unwrap_or(config.delivery.timeout),
                    })
                }
                (None, Some(a)) => SinkSpec::Amqp(AmqpSinkSpec {
                    exchange: a.exchange.clone(),
                    routing_key: a.routing_key.clone(),
                }),
                _ => return None,
            };
            Some(Subscription {
                id: s.id.clone(),
                tenant: s.tenant.clone(),
                filters: s.filters.clone(),
                sink,
                concurrency: s.concurrency.unwrap_or(config.delivery.concurrency),
                retry: config.delivery.retry.policy(s.retry.as_ref()),
                ordering: match s.ordering {
                    OrderingConfig::Unordered => Ordering::Unordered,
                    OrderingConfig::PerSubject => Ordering::PerSubject,
                },
            })
        })
        .collect();
    let health = config
        .subscriptions
        .iter()
        .map(|s| {
            (
                format!("{}.{}", s.tenant, s.id),
                config.delivery.health.policy(s.health.as_ref()),
            )
        })
        .collect();
    let transforms = config
        .subscriptions
        .iter()
        .filter(|s| !s.transforms.is_empty())
        .map(|s| (format!("{}.{}", s.tenant, s.id), s.transforms.clone()))
        .collect();
    Resolved {
        subscriptions,
        shares,
        tokens,
        amqp_users,
        health,
        transforms,
    }
}

impl TenantConfig {
    /// A tenant with one freshly generated API token (named `<id>-system`); returns the
    /// tenant (holding only the token's hash) and the plain token. For demos and tests.
    pub fn with_new_token(id: &str, name: &str) -> (TenantConfig, String) {
        let token = crate::auth::generate_token();
        let tenant = TenantConfig {
            id: id.into(),
            name: name.into(),
            amqp_users: vec![],
            tokens: vec![TokenConfig {
                name: format!("{id}-system"),
                sha256: Some(hex::encode(token_hash(&token))),
                env: None,
            }],
            shares: vec![],
            unknown_types: None,
        };
        (tenant, token)
    }
}

/// The process environment as a map (only `CIVICBUS_*` and variables named by the config
/// matter, but all are passed so `env = "…"` may name any variable).
pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

/// A complete, commented example configuration: the county and its four partners.
pub const EXAMPLE: &str = include_str!("../civicbus.example.toml");

/// Whether `d` is `sha256:` followed by 64 lower-case hex digits.
pub fn is_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::TransformRef;

    #[test]
    fn transform_entries_are_names_pins_or_paths() {
        assert_eq!(
            TransformRef::parse("permit-to-record"),
            TransformRef::Named {
                name: "permit-to-record",
                pin: None
            }
        );
        let pinned = TransformRef::parse("permit-to-record@sha256:ab");
        assert_eq!(
            pinned,
            TransformRef::Named {
                name: "permit-to-record",
                pin: Some("sha256:ab")
            }
        );
        assert_eq!(pinned.plugin(), "permit-to-record");
        let path = TransformRef::parse("/opt/plugins/a@b.wasm");
        assert_eq!(path, TransformRef::Path("/opt/plugins/a@b.wasm"));
        assert_eq!(path.plugin(), "/opt/plugins/a@b.wasm");
    }
}
