//! In-memory fakes of the ports the HTTP API stands on, and a harness that builds the
//! API around them: a publisher that confirms, fails or hangs on demand, an event store in
//! a vector, and a readiness probe with a switch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use civicbus_core::binding::ParseLimits;
use civicbus_core::ports::{
    ArchivedEvent, AuditRecord, DeadLetter, DeadLetterQuery, DeliveryAttempt, Destination,
    DisableEndpoint, EndpointState, EventQuery, EventStore, OutboundMessage, PortError, Publisher,
    QuarantineRecord,
};
use civicbus_router::{Ingest, IngestLimits};
use civicbus_server::auth::TokenSet;
use civicbus_server::config::{ResolvedToken, token_hash};
use civicbus_server::http::{ApiState, Readiness, app};
use serde_json::Value;
use tower::ServiceExt as _;

/// Dysart's publishing token.
pub const TOKEN: &str = "cbt_dysart-permitting-0123456789abcdef";
/// The county's token.
pub const COUNTY_TOKEN: &str = "cbt_county-gis-fedcba9876543210";
/// The tenant of [`TOKEN`].
pub const TENANT: &str = "dysart";
/// The credential name of [`TOKEN`].
pub const TOKEN_NAME: &str = "dysart-permitting";

/// Limits of the API under test: small, so tests can cross them cheaply.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Largest event, encoded.
pub const MAX_EVENT_BYTES: usize = 2048;
/// Deepest JSON.
pub const MAX_JSON_DEPTH: usize = 8;
/// Most events per batch.
pub const MAX_BATCH_EVENTS: usize = 5;
/// Time for one request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(200);
/// `Retry-After` on 503.
pub const RETRY_AFTER: u32 = 7;

/// What the fake publisher does with a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Record the messages and confirm.
    Confirm,
    /// Fail as if RabbitMQ were unreachable.
    Unavailable,
    /// Never answer (RabbitMQ never confirms).
    Hang,
}

/// A publisher that records what it confirmed.
pub struct FakePublisher {
    behaviour: Mutex<Behaviour>,
    published: Mutex<Vec<(Destination, OutboundMessage)>>,
}

impl FakePublisher {
    fn new() -> Self {
        FakePublisher {
            behaviour: Mutex::new(Behaviour::Confirm),
            published: Mutex::new(Vec::new()),
        }
    }

    /// Change what the next publishes do.
    pub fn set(&self, b: Behaviour) {
        *lock(&self.behaviour) = b;
    }

    /// Take the messages confirmed so far.
    pub fn take(&self) -> Vec<(Destination, OutboundMessage)> {
        std::mem::take(&mut *lock(&self.published))
    }
}

#[async_trait]
impl Publisher for FakePublisher {
    async fn publish_confirmed(
        &self,
        messages: Vec<(Destination, OutboundMessage)>,
    ) -> Result<(), PortError> {
        let behaviour = *lock(&self.behaviour);
        match behaviour {
            Behaviour::Confirm => {
                lock(&self.published).extend(messages);
                Ok(())
            }
            Behaviour::Unavailable => Err(PortError::unavailable(
                "cannot reach RabbitMQ at 127.0.0.1:5672: connection refused",
            )),
            Behaviour::Hang => std::future::pending().await,
        }
    }
}

/// An event store in memory: the archive, attempts and dead letters are vectors, the rest
/// is empty.
#[derive(Default)]
pub struct FakeStore {
    events: Mutex<Vec<ArchivedEvent>>,
    attempts: Mutex<Vec<DeliveryAttempt>>,
    queries: Mutex<Vec<EventQuery>>,
    dead_letters: Mutex<Vec<DeadLetter>>,
}

impl FakeStore {
    /// Add an archived event.
    pub fn add(&self, event: ArchivedEvent) {
        lock(&self.events).push(event);
    }

    /// Add a delivery attempt.
    pub fn add_attempt(&self, attempt: DeliveryAttempt) {
        lock(&self.attempts).push(attempt);
    }

    /// The searches made so far.
    pub fn queries(&self) -> Vec<EventQuery> {
        lock(&self.queries).clone()
    }
}

fn same_event(a: &ArchivedEvent, tenant: &str, source: &str, id: &str) -> bool {
    a.tenant == tenant && a.event.source == source && a.event.id == id
}

#[async_trait]
impl EventStore for FakeStore {
    async fn archive(&self, event: &ArchivedEvent, _: &[String]) -> Result<bool, PortError> {
        let mut events = lock(&self.events);
        let e = &event.event;
        if events
            .iter()
            .any(|a| same_event(a, &event.tenant, &e.source, &e.id))
        {
            return Ok(false);
        }
        events.push(event.clone());
        Ok(true)
    }

