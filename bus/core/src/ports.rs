//! Ports: the traits the router is written against. The broker crate (RabbitMQ), the
//! store crate (SQL) and the sink crates implement them; tests may use in-memory fakes.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::envelope::CloudEvent;
use crate::subscription::Subscription;

/// Whether a port failure is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortErrorKind {
    /// The backing service is unreachable or overloaded; try again later.
    Unavailable,
    /// The backing service refused this request (it will refuse it again).
    Rejected,
}

/// A failure of a port (broker, store).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PortError {
    /// Retry or not.
    pub kind: PortErrorKind,
    /// What happened and what to do, without secrets.
    pub message: String,
}

impl PortError {
    /// The backing service is unreachable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        PortError {
            kind: PortErrorKind::Unavailable,
            message: message.into(),
        }
    }

    /// The backing service refused the request.
    pub fn rejected(message: impl Into<String>) -> Self {
        PortError {
            kind: PortErrorKind::Rejected,
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Broker
// ---------------------------------------------------------------------------------------

/// Where a message is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The bus's events exchange (`civicbus.events`) with this routing key
    /// (`<tenant>.<type>`).
    Events {
        /// Routing key.
        routing_key: String,
    },
    /// A subscription's delivery queue, by subscription key (`<tenant>.<id>`).
    Subscription {
        /// Subscription key.
        key: String,
    },
    /// A subscription's retry (wait) queue: the message waits there for the
    /// subscription's retry delay (queue TTL), then RabbitMQ dead-letters it back to the
    /// subscription's delivery queue. The wait is durable: nothing sleeps in memory.
    Retry {
        /// Subscription key.
        key: String,
        /// How long to wait before the delivery is offered again.
        delay: std::time::Duration,
    },
    /// A subscription's dead-letter queue: deliveries that failed for good, kept with
    /// their failure context for operators.
    DeadLetter {
        /// Subscription key.
        key: String,
    },
    /// Any exchange (AMQP sinks).
    Exchange {
        /// Exchange name.
        exchange: String,
        /// Routing key.
        routing_key: String,
    },
}

/// A message to publish: always persistent, always confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// Body bytes.
    pub body: Bytes,
    /// `content_type` property.
    pub content_type: String,
    /// Headers (string values).
    pub headers: Vec<(String, String)>,
    /// `message_id` property.
    pub message_id: Option<String>,
}

/// Publishes persistent messages and waits for the broker's confirms.
#[async_trait]
pub trait Publisher: Send + Sync + 'static {
    /// Publish every message and return only when the broker confirmed all of them.
    /// An error means some may not have been stored: the caller must not acknowledge
    /// anything that depends on them.
    async fn publish_confirmed(
        &self,
        messages: Vec<(Destination, OutboundMessage)>,
    ) -> Result<(), PortError>;
}

/// Settles one received message.
#[async_trait]
pub trait Acker: Send + Sync {
    /// Acknowledge: the message is done and the broker may forget it.
    async fn ack(&self) -> Result<(), PortError>;
    /// Reject: with `requeue` the broker delivers it again.
    async fn nack(&self, requeue: bool) -> Result<(), PortError>;
}

/// A message received from the broker.
pub struct InboundMessage {
    /// Body bytes.
    pub body: Bytes,
    /// `content_type` property.
    pub content_type: Option<String>,
    /// Headers, values converted to strings (timestamps as RFC 3339).
    pub headers: Vec<(String, String)>,
    /// `user_id` property: RabbitMQ checks it equals the publishing user.
    pub user_id: Option<String>,
    /// `message_id` property.
    pub message_id: Option<String>,
    /// Whether the broker delivered this message before.
    pub redelivered: bool,
    /// How many times it was delivered before (quorum queues' `x-delivery-count`).
    pub delivery_count: u32,
    /// Settles the message.
    pub acker: Box<dyn Acker>,
}

