//! In-memory fakes of the core ports, shared by the router's tests: a recording
//! publisher, a HashMap store, a scripted sink and an acker that logs how each message
//! was settled. Every fake can be told to fail the next N calls.

#![allow(dead_code, reason = "each test binary uses a part of the kit")]

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use civicbus_core::ports::{
    Acker, ArchivedEvent, AttemptStatus, AuditRecord, DeadLetter, DeadLetterQuery, DeliveryAttempt,
    DeliveryRequest, Destination, DisableEndpoint, Disabled, EndpointState, EventQuery, EventStore,
    InboundMessage, OutboundMessage, ParkedDelivery, PortError, Publisher, QuarantineRecord, Sink,
    SinkOutcome, TransformRecord,
};
use civicbus_core::subscription::AmqpSinkSpec;
use civicbus_core::{CloudEvent, Filter, SinkSpec, Subscription, wire};

/// The backoff the tests give workers, so "hand back later" does not slow them down.
pub const NO_BACKOFF: Duration = Duration::ZERO;

/// A traceparent that passes W3C validation.
pub const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().expect("a test fake's mutex is poisoned")
}

/// Failures scripted for the next calls of one operation.
#[derive(Debug, Default)]
struct FailNext {
    remaining: u32,
    error: Option<PortError>,
}

impl FailNext {
    fn set(&mut self, n: u32, error: PortError) {
        self.remaining = n;
        self.error = Some(error);
    }

    /// The error for this call, if one is scripted.
    fn take(&mut self) -> Option<PortError> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        self.error.clone()
    }
}

// ---------------------------------------------------------------------------------------
// Publisher
// ---------------------------------------------------------------------------------------

/// A publisher that records every confirmed batch and fails on demand.
#[derive(Debug, Default)]
pub struct RecordingPublisher {
    confirmed: Mutex<Vec<Vec<(Destination, OutboundMessage)>>>,
    calls: Mutex<u32>,
    fail: Mutex<FailNext>,
}

impl RecordingPublisher {
    /// A publisher that confirms everything.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Fail the next `n` calls with `error` (nothing of a failed call is recorded).
    pub fn fail_next(&self, n: u32, error: PortError) {
        lock(&self.fail).set(n, error);
    }

    /// Every confirmed message, in order.
    pub fn published(&self) -> Vec<(Destination, OutboundMessage)> {
        lock(&self.confirmed).iter().flatten().cloned().collect()
    }

    /// Confirmed batches (one per successful call).
    pub fn batches(&self) -> usize {
        lock(&self.confirmed).len()
    }

    /// Calls made, failed ones included.
    pub fn calls(&self) -> u32 {
        *lock(&self.calls)
    }
}