    async fn quarantine(&self, _: &QuarantineRecord) -> Result<(), PortError> {
        Ok(())
    }

    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> Result<(), PortError> {
        lock(&self.attempts).push(attempt.clone());
        Ok(())
    }

    async fn is_delivered(&self, _: &str) -> Result<bool, PortError> {
        Ok(false)
    }

    async fn get_event(
        &self,
        tenant: &str,
        source: &str,
        id: &str,
    ) -> Result<Option<ArchivedEvent>, PortError> {
        Ok(lock(&self.events)
            .iter()
            .find(|a| same_event(a, tenant, source, id))
            .cloned())
    }

    async fn search_events(&self, q: &EventQuery) -> Result<Vec<ArchivedEvent>, PortError> {
        lock(&self.queries).push(q.clone());
        let events = lock(&self.events);
        let mut found: Vec<ArchivedEvent> = events
            .iter()
            .filter(|a| q.tenant.as_ref().is_none_or(|t| *t == a.tenant))
            .filter(|a| {
                q.type_prefix
                    .as_ref()
                    .is_none_or(|p| a.event.ty.starts_with(p))
            })
            .filter(|a| q.subject.is_none() || q.subject == a.event.subject)
            .filter(|a| q.source.as_ref().is_none_or(|s| *s == a.event.source))
            .filter(|a| q.since.is_none_or(|t| a.received_at >= t))
            .filter(|a| q.until.is_none_or(|t| a.received_at < t))
            .cloned()
            .collect();
        found.sort_by_key(|a| std::cmp::Reverse(a.received_at));
        found.truncate(q.limit as usize);
        Ok(found)
    }

    async fn count_events(&self, tenant: Option<&str>) -> Result<u64, PortError> {
        let events = lock(&self.events);
        Ok(events
            .iter()
            .filter(|a| tenant.is_none_or(|t| a.tenant == t))
            .count() as u64)
    }

    async fn attempts_for_event(
        &self,
        tenant: &str,
        source: &str,
        id: &str,
    ) -> Result<Vec<DeliveryAttempt>, PortError> {
        Ok(lock(&self.attempts)
            .iter()
            .filter(|a| a.event_tenant == tenant && a.event_source == source && a.event_id == id)
            .cloned()
            .collect())
    }

    async fn list_quarantine(
        &self,
        _: Option<&str>,
        _: u32,
    ) -> Result<Vec<QuarantineRecord>, PortError> {
        Ok(Vec::new())
    }

    async fn audit_entries(&self, _: i64, _: u32) -> Result<Vec<AuditRecord>, PortError> {
        Ok(Vec::new())
    }

    async fn dead_letter(&self, record: &DeadLetter) -> Result<(), PortError> {
        let mut dead = lock(&self.dead_letters);
        if !dead
            .iter()
            .any(|d| d.idempotency_key == record.idempotency_key)
        {
            dead.push(record.clone());
        }
        Ok(())
    }

    async fn list_dead_letters(&self, q: &DeadLetterQuery) -> Result<Vec<DeadLetter>, PortError> {
        let limit = if q.limit == 0 { 100 } else { q.limit };
        let mut found: Vec<DeadLetter> = lock(&self.dead_letters)
            .iter()
            .rev()
            .filter(|d| q.tenant.as_ref().is_none_or(|t| *t == d.tenant))
            .filter(|d| q.subscription.as_ref().is_none_or(|k| *k == d.subscription))
            .filter(|d| q.reason.is_none_or(|r| r == d.reason))
            .cloned()
            .collect();
        found.sort_by_key(|d| std::cmp::Reverse(d.created_at));
        found.truncate(limit as usize);
        Ok(found)
    }

    async fn get_dead_letter(&self, id: &str) -> Result<Option<DeadLetter>, PortError> {
        Ok(lock(&self.dead_letters)
            .iter()
            .find(|d| d.id == id)
            .cloned())
    }

    // The API tests keep no endpoint health: reads find none, writes are refused.

    async fn endpoint_state(&self, _: &str) -> Result<Option<EndpointState>, PortError> {
        Ok(None)
    }

    async fn list_endpoints(&self, _: Option<&str>) -> Result<Vec<EndpointState>, PortError> {
        Ok(Vec::new())
    }

    async fn endpoint_failing(
        &self,
        _: &str,
        _: &str,
        _: chrono::DateTime<chrono::Utc>,
    ) -> Result<chrono::DateTime<chrono::Utc>, PortError> {
        Err(PortError::unavailable(
            "the fake store keeps no endpoint health",
        ))
    }

    async fn endpoint_answered(&self, _: &str) -> Result<(), PortError> {
        Err(PortError::unavailable(
            "the fake store keeps no endpoint health",
        ))
    }