impl InboundMessage {
    /// The first header with this name (exact match).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl std::fmt::Debug for InboundMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundMessage")
            .field("len", &self.body.len())
            .field("content_type", &self.content_type)
            .field("user_id", &self.user_id)
            .field("redelivered", &self.redelivered)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------
// Store
// ---------------------------------------------------------------------------------------

/// An accepted event as the archive keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivedEvent {
    /// The event, tenant stamped.
    pub event: CloudEvent,
    /// Owning tenant (the same as the event's `tenant` extension).
    pub tenant: String,
    /// When the bus accepted it.
    pub received_at: DateTime<Utc>,
    /// Who submitted it (credential or AMQP user name).
    pub actor: String,
}

/// An input the bus could not accept, kept with the reason so nothing is lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineRecord {
    /// Record id (UUID).
    pub id: String,
    /// Tenant, when the credential identified one.
    pub tenant: Option<String>,
    /// How it arrived: `amqp` or `http`.
    pub transport: String,
    /// Machine-readable reason (e.g. `missing-attribute`, `unknown-amqp-user`).
    pub reason_kind: String,
    /// The field at fault, if any.
    pub field: String,
    /// What was wrong and how to fix it.
    pub reason: String,
    /// The raw body.
    pub body: Vec<u8>,
    /// The raw headers and properties.
    pub headers: Vec<(String, String)>,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptStatus {
    /// The subscriber accepted the event.
    Delivered,
    /// A failure worth retrying (timeout, connection error, 5xx, 429).
    Retryable,
    /// A failure retrying cannot fix (4xx other than 408/409/429).
    Terminal,
    /// The subscriber said the endpoint is gone (410).
    Gone,
    /// Skipped: the same idempotency key was already delivered.
    Duplicate,
}

impl AttemptStatus {
    /// The stable string stored and shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptStatus::Delivered => "delivered",
            AttemptStatus::Retryable => "retryable",
            AttemptStatus::Terminal => "terminal",
            AttemptStatus::Gone => "gone",
            AttemptStatus::Duplicate => "duplicate",
        }
    }

    /// Parse the stored string.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "delivered" => AttemptStatus::Delivered,
            "retryable" => AttemptStatus::Retryable,
            "terminal" => AttemptStatus::Terminal,
            "gone" => AttemptStatus::Gone,
            "duplicate" => AttemptStatus::Duplicate,
            _ => return None,
        })
    }
}

/// One delivery attempt of one event to one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// Idempotency key (`webhook-id`).
    pub idempotency_key: String,
    /// Tenant of the subscription.
    pub tenant: String,
    /// Subscription key.
    pub subscription: String,
    /// Tenant owning the event.
    pub event_tenant: String,
    /// Event source.
    pub event_source: String,
    /// Event id.
    pub event_id: String,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Outcome.
    pub status: AttemptStatus,
    /// HTTP status, when there was a response.
    pub response_code: Option<u16>,
    /// Why it failed, when it did (no secrets).
    pub error: Option<String>,
    /// How long the attempt took.
    pub duration: Duration,
    /// When it started.
    pub at: DateTime<Utc>,
}

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditAction {
    /// An event was accepted and archived.
    Received,
    /// An input was quarantined.
    Quarantined,
    /// An event was matched to subscriptions.
    Routed,
    /// A delivery succeeded.
    Delivered,
    /// A delivery attempt failed.
    DeliveryFailed,
    /// A delivery was dead-lettered (terminal failure, gone, or retries exhausted).
    DeadLettered,
    /// A subscription's endpoint was disabled (it answered 410, or failed continuously
    /// for the subscription's `disable_after`).
    EndpointDisabled,
    /// An operator enabled a disabled endpoint again.
    EndpointEnabled,
    /// A subscription's transform chain mapped an event (to zero or more outputs).
    Transformed,
}