#[async_trait]
impl Publisher for RecordingPublisher {
    async fn publish_confirmed(
        &self,
        messages: Vec<(Destination, OutboundMessage)>,
    ) -> Result<(), PortError> {
        *lock(&self.calls) += 1;
        if let Some(e) = lock(&self.fail).take() {
            return Err(e);
        }
        lock(&self.confirmed).push(messages);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Clock
// ---------------------------------------------------------------------------------------

/// A clock the test moves by hand.
#[derive(Debug)]
pub struct ManualClock(Mutex<std::time::Instant>);

impl ManualClock {
    /// A clock at the current instant.
    pub fn new() -> Arc<Self> {
        Arc::new(ManualClock(Mutex::new(std::time::Instant::now())))
    }

    /// Move the clock forward.
    pub fn advance(&self, by: Duration) {
        *lock(&self.0) += by;
    }
}

impl civicbus_router::Clock for ManualClock {
    fn now(&self) -> std::time::Instant {
        *lock(&self.0)
    }
}

// ---------------------------------------------------------------------------------------
// Store
// ---------------------------------------------------------------------------------------

/// A store operation that can be told to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreOp {
    /// `archive`.
    Archive,
    /// `quarantine`.
    Quarantine,
    /// `record_attempt`.
    RecordAttempt,
    /// `is_delivered`.
    IsDelivered,
    /// `dead_letter`.
    DeadLetter,
    /// `endpoint_state`.
    EndpointState,
    /// `park`.
    Park,
}

#[derive(Debug, Default)]
struct StoreState {
    events: HashMap<(String, String, String), ArchivedEvent>,
    archive_calls: Vec<(ArchivedEvent, Vec<String>)>,
    quarantine: Vec<QuarantineRecord>,
    attempts: Vec<DeliveryAttempt>,
    delivered: HashSet<String>,
    dead_letters: Vec<DeadLetter>,
    dead_letter_calls: u32,
    endpoints: BTreeMap<String, EndpointState>,
    heads: BTreeMap<(String, String), String>,
    parked: Vec<ParkedDelivery>,
    transforms: Vec<TransformRecord>,
    /// Audit actions recorded for endpoints, in order: (action, subscription key, actor).
    endpoint_audit: Vec<(String, String, String)>,
    fail: HashMap<StoreOp, FailNext>,
}

impl StoreState {
    fn check(&mut self, op: StoreOp) -> Result<(), PortError> {
        match self.fail.get_mut(&op).and_then(FailNext::take) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// An in-memory event store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<StoreState>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Fail the next `n` calls of `op` with an unavailable error.
    pub fn fail_next(&self, op: StoreOp, n: u32) {
        lock(&self.state).fail.entry(op).or_default().set(
            n,
            PortError::unavailable(format!("{op:?}: database is down")),
        );
    }

    /// Mark an idempotency key as already delivered.
    pub fn mark_delivered(&self, key: &str) {
        lock(&self.state).delivered.insert(key.to_string());
    }

    /// Successful `archive` calls: the event and the subscription keys it was routed to.
    pub fn archive_calls(&self) -> Vec<(ArchivedEvent, Vec<String>)> {
        lock(&self.state).archive_calls.clone()
    }

    /// Distinct archived events.
    pub fn archived_count(&self) -> usize {
        lock(&self.state).events.len()
    }

    /// Quarantine records, oldest first.
    pub fn quarantined(&self) -> Vec<QuarantineRecord> {
        lock(&self.state).quarantine.clone()
    }

    /// Recorded delivery attempts, oldest first.
    pub fn attempts(&self) -> Vec<DeliveryAttempt> {
        lock(&self.state).attempts.clone()
    }

    /// Stored dead letters, oldest first (one per idempotency key).
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        lock(&self.state).dead_letters.clone()
    }

    /// The endpoint state kept for `key`.
    pub fn endpoint(&self, key: &str) -> Option<EndpointState> {
        lock(&self.state).endpoints.get(key).cloned()
    }

    /// Set the endpoint state of a subscription, as if an earlier run had recorded it.
    pub fn set_endpoint(&self, state: EndpointState) {
        lock(&self.state)
            .endpoints
            .insert(state.subscription.clone(), state);
    }

    /// The head of an ordering key.
    pub fn head(&self, sub: &str, key: &str) -> Option<String> {
        lock(&self.state)
            .heads
            .get(&(sub.to_string(), key.to_string()))
            .cloned()
    }

    /// Make `head` the head of an ordering key, as an earlier failure would have.
    pub fn set_head_for_test(&self, sub: &str, key: &str, head: &str) {
        lock(&self.state)
            .heads
            .insert((sub.to_string(), key.to_string()), head.to_string());
    }

    /// Transform runs recorded, in order (duplicates ignored).
    pub fn transform_runs(&self) -> Vec<TransformRecord> {
        lock(&self.state).transforms.clone()
    }

    /// Parked deliveries, in parking order.
    pub fn parked(&self) -> Vec<ParkedDelivery> {
        lock(&self.state).parked.clone()
    }

    /// Endpoint audit entries so far: (action, subscription key, actor).
    pub fn endpoint_audit(&self) -> Vec<(String, String, String)> {
        lock(&self.state).endpoint_audit.clone()
    }