    async fn disable_endpoint(&self, _: &DisableEndpoint) -> Result<bool, PortError> {
        Err(PortError::unavailable(
            "the fake store keeps no endpoint health",
        ))
    }

    async fn endpoint_notified(
        &self,
        _: &str,
        _: chrono::DateTime<chrono::Utc>,
        _: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), PortError> {
        Err(PortError::unavailable(
            "the fake store keeps no endpoint health",
        ))
    }

    async fn enable_endpoint(&self, _: &str, _: &str) -> Result<bool, PortError> {
        Err(PortError::unavailable(
            "the fake store keeps no endpoint health",
        ))
    }

    // Nor does it order deliveries.

    async fn is_dead_lettered(&self, key: &str) -> Result<bool, PortError> {
        Ok(lock(&self.dead_letters)
            .iter()
            .any(|d| d.idempotency_key == key))
    }

    async fn ordering_head(&self, _: &str, _: &str) -> Result<Option<String>, PortError> {
        Ok(None)
    }

    async fn set_ordering_head(&self, _: &str, _: &str, _: &str) -> Result<(), PortError> {
        Err(PortError::unavailable("the fake store keeps no ordering"))
    }

    async fn clear_ordering_head(&self, _: &str, _: &str, _: &str) -> Result<(), PortError> {
        Ok(())
    }

    async fn park(&self, _: &civicbus_core::ports::ParkedDelivery) -> Result<(), PortError> {
        Err(PortError::unavailable("the fake store keeps no ordering"))
    }

    async fn next_parked(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Option<civicbus_core::ports::ParkedDelivery>, PortError> {
        Ok(None)
    }

    async fn unpark(&self, _: &str) -> Result<(), PortError> {
        Ok(())
    }

    async fn count_parked(&self, _: Option<&str>) -> Result<u64, PortError> {
        Ok(0)
    }

    async fn record_transform(
        &self,
        _: &civicbus_core::ports::TransformRecord,
    ) -> Result<(), PortError> {
        Err(PortError::unavailable(
            "the fake store keeps no transform lineage",
        ))
    }
}

/// A readiness probe with a switch.
pub struct FakeReadiness {
    ready: AtomicBool,
}

impl FakeReadiness {
    /// Say ready or not.
    pub fn set(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
}

#[async_trait]
impl Readiness for FakeReadiness {
    async fn check(&self) -> Result<(), String> {
        if self.ready.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("RabbitMQ is not connected: cannot reach 127.0.0.1:5672".into())
        }
    }
}

/// The API with its fakes.
pub struct Harness {
    /// The router under test.
    pub app: Router,
    /// The publisher behind ingest.
    pub publisher: Arc<FakePublisher>,
    /// The store behind lookups.
    pub store: Arc<FakeStore>,
    /// The readiness probe.
    pub readiness: Arc<FakeReadiness>,
}

impl Harness {
    /// The API with the limits above, [`TOKEN`] for Dysart and [`COUNTY_TOKEN`] for the
    /// county.
    pub fn new() -> Self {
        let publisher = Arc::new(FakePublisher::new());
        let store = Arc::new(FakeStore::default());
        let readiness = Arc::new(FakeReadiness {
            ready: AtomicBool::new(true),
        });
        let limits = IngestLimits {
            parse: ParseLimits {
                max_json_depth: MAX_JSON_DEPTH,
                max_batch_events: MAX_BATCH_EVENTS,
            },
            max_event_bytes: MAX_EVENT_BYTES,
        };
        let token = |tenant: &str, name: &str, token: &str| ResolvedToken {
            tenant: tenant.into(),
            name: name.into(),
            sha256: token_hash(token),
        };
        let state = ApiState {
            ingest: Arc::new(Ingest::new(publisher.clone(), limits)),
            tokens: Arc::new(TokenSet::new(&[
                token(TENANT, TOKEN_NAME, TOKEN),
                token("county", "county-gis", COUNTY_TOKEN),
            ])),
            store: store.clone(),
            readiness: readiness.clone(),
            max_body_bytes: MAX_BODY_BYTES,
            request_timeout: REQUEST_TIMEOUT,
            retry_after_seconds: RETRY_AFTER,
        };
        Harness {
            app: app(state),
            publisher,
            store,
            readiness,
        }
    }

    /// Send one request; the whole exchange must finish within five seconds.
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let exchange = async {
            let response = self
                .app
                .clone()
                .oneshot(request)
                .await
                .expect("the router is infallible");
            let (parts, body) = response.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX)
                .await
                .expect("response body reads");
            Reply {
                status: parts.status,
                headers: parts.headers,
                body: body.to_vec(),
            }
        };
        tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .expect("the API answered within 5s")
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Reply {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