impl AuditAction {
    /// The stable string stored in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Received => "received",
            AuditAction::Quarantined => "quarantined",
            AuditAction::Routed => "routed",
            AuditAction::Delivered => "delivered",
            AuditAction::DeliveryFailed => "delivery-failed",
            AuditAction::DeadLettered => "dead-lettered",
            AuditAction::EndpointDisabled => "endpoint-disabled",
            AuditAction::EndpointEnabled => "endpoint-enabled",
            AuditAction::Transformed => "transformed",
        }
    }
}

/// One entry of the append-only audit log, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the log, from 1, without gaps.
    pub seq: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Tenant concerned.
    pub tenant: Option<String>,
    /// Who (credential, AMQP user, `civicbus` for the bus itself).
    pub actor: String,
    /// What.
    pub action: String,
    /// What it concerns, e.g. `event:/dysart/permitting#P-1` or `quarantine:<uuid>`.
    pub target: String,
    /// Details as JSON (never secrets or payloads).
    pub detail: String,
    /// Hash of the previous entry (hex), empty for the first.
    pub prev_hash: String,
    /// SHA-256 over this entry and `prev_hash` (hex).
    pub hash: String,
}

/// Why a delivery was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeadLetterReason {
    /// The subscriber's answer means retrying cannot help (e.g. 400, 422).
    Terminal,
    /// The subscriber said the endpoint is gone (410).
    Gone,
    /// The retry policy's maximum number of attempts was reached.
    AttemptsExhausted,
    /// The retry policy's maximum age was reached.
    MaxAgeExceeded,
    /// The endpoint is disabled: the delivery was not attempted (enable the endpoint and
    /// replay the dead letter).
    EndpointDisabled,
    /// The subscription's transform failed for good (the plugin refused the event, it
    /// trapped, or an output was invalid or broke its schema).
    TransformFailed,
}

impl DeadLetterReason {
    /// The stable string stored and shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::Terminal => "terminal",
            DeadLetterReason::Gone => "gone",
            DeadLetterReason::AttemptsExhausted => "attempts-exhausted",
            DeadLetterReason::MaxAgeExceeded => "max-age-exceeded",
            DeadLetterReason::EndpointDisabled => "endpoint-disabled",
            DeadLetterReason::TransformFailed => "transform-failed",
        }
    }

    /// Parse the stored string.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "terminal" => DeadLetterReason::Terminal,
            "gone" => DeadLetterReason::Gone,
            "attempts-exhausted" => DeadLetterReason::AttemptsExhausted,
            "max-age-exceeded" => DeadLetterReason::MaxAgeExceeded,
            "endpoint-disabled" => DeadLetterReason::EndpointDisabled,
            "transform-failed" => DeadLetterReason::TransformFailed,
            _ => return None,
        })
    }
}

/// A delivery that failed for good, kept with its whole context. The attempts themselves
/// are the delivery attempts recorded under the same idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Record id (UUID).
    pub id: String,
    /// Tenant of the subscription.
    pub tenant: String,
    /// Subscription key.
    pub subscription: String,
    /// Idempotency key (`webhook-id`) of the delivery.
    pub idempotency_key: String,
    /// The event, as it was to be delivered.
    pub event: CloudEvent,
    /// Tenant owning the event.
    pub event_tenant: String,
    /// Why.
    pub reason: DeadLetterReason,
    /// The last failure, in words (no secrets).
    pub error: String,
    /// HTTP status of the last attempt, if any.
    pub last_response_code: Option<u16>,
    /// Number of attempts made.
    pub attempts: u32,
    /// When the bus accepted the event.
    pub received_at: Option<DateTime<Utc>>,
    /// When it was dead-lettered.
    pub created_at: DateTime<Utc>,
}

/// A search over the dead letters. Every filter given must match; results come newest
/// first (by `created_at`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterQuery {
    /// Only dead letters of this tenant (the subscription's tenant).
    pub tenant: Option<String>,
    /// Only dead letters of this subscription key (`<tenant>.<id>`).
    pub subscription: Option<String>,
    /// Only dead letters dead-lettered for this reason.
    pub reason: Option<DeadLetterReason>,
    /// Most rows returned; 0 means 100. Stores may cap it.
    pub limit: u32,
}