    /// `dead_letter` calls that did not fail, duplicates (ignored) included.
    pub fn dead_letter_calls(&self) -> u32 {
        lock(&self.state).dead_letter_calls
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn archive(
        &self,
        event: &ArchivedEvent,
        routed_to: &[String],
    ) -> Result<bool, PortError> {
        let mut s = lock(&self.state);
        s.check(StoreOp::Archive)?;
        s.archive_calls.push((event.clone(), routed_to.to_vec()));
        let key = (
            event.tenant.clone(),
            event.event.source.clone(),
            event.event.id.clone(),
        );
        if s.events.contains_key(&key) {
            return Ok(false);
        }
        s.events.insert(key, event.clone());
        Ok(true)
    }

    async fn quarantine(&self, record: &QuarantineRecord) -> Result<(), PortError> {
        let mut s = lock(&self.state);
        s.check(StoreOp::Quarantine)?;
        s.quarantine.push(record.clone());
        Ok(())
    }

    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> Result<(), PortError> {
        let mut s = lock(&self.state);
        s.check(StoreOp::RecordAttempt)?;
        if attempt.status == AttemptStatus::Delivered {
            s.delivered.insert(attempt.idempotency_key.clone());
        }
        s.attempts.push(attempt.clone());
        Ok(())
    }

    async fn is_delivered(&self, idempotency_key: &str) -> Result<bool, PortError> {
        let mut s = lock(&self.state);
        s.check(StoreOp::IsDelivered)?;
        Ok(s.delivered.contains(idempotency_key))
    }

    async fn get_event(
        &self,
        tenant: &str,
        source: &str,
        id: &str,
    ) -> Result<Option<ArchivedEvent>, PortError> {
        let key = (tenant.to_string(), source.to_string(), id.to_string());
        Ok(lock(&self.state).events.get(&key).cloned())
    }

    async fn search_events(&self, query: &EventQuery) -> Result<Vec<ArchivedEvent>, PortError> {
        let s = lock(&self.state);
        let mut found: Vec<ArchivedEvent> = s
            .events
            .values()
            .filter(|e| query.tenant.as_ref().is_none_or(|t| &e.tenant == t))
            .filter(|e| {
                query
                    .type_prefix
                    .as_ref()
                    .is_none_or(|p| e.event.ty.starts_with(p.as_str()))
            })
            .cloned()
            .collect();
        found.sort_by_key(|e| std::cmp::Reverse(e.received_at));
        found.truncate(query.limit as usize);
        Ok(found)
    }

    async fn count_events(&self, tenant: Option<&str>) -> Result<u64, PortError> {
        let s = lock(&self.state);
        let n = s
            .events
            .values()
            .filter(|e| tenant.is_none_or(|t| e.tenant == t))
            .count();
        Ok(n as u64)
    }

    async fn attempts_for_event(
        &self,
        tenant: &str,
        source: &str,
        id: &str,
    ) -> Result<Vec<DeliveryAttempt>, PortError> {
        Ok(lock(&self.state)
            .attempts
            .iter()
            .filter(|a| a.event_tenant == tenant && a.event_source == source && a.event_id == id)
            .cloned()
            .collect())
    }

    async fn list_quarantine(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<QuarantineRecord>, PortError> {
        Ok(lock(&self.state)
            .quarantine
            .iter()
            .rev()
            .filter(|q| tenant.is_none_or(|t| q.tenant.as_deref() == Some(t)))
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn audit_entries(&self, _after: i64, _limit: u32) -> Result<Vec<AuditRecord>, PortError> {
        Ok(Vec::new())
    }

    async fn dead_letter(&self, record: &DeadLetter) -> Result<(), PortError> {
        let mut s = lock(&self.state);
        s.check(StoreOp::DeadLetter)?;
        s.dead_letter_calls += 1;
        // Idempotent on the key, like the SQL store: a redelivery stores nothing new.
        if s.dead_letters
            .iter()
            .any(|d| d.idempotency_key == record.idempotency_key)
        {
            return Ok(());
        }
        s.dead_letters.push(record.clone());
        Ok(())
    }

    async fn list_dead_letters(
        &self,
        query: &DeadLetterQuery,
    ) -> Result<Vec<DeadLetter>, PortError> {
        let limit = if query.limit == 0 { 100 } else { query.limit };
        let s = lock(&self.state);
        // Newest first; among equal times, the later stored first.
        let mut found: Vec<DeadLetter> = s
            .dead_letters
            .iter()
            .rev()
            .filter(|d| query.tenant.as_ref().is_none_or(|t| &d.tenant == t))
            .filter(|d| {
                query
                    .subscription
                    .as_ref()
                    .is_none_or(|k| &d.subscription == k)
            })
            .filter(|d| query.reason.is_none_or(|r| d.reason == r))
            .cloned()
            .collect();
        found.sort_by_key(|d| std::cmp::Reverse(d.created_at));
        found.truncate(limit as usize);
        Ok(found)
    }

    async fn get_dead_letter(&self, id: &str) -> Result<Option<DeadLetter>, PortError> {
        Ok(lock(&self.state)
            .dead_letters
            .iter()
            .find(|d| d.id == id)
            .cloned())
    }

    async fn endpoint_state(&self, key: &str) -> Result<Option<EndpointState>, PortError> {
        let mut s = lock(&self.state);
        s.check(StoreOp::EndpointState)?;
        Ok(s.endpoints.get(key).cloned())
    }

    async fn list_endpoints(&self, tenant: Option<&str>) -> Result<Vec<EndpointState>, PortError> {
        Ok(lock(&self.state)
            .endpoints
            .values()
            .filter(|e| tenant.is_none_or(|t| e.tenant == t))
            .cloned()
            .collect())
    }

    async fn endpoint_failing(
        &self,
        key: &str,
        tenant: &str,
        at: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, PortError> {
        let mut s = lock(&self.state);
        let e = s
            .endpoints
            .entry(key.to_string())
            .or_insert_with(|| EndpointState {
                subscription: key.to_string(),
                tenant: tenant.to_string(),
                failing_since: None,
                disabled: None,
                updated_at: at,
            });
        Ok(*e.failing_since.get_or_insert(at))
    }

    async fn endpoint_answered(&self, key: &str) -> Result<(), PortError> {
        if let Some(e) = lock(&self.state).endpoints.get_mut(key) {
            e.failing_since = None;
        }
        Ok(())
    }

    async fn disable_endpoint(&self, request: &DisableEndpoint) -> Result<bool, PortError> {
        let mut s = lock(&self.state);
        let e = s
            .endpoints
            .entry(request.subscription.clone())
            .or_insert_with(|| EndpointState {
                subscription: request.subscription.clone(),
                tenant: request.tenant.clone(),
                failing_since: request.failing_since,
                disabled: None,
                updated_at: request.at,
            });
        if e.disabled.is_some() {
            return Ok(false);
        }
        e.disabled = Some(Disabled {
            at: request.at,
            reason: request.reason,
            error: request.error.clone(),
            response_code: request.response_code,
            notified_at: None,
        });
        s.endpoint_audit.push((
            "endpoint-disabled".into(),
            request.subscription.clone(),
            "civicbus".into(),
        ));
        Ok(true)
    }

    async fn endpoint_notified(
        &self,
        key: &str,
        disabled_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<(), PortError> {
        if let Some(d) = lock(&self.state)
            .endpoints
            .get_mut(key)
            .and_then(|e| e.disabled.as_mut())
            .filter(|d| d.at == disabled_at)
        {
            d.notified_at = Some(at);
        }
        Ok(())
    }

    async fn enable_endpoint(&self, key: &str, actor: &str) -> Result<bool, PortError> {
        let mut s = lock(&self.state);
        let Some(e) = s.endpoints.get_mut(key).filter(|e| e.disabled.is_some()) else {
            return Ok(false);
        };
        e.disabled = None;
        e.failing_since = None;
        s.endpoint_audit.push((
            "endpoint-enabled".into(),
            key.to_string(),
            actor.to_string(),
        ));
        Ok(true)
    }

    async fn is_dead_lettered(&self, idempotency_key: &str) -> Result<bool, PortError> {
        Ok(lock(&self.state)
            .dead_letters
            .iter()
            .any(|d| d.idempotency_key == idempotency_key))
    }

    async fn ordering_head(&self, sub: &str, key: &str) -> Result<Option<String>, PortError> {
        Ok(self.head(sub, key))
    }

    async fn set_ordering_head(&self, sub: &str, key: &str, head: &str) -> Result<(), PortError> {
        lock(&self.state)
            .heads
            .insert((sub.to_string(), key.to_string()), head.to_string());
        Ok(())
    }

    async fn clear_ordering_head(&self, sub: &str, key: &str, head: &str) -> Result<(), PortError> {
        let mut s = lock(&self.state);
        let k = (sub.to_string(), key.to_string());
        if s.heads.get(&k).is_some_and(|h| h == head) {
            s.heads.remove(&k);
        }
        Ok(())
    }

    async fn park(&self, parked: &ParkedDelivery) -> Result<(), PortError> {
        let mut s = lock(&self.state);
        s.check(StoreOp::Park)?;
        if !s
            .parked
            .iter()
            .any(|p| p.idempotency_key == parked.idempotency_key)
        {
            s.parked.push(parked.clone());
        }
        Ok(())
    }

    async fn next_parked(&self, sub: &str, key: &str) -> Result<Option<ParkedDelivery>, PortError> {
        Ok(lock(&self.state)
            .parked
            .iter()
            .find(|p| p.subscription == sub && p.ordering_key == key)
            .cloned())
    }

    async fn unpark(&self, idempotency_key: &str) -> Result<(), PortError> {
        lock(&self.state)
            .parked
            .retain(|p| p.idempotency_key != idempotency_key);
        Ok(())
    }

    async fn record_transform(&self, record: &TransformRecord) -> Result<(), PortError> {
        let mut s = lock(&self.state);
        if !s.transforms.iter().any(|t| {
            t.subscription == record.subscription
                && t.input_source == record.input_source
                && t.input_id == record.input_id
        }) {
            s.transforms.push(record.clone());
        }
        Ok(())
    }

    async fn count_parked(&self, sub: Option<&str>) -> Result<u64, PortError> {
        Ok(lock(&self.state)
            .parked
            .iter()
            .filter(|p| sub.is_none_or(|s| p.subscription == s))
            .count() as u64)
    }
}

// ---------------------------------------------------------------------------------------
// Sink
// ---------------------------------------------------------------------------------------

/// What a sink was asked to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRequest {
    /// Event id.
    pub event_id: String,
    /// Event source.
    pub event_source: String,
    /// Subscription key.
    pub subscription: String,
    /// `webhook-id`.
    pub idempotency_key: String,
    /// Attempt number.
    pub attempt: u32,
    /// Trace context forwarded.
    pub traceparent: Option<String>,
}

/// A sink answering from a script (then `Delivered` with 200) and recording requests.
#[derive(Debug, Default)]
pub struct ScriptedSink {
    script: Mutex<VecDeque<SinkOutcome>>,
    sent: Mutex<Vec<SentRequest>>,
}

impl ScriptedSink {
    /// A sink answering `outcomes` in order.
    pub fn new(outcomes: impl IntoIterator<Item = SinkOutcome>) -> Arc<Self> {
        Arc::new(ScriptedSink {
            script: Mutex::new(outcomes.into_iter().collect()),
            sent: Mutex::default(),
        })
    }

    /// Requests received, in order.
    pub fn sent(&self) -> Vec<SentRequest> {
        lock(&self.sent).clone()
    }
}

#[async_trait]
impl Sink for ScriptedSink {
    async fn deliver(&self, request: DeliveryRequest<'_>) -> SinkOutcome {
        lock(&self.sent).push(SentRequest {
            event_id: request.event.id.clone(),
            event_source: request.event.source.clone(),
            subscription: request.subscription.key(),
            idempotency_key: request.idempotency_key.to_string(),
            attempt: request.attempt,
            traceparent: request.traceparent.map(str::to_string),
        });
        lock(&self.script)
            .pop_front()
            .unwrap_or(SinkOutcome::Delivered { status: Some(200) })
    }
}

// ---------------------------------------------------------------------------------------
// Acker
// ---------------------------------------------------------------------------------------

/// How a message was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// `ack`.
    Ack,
    /// `nack(requeue)`.
    Nack {
        /// Whether the broker should deliver it again.
        requeue: bool,
    },
}

/// A shared log of settlements, `(message label, how)`, in order.
#[derive(Debug, Clone, Default)]
pub struct AckLog(Arc<Mutex<Vec<(String, Settled)>>>);

impl AckLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// An acker for the message labelled `label`.
    pub fn acker(&self, label: &str) -> Box<dyn Acker> {
        Box::new(LoggingAcker {
            label: label.to_string(),
            log: self.clone(),
        })
    }

    /// Every settlement, in order.
    pub fn entries(&self) -> Vec<(String, Settled)> {
        lock(&self.0).clone()
    }

    /// Settlements without labels, in order.
    pub fn settled(&self) -> Vec<Settled> {
        lock(&self.0).iter().map(|(_, s)| *s).collect()
    }

    /// Labels of the messages settled, in order.
    pub fn labels(&self) -> Vec<String> {
        lock(&self.0).iter().map(|(l, _)| l.clone()).collect()
    }
}

struct LoggingAcker {
    label: String,
    log: AckLog,
}

#[async_trait]
impl Acker for LoggingAcker {
    async fn ack(&self) -> Result<(), PortError> {
        lock(&self.log.0).push((self.label.clone(), Settled::Ack));
        Ok(())
    }

    async fn nack(&self, requeue: bool) -> Result<(), PortError> {
        lock(&self.log.0).push((self.label.clone(), Settled::Nack { requeue }));
        Ok(())
    }
}

/// The settlement meaning "hand it back for redelivery".
pub const REQUEUED: Settled = Settled::Nack { requeue: true };

// ---------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------

/// A valid event with JSON data and no tenant.
pub fn event(id: &str, source: &str, ty: &str) -> CloudEvent {
    let mut ev = CloudEvent::new(id, source, ty).expect("a valid test event");
    ev.datacontenttype = Some("application/json".into());
    ev.data = Some(civicbus_core::Data::Json(
        serde_json::json!({ "permit_number": id }),
    ));
    ev
}

/// A valid event stamped with `tenant`.
pub fn tenant_event(tenant: &str, id: &str, ty: &str) -> CloudEvent {
    let mut ev = event(id, &format!("/{tenant}/permitting"), ty);
    ev.set_tenant(tenant);
    ev
}

/// A received message carrying `out` (as the broker would hand it over), settled into
/// `log` under `label`.
pub fn inbound(out: OutboundMessage, log: &AckLog, label: &str) -> InboundMessage {
    InboundMessage {
        body: out.body,
        content_type: Some(out.content_type),
        headers: out.headers,
        user_id: None,
        message_id: out.message_id,
        redelivered: false,
        delivery_count: 0,
        acker: log.acker(label),
    }
}

/// A received message carrying `event` the way civicbus writes it, plus `extra` headers.
pub fn inbound_event(
    event: &CloudEvent,
    extra: &[(&str, &str)],
    log: &AckLog,
    label: &str,
) -> InboundMessage {
    let extra = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    inbound(wire::to_amqp(event, extra), log, label)
}

/// A received message with a raw body and content type.
pub fn inbound_raw(
    body: &[u8],
    content_type: Option<&str>,
    headers: &[(&str, &str)],
    log: &AckLog,
    label: &str,
) -> InboundMessage {
    InboundMessage {
        body: bytes::Bytes::copy_from_slice(body),
        content_type: content_type.map(str::to_string),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        user_id: None,
        message_id: None,
        redelivered: false,
        delivery_count: 0,
        acker: log.acker(label),
    }
}

/// The first header of an outbound message with this name.
pub fn header<'a>(msg: &'a OutboundMessage, name: &str) -> Option<&'a str> {
    msg.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// How many headers of an outbound message have this name.
pub fn header_count(msg: &OutboundMessage, name: &str) -> usize {
    msg.headers.iter().filter(|(k, _)| k == name).count()
}

/// Decode an outbound message as the next consumer would.
pub fn decode(msg: &OutboundMessage) -> CloudEvent {
    let log = AckLog::new();
    let inbound = inbound(msg.clone(), &log, "decode");
    wire::from_amqp(&inbound, &Default::default()).expect("a published message is a CloudEvent")
}

/// A subscription of `tenant` named `id` with `filters`, delivering over AMQP.
pub fn subscription(tenant: &str, id: &str, filters: Vec<Filter>) -> Subscription {
    Subscription {
        id: id.into(),
        tenant: tenant.into(),
        filters,
        sink: SinkSpec::Amqp(AmqpSinkSpec {
            exchange: String::new(),
            routing_key: None,
        }),
        concurrency: 1,
        retry: civicbus_core::RetryPolicy::default(),
        ordering: civicbus_core::subscription::Ordering::Unordered,
    }
}

/// A filter: `type` starts with `prefix`.
pub fn type_prefix(prefix: &str) -> Filter {
    Filter::Prefix(BTreeMap::from([("type".to_string(), prefix.to_string())]))
}
