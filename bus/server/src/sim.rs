//! Simulated subscriber systems for the demo and the end-to-end tests: a webhook receiver
//! that verifies Standard Webhooks signatures and parses the CloudEvent as a real
//! subscriber would, and records what it received.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use civicbus_core::CloudEvent;
use civicbus_core::binding::{HeaderPrefixes, ParseLimits, parse_binary, parse_structured};
use tokio::task::JoinHandle;

/// One delivery a simulator received.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// Which simulated system received it.
    pub system: String,
    /// `webhook-id` header.
    pub webhook_id: String,
    /// Whether the signature verified against the simulator's secrets.
    pub verified: bool,
    /// Whether the simulator answered 2xx (it was accepted).
    pub accepted: bool,
    /// `binary` or `structured`.
    pub mode: &'static str,
    /// The event, if it parsed.
    pub event: Option<CloudEvent>,
    /// `traceparent` header, if any.
    pub traceparent: Option<String>,
    /// Every request header, as received.
    pub headers: HeaderMap,
    /// The request body, as received.
    pub body: Bytes,
}

/// Which events have their first delivery refused, and with which status.
type FirstAttemptFailure = (u16, Arc<dyn Fn(&str) -> bool + Send + Sync>);

#[derive(Clone)]
struct SimState {
    system: String,
    secrets: Arc<Vec<String>>,
    received: Arc<Mutex<Vec<Received>>>,
    accepted_ids: Arc<Mutex<HashSet<String>>>,
    answer: Arc<AtomicU16>,
    first_failure: Arc<Mutex<Option<FirstAttemptFailure>>>,
    /// `webhook-id`s whose first delivery was refused by `first_failure`.
    failed_once: Arc<Mutex<HashSet<String>>>,
}

/// A webhook subscriber on 127.0.0.1 with a random port.
pub struct WebhookSimulator {
    addr: SocketAddr,
    state: SimState,
    task: JoinHandle<()>,
}

impl WebhookSimulator {
    /// Start a simulator named `system` that verifies with `secrets`.
    pub async fn start(system: &str, secrets: Vec<String>) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind a port for the simulated subscriber")?;
        let addr = listener.local_addr().context("no local address")?;
        let state = SimState {
            system: system.to_string(),
            secrets: Arc::new(secrets),
            received: Arc::new(Mutex::new(Vec::new())),
            accepted_ids: Arc::new(Mutex::new(HashSet::new())),
            answer: Arc::new(AtomicU16::new(204)),
            first_failure: Arc::new(Mutex::new(None)),
            failed_once: Arc::new(Mutex::new(HashSet::new())),
        };
        let app = Router::new()
            .route("/events", post(receive))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(WebhookSimulator { addr, state, task })
    }

    /// The URL to subscribe.
    pub fn url(&self) -> String {
        format!("http://{}/events", self.addr)
    }

    /// Answer every following delivery with `status` (e.g. 503 to simulate an outage).
    pub fn answer_with(&self, status: u16) {
        self.state.answer.store(status, Ordering::SeqCst);
    }

    /// Refuse with `status` the first delivery of every event whose id `pick` selects
    /// (tracked by `webhook-id`) that would otherwise have been accepted; later attempts
    /// get the usual answer. Deterministic first-attempt failures, e.g. for benchmarks of
    /// the retry path.
    pub fn fail_first_attempt(
        &self,
        status: u16,
        pick: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) {
        if let Ok(mut f) = self.state.first_failure.lock() {
            *f = Some((status, Arc::new(pick)));
        }
    }

    /// Everything received so far (accepted or not).
    pub fn received(&self) -> Vec<Received> {
        self.state
            .received
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Distinct `webhook-id`s of verified deliveries.
    pub fn distinct_ids(&self) -> HashSet<String> {
        self.state
            .accepted_ids
            .lock()
            .map(|ids| ids.clone())
            .unwrap_or_default()
    }

    /// Number of distinct `webhook-id`s of verified, accepted deliveries (cheap).
    pub fn distinct_count(&self) -> usize {
        self.state
            .accepted_ids
            .lock()
            .map(|ids| ids.len())
            .unwrap_or(0)
    }

    /// Number of requests received, accepted or not (cheap).
    pub fn request_count(&self) -> usize {
        self.state.received.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Wait until at least `n` distinct verified deliveries arrived, or `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.distinct_count() >= n {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for WebhookSimulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(State(st): State<SimState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let secrets: Vec<&str> = st.secrets.iter().map(String::as_str).collect();
    let verified = civicbus_webhook::verify(
        &secrets,
        &headers,
        &body,
        civicbus_webhook::DEFAULT_TOLERANCE,
    )
    .is_ok();
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let structured = ct
        .as_deref()
        .is_some_and(|c| c.starts_with("application/cloudevents+json"));
    let limits = ParseLimits::default();
    let event = if structured {
        parse_structured(&body, &limits).ok()
    } else {
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
            .collect();
        parse_binary(pairs, HeaderPrefixes::Http, ct.as_deref(), &body, &limits).ok()
    };
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let rec = Received {
        system: st.system.clone(),
        webhook_id: header("webhook-id").unwrap_or_default(),
        verified,
        accepted: false,
        mode: if structured { "structured" } else { "binary" },
        event,
        traceparent: header("traceparent"),
        headers: headers.clone(),
        body: body.clone(),
    };
    let mut answer = st.answer.load(Ordering::SeqCst);
    if verified
        && (200..300).contains(&answer)
        && let Some(status) = first_failure(&st, &rec)
    {
        answer = status;
    }
    let accepted = verified && (200..300).contains(&answer);
    if accepted && let Ok(mut ids) = st.accepted_ids.lock() {
        ids.insert(rec.webhook_id.clone());
    }
    if let Ok(mut r) = st.received.lock() {
        r.push(Received { accepted, ..rec });
    }
    if !verified {
        return StatusCode::UNAUTHORIZED;
    }
    StatusCode::from_u16(answer).unwrap_or(StatusCode::NO_CONTENT)
}

/// The status to refuse `rec` with if it is the first delivery of an event picked by
/// [`WebhookSimulator::fail_first_attempt`].
fn first_failure(st: &SimState, rec: &Received) -> Option<u16> {
    let (status, pick) = st.first_failure.lock().ok()?.clone()?;
    let id = rec.event.as_ref().map(|e| e.id.as_str())?;
    if !pick(id) {
        return None;
    }
    let first = st.failed_once.lock().ok()?.insert(rec.webhook_id.clone());
    first.then_some(status)
}