/// Why an endpoint was disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DisableReason {
    /// The endpoint answered 410 Gone.
    Gone,
    /// Every delivery failed for longer than the subscription's `disable_after`.
    Failing,
}

impl DisableReason {
    /// The stable string stored and shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            DisableReason::Gone => "gone",
            DisableReason::Failing => "failing",
        }
    }

    /// Parse the stored string.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "gone" => DisableReason::Gone,
            "failing" => DisableReason::Failing,
            _ => return None,
        })
    }
}

/// A disabled endpoint: when, why, and the last failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disabled {
    /// When it was disabled.
    pub at: DateTime<Utc>,
    /// Why.
    pub reason: DisableReason,
    /// The failure that disabled it, in words (no secrets).
    pub error: String,
    /// HTTP status of that failure, if any.
    pub response_code: Option<u16>,
    /// When the `endpoint.disabled` event was published (`None`: not yet).
    pub notified_at: Option<DateTime<Utc>>,
}

/// The health a store keeps for one subscription's endpoint, across restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointState {
    /// Subscription key (`<tenant>.<id>`).
    pub subscription: String,
    /// Tenant of the subscription.
    pub tenant: String,
    /// Start of the current run of consecutive failures (`None`: the last answer was a
    /// success, or nothing failed yet).
    pub failing_since: Option<DateTime<Utc>>,
    /// Set while the endpoint is disabled.
    pub disabled: Option<Disabled>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// The request to disable an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisableEndpoint {
    /// Subscription key.
    pub subscription: String,
    /// Tenant of the subscription.
    pub tenant: String,
    /// Why.
    pub reason: DisableReason,
    /// The failure that disabled it (no secrets).
    pub error: String,
    /// HTTP status of that failure, if any.
    pub response_code: Option<u16>,
    /// When the failures began (for the audit entry and the event).
    pub failing_since: Option<DateTime<Utc>>,
    /// Now.
    pub at: DateTime<Utc>,
}

/// A delivery of a per-subject ordered subscription waiting behind the delivery at the
/// head of its ordering key (see [`EventStore::park`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedDelivery {
    /// Subscription key.
    pub subscription: String,
    /// The ordering key (`partitionkey`, else `subject`).
    pub ordering_key: String,
    /// Idempotency key (`webhook-id`) of the delivery.
    pub idempotency_key: String,
    /// The message as it was on the subscription's queue.
    pub message: OutboundMessage,
    /// When it was parked.
    pub parked_at: DateTime<Utc>,
}

/// A search over the archive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only this tenant's events.
    pub tenant: Option<String>,
    /// Type starts with this.
    pub type_prefix: Option<String>,
    /// Exact subject.
    pub subject: Option<String>,
    /// Exact source.
    pub source: Option<String>,
    /// Received at or after.
    pub since: Option<DateTime<Utc>>,
    /// Received before.
    pub until: Option<DateTime<Utc>>,
    /// Most rows returned.
    pub limit: u32,
}

/// The system of record for the archive, quarantine, delivery attempts, dead letters and
/// audit.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Archive an accepted event and audit `received` and `routed` (to `routed_to`
    /// subscription keys) in one transaction. Returns `false` if the archive already held
    /// this (tenant, source, id): the event is not stored twice.
    async fn archive(&self, event: &ArchivedEvent, routed_to: &[String])
    -> Result<bool, PortError>;

    /// Keep a rejected input with its reason, and audit it.
    async fn quarantine(&self, record: &QuarantineRecord) -> Result<(), PortError>;

    /// Record a delivery attempt, and audit it.
    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> Result<(), PortError>;

    /// Whether a delivery with this idempotency key already succeeded.
    async fn is_delivered(&self, idempotency_key: &str) -> Result<bool, PortError>;

    /// One archived event.
    async fn get_event(
        &self,
        tenant: &str,
        source: &str,
        id: &str,
    ) -> Result<Option<ArchivedEvent>, PortError>;

    /// Archived events matching `query`, newest first.
    async fn search_events(&self, query: &EventQuery) -> Result<Vec<ArchivedEvent>, PortError>;

    /// Number of archived events (of one tenant, or all).
    async fn count_events(&self, tenant: Option<&str>) -> Result<u64, PortError>;

    /// Delivery attempts of one event, oldest first.
    async fn attempts_for_event(
        &self,
        tenant: &str,
        source: &str,
        id: &str,
    ) -> Result<Vec<DeliveryAttempt>, PortError>;

    /// Quarantined inputs, newest first.
    async fn list_quarantine(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<QuarantineRecord>, PortError>;

    /// Audit entries with `seq > after`, oldest first, at most `limit`.
    async fn audit_entries(&self, after: i64, limit: u32) -> Result<Vec<AuditRecord>, PortError>;

    /// Keep a delivery that failed for good, and audit `dead-lettered` (subscription,
    /// idempotency key, the event's tenant, source and id, reason, attempts, last response
    /// code and the error cut to 256 characters; never the payload), both in one
    /// transaction.
    ///
    /// Idempotent on `record.idempotency_key`: if a dead letter with that key is stored
    /// already (a redelivery after a crash between this write and the acknowledgement),
    /// nothing is stored or audited and the call returns `Ok`.
    async fn dead_letter(&self, record: &DeadLetter) -> Result<(), PortError>;

    /// Dead letters matching `query`, newest first.
    async fn list_dead_letters(
        &self,
        query: &DeadLetterQuery,
    ) -> Result<Vec<DeadLetter>, PortError>;

    /// One dead letter by its record id.
    async fn get_dead_letter(&self, id: &str) -> Result<Option<DeadLetter>, PortError>;

    /// The endpoint health kept for subscription `key`, if any was ever recorded.
    async fn endpoint_state(&self, key: &str) -> Result<Option<EndpointState>, PortError>;

    /// Endpoint states (of one tenant, or all), by subscription key.
    async fn list_endpoints(&self, tenant: Option<&str>) -> Result<Vec<EndpointState>, PortError>;

    /// A delivery to subscription `key` failed at `at`: start the run of failures there
    /// unless one is already running. Returns the start of the run in force.
    async fn endpoint_failing(
        &self,
        key: &str,
        tenant: &str,
        at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, PortError>;

    /// The endpoint of subscription `key` answered: the run of failures is over.
    async fn endpoint_answered(&self, key: &str) -> Result<(), PortError>;

    /// Disable an endpoint and audit `endpoint-disabled`, in one transaction. Returns
    /// `false` (and audits nothing) if it was disabled already.
    async fn disable_endpoint(&self, request: &DisableEndpoint) -> Result<bool, PortError>;

    /// Note that the `endpoint.disabled` event of the disabling at `disabled_at` was
    /// published.
    async fn endpoint_notified(
        &self,
        key: &str,
        disabled_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<(), PortError>;

    /// Enable a disabled endpoint (clearing its run of failures) and audit
    /// `endpoint-enabled` by `actor`, in one transaction. Returns `false` (and audits
    /// nothing) if it was not disabled.
    async fn enable_endpoint(&self, key: &str, actor: &str) -> Result<bool, PortError>;

    /// Whether a delivery with this idempotency key was dead-lettered.
    async fn is_dead_lettered(&self, idempotency_key: &str) -> Result<bool, PortError>;

    /// The delivery (idempotency key) at the head of `ordering_key` in `subscription`,
    /// that later deliveries with the key wait behind; `None` if they need not wait.
    async fn ordering_head(
        &self,
        subscription: &str,
        ordering_key: &str,
    ) -> Result<Option<String>, PortError>;

    /// Make `head` the head of `ordering_key` in `subscription` (replacing any).
    async fn set_ordering_head(
        &self,
        subscription: &str,
        ordering_key: &str,
        head: &str,
    ) -> Result<(), PortError>;

    /// Nothing waits behind `ordering_key` any more: remove its head, if it is `head`.
    async fn clear_ordering_head(
        &self,
        subscription: &str,
        ordering_key: &str,
        head: &str,
    ) -> Result<(), PortError>;

    /// Keep a delivery behind the head of its key, after those parked before it.
    /// Idempotent on the idempotency key (a redelivery parks nothing new).
    async fn park(&self, parked: &ParkedDelivery) -> Result<(), PortError>;

    /// The first delivery parked behind `ordering_key` in `subscription`, if any.
    async fn next_parked(
        &self,
        subscription: &str,
        ordering_key: &str,
    ) -> Result<Option<ParkedDelivery>, PortError>;

    /// Forget a parked delivery (its turn came and it was settled). No error if absent.
    async fn unpark(&self, idempotency_key: &str) -> Result<(), PortError>;

    /// Number of parked deliveries (of one subscription, or all).
    async fn count_parked(&self, subscription: Option<&str>) -> Result<u64, PortError>;

    /// Keep the lineage of a transform run (which plugins produced which outputs from
    /// which input) and audit `transformed`, in one transaction. Idempotent on
    /// (subscription, input source, input id): a re-run after a crash records nothing new.
    async fn record_transform(&self, record: &TransformRecord) -> Result<(), PortError>;
}

// ---------------------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------------------

/// One way an event's `data` fails its schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaViolation {
    /// JSON pointer into `data` of the value at fault (`""` for the whole of it).
    pub pointer: String,
    /// The schema keyword that failed (`required`, `pattern`, `type`, …).
    pub keyword: String,
    /// JSON pointer into the schema of that keyword.
    pub schema_path: String,
    /// What is wrong, in words.
    pub message: String,
}

/// Why an event's data was refused by the schema registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchemaRejectionKind {
    /// The data does not validate against the event type's schema.
    Invalid,
    /// No schema is known for the event's type (and the tenant's policy is `reject`).
    UnknownType,
    /// The event names a `dataschema` the registry does not hold, or one of another type.
    UnknownSchema,
}

/// An event refused by the schema registry, with everything the producer needs to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRejection {
    /// Why.
    pub kind: SchemaRejectionKind,
    /// The schema's `$id`, when one was found.
    pub schema: Option<String>,
    /// A one-line summary that says how to fix it.
    pub message: String,
    /// Every violation, for [`SchemaRejectionKind::Invalid`].
    pub violations: Vec<SchemaViolation>,
}

impl std::fmt::Display for SchemaRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        for v in &self.violations {
            let at = if v.pointer.is_empty() {
                "/"
            } else {
                &v.pointer
            };
            write!(f, "; {at}: {} ({})", v.message, v.keyword)?;
        }
        Ok(())
    }
}

/// Checks an event's `data` against the schema of its type (or its `dataschema`). The
/// implementation holds the compiled catalogue and each tenant's policy for types it does
/// not know.
pub trait DataValidator: Send + Sync + 'static {
    /// `Ok` if `event`, published by `tenant`, may go on.
    fn check(&self, tenant: &str, event: &CloudEvent) -> Result<(), SchemaRejection>;
}

// ---------------------------------------------------------------------------------------
// Transforms
// ---------------------------------------------------------------------------------------

/// Why a transform chain could not map an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformFailure {
    /// Whether trying again later could succeed (the plugin said so); everything else
    /// (a refusal, a trap, an invalid output, a limit) is terminal.
    pub retryable: bool,
    /// The plugin at fault, `name@sha256:…`.
    pub plugin: String,
    /// A short class: `terminal`, `retryable`, `out-of-fuel`, `timeout`, `out-of-memory`,
    /// `stack-overflow`, `panic`, `trap`, `output-limit`, `invalid-output`,
    /// `schema-violation`.
    pub kind: String,
    /// What happened, in words.
    pub message: String,
}

impl std::fmt::Display for TransformFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "transform {} failed ({}): {}",
            self.plugin, self.kind, self.message
        )
    }
}

/// A subscription's transform chain: each plugin maps every output of the one before.
/// Implementations run sandboxed, CPU-bound code: call [`TransformChain::apply`] from a
/// blocking thread.
pub trait TransformChain: Send + Sync + 'static {
    /// The plugins in force, in order, as `name@sha256:<hex>`.
    fn plugins(&self) -> Vec<String>;

    /// Map one event to zero or more events. Blocking.
    fn apply(&self, event: &CloudEvent) -> Result<Vec<CloudEvent>, TransformFailure>;
}

/// One run of a transform chain, for the store's lineage and audit.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformRecord {
    /// Subscription key.
    pub subscription: String,
    /// Tenant of the subscription.
    pub tenant: String,
    /// Tenant, source and id of the input event.
    pub input_tenant: String,
    /// Source of the input event.
    pub input_source: String,
    /// Id of the input event.
    pub input_id: String,
    /// The plugins, in order, `name@sha256:…`.
    pub plugins: Vec<String>,
    /// The outputs: (source, id, type), in order (empty: filtered out).
    pub outputs: Vec<(String, String, String)>,
    /// When.
    pub at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------
// Sinks
// ---------------------------------------------------------------------------------------

/// One delivery to perform.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryRequest<'a> {
    /// The event to deliver.
    pub event: &'a CloudEvent,
    /// The subscription it goes to.
    pub subscription: &'a Subscription,
    /// Stable idempotency key (`webhook-id`).
    pub idempotency_key: &'a str,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// W3C trace context to forward, if any.
    pub traceparent: Option<&'a str>,
}

/// How a sink classifies the result of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkOutcome {
    /// Accepted by the subscriber.
    Delivered {
        /// Response status, for HTTP.
        status: Option<u16>,
    },
    /// Failed; worth retrying.
    Retryable {
        /// Response status, if any.
        status: Option<u16>,
        /// What went wrong.
        reason: String,
        /// The subscriber's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// Failed; retrying will not help.
    Terminal {
        /// Response status, if any.
        status: Option<u16>,
        /// What went wrong.
        reason: String,
    },
    /// The subscriber says the endpoint no longer exists (HTTP 410).
    Gone {
        /// What went wrong.
        reason: String,
    },
}

impl SinkOutcome {
    /// The attempt status this outcome is recorded as.
    pub fn status(&self) -> AttemptStatus {
        match self {
            SinkOutcome::Delivered { .. } => AttemptStatus::Delivered,
            SinkOutcome::Retryable { .. } => AttemptStatus::Retryable,
            SinkOutcome::Terminal { .. } => AttemptStatus::Terminal,
            SinkOutcome::Gone { .. } => AttemptStatus::Gone,
        }
    }

    /// The HTTP status, if there was a response.
    pub fn response_code(&self) -> Option<u16> {
        match self {
            SinkOutcome::Delivered { status }
            | SinkOutcome::Retryable { status, .. }
            | SinkOutcome::Terminal { status, .. } => *status,
            SinkOutcome::Gone { .. } => Some(410),
        }
    }

    /// The failure reason, if it failed.
    pub fn error(&self) -> Option<&str> {
        match self {
            SinkOutcome::Delivered { .. } => None,
            SinkOutcome::Retryable { reason, .. }
            | SinkOutcome::Terminal { reason, .. }
            | SinkOutcome::Gone { reason } => Some(reason),
        }
    }
}

/// Delivers events to one kind of destination.
#[async_trait]
pub trait Sink: Send + Sync + 'static {
    /// Deliver one event; never panics, always classifies the result.
    async fn deliver(&self, request: DeliveryRequest<'_>) -> SinkOutcome;
}
