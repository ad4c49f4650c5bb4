//! End-to-end tests of the webhook sink against a real local axum server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use civicbus_core::binding::{ParseLimits, parse_structured, percent_decode};
use civicbus_core::ports::{DeliveryRequest, Sink, SinkOutcome};
use civicbus_core::subscription::{AmqpSinkSpec, HttpMode, WebhookSpec};
use civicbus_core::{CloudEvent, Data, ExtensionValue, SinkSpec, Subscription};
use civicbus_webhook::{
    DEFAULT_TOLERANCE, MAX_EXCERPT_CHARS, NO_RETRY_HEADER, WebhookOptions, WebhookSink, public_key,
    verify,
};
use serde_json::json;

const SECRET_A: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const SECRET_B: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// An ed25519 signing key (`v1a`), 32 bytes of 0x11.
const SIGNING_KEY: &str = "whsk_ERERERERERERERERERERERERERERERERERERERERERE=";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const KEY: &str = "msg_0123456789abcdef0123456789abcdef";

#[derive(Debug, Clone)]
struct Captured {
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct AppState {
    captured: Arc<Mutex<Vec<Captured>>>,
}

struct TestServer {
    base: String,
    state: AppState,
    connections: Arc<AtomicUsize>,
}

impl TestServer {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn last(&self) -> Captured {
        self.state
            .captured
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("the server received a request")
    }
}

async fn capture(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    state
        .captured
        .lock()
        .expect("lock")
        .push(Captured { headers, body });
    StatusCode::OK
}

async fn status(Path(code): Path<u16>) -> Response {
    let status = StatusCode::from_u16(code).expect("valid status");
    let mut response = (status, "subscriber says\nno \u{1b}[1mthanks").into_response();
    let h = response.headers_mut();
    match code {
        429 => {
            h.insert("retry-after", HeaderValue::from_static("120"));
        }
        503 => {
            let at = chrono::Utc::now() + chrono::Duration::seconds(60);
            let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
            h.insert(
                "retry-after",
                HeaderValue::from_str(&date).expect("header value"),
            );
        }
        301 | 302 | 307 | 308 => {
            h.insert("location", HeaderValue::from_static("/moved?token=abc"));
        }
        _ => {}
    }
    response
}

async fn no_retry() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(NO_RETRY_HEADER, "true"), ("retry-after", "5")],
        "we will never accept this",
    )
        .into_response()
}

async fn slow() -> StatusCode {
    tokio::time::sleep(Duration::from_secs(3)).await;
    StatusCode::OK
}

/// Answers 401 and echoes the request's signature header and a long, noisy body.
async fn echo(headers: HeaderMap) -> Response {
    let sig = headers
        .get("webhook-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = format!("bad signature {sig}\n\t{}", "z".repeat(1000));
    (StatusCode::UNAUTHORIZED, body).into_response()
}

async fn start() -> TestServer {
    let state = AppState::default();
    let app = Router::new()
        .route("/hook", post(capture))
        .route("/status/{code}", post(status))
        .route("/noretry", post(no_retry))
        .route("/slow", post(slow))
        .route("/echo", post(echo))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let listener = listener.tap_io(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    TestServer {
        base: format!("http://{addr}"),
        state,
        connections,
    }
}

fn event() -> CloudEvent {
    let mut ev = CloudEvent::new(
        "P-2026-0042",
        "/dysart/permitting",
        "ca.haliburton.permitting.permit.issued",
    )
    .expect("valid event");
    ev.subject = Some("Dysart café 5% \"north\"".into());
    ev.time = Some("2026-11-25T14:03:00Z".into());
    ev.dataschema = Some("https://schemas.example/permit.issued/v1".into());
    ev.set_tenant("dysart");
    ev.extensions.insert(
        "partitionkey".into(),
        ExtensionValue::String("roll-4621".into()),
    );
    ev.data = Some(Data::Json(
        json!({"permit_num": "P-2026-0042", "fee": 125.5, "note": "Rue de l'Église"}),
    ));
    ev
}

fn subscription(url: &str, secrets: &[&str], mode: HttpMode, timeout: Duration) -> Subscription {
    Subscription {
        id: "records-filing".into(),
        tenant: "dysart".into(),
        filters: vec![],
        sink: SinkSpec::Webhook(WebhookSpec {
            url: url.into(),
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            mode,
            timeout,
        }),
        concurrency: 1,
        retry: civicbus_core::RetryPolicy::default(),
        ordering: civicbus_core::subscription::Ordering::Unordered,
    }
}

fn sink() -> WebhookSink {
    WebhookSink::new(WebhookOptions::default()).expect("client")
}

async fn deliver(sink: &WebhookSink, sub: &Subscription, ev: &CloudEvent) -> SinkOutcome {
    sink.deliver(DeliveryRequest {
        event: ev,
        subscription: sub,
        idempotency_key: KEY,
        attempt: 1,
        traceparent: Some(TRACEPARENT),
    })
    .await
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .unwrap_or_else(|| panic!("header {name} missing"))
        .to_str()
        .expect("ascii header")
}

#[tokio::test]
async fn binary_mode_headers_and_body() {
    let server = start().await;
    let ev = event();
    let sub = subscription(
        &server.url("/hook"),
        &[SECRET_A],
        HttpMode::Binary,
        Duration::from_secs(5),
    );
    let outcome = deliver(&sink(), &sub, &ev).await;
    assert_eq!(outcome, SinkOutcome::Delivered { status: Some(200) });

    let got = server.last();
    let h = &got.headers;
    assert_eq!(header(h, "content-type"), "application/json");
    assert_eq!(header(h, "ce-specversion"), "1.0");
    assert_eq!(header(h, "ce-id"), "P-2026-0042");
    assert_eq!(header(h, "ce-source"), "/dysart/permitting");
    assert_eq!(
        header(h, "ce-type"),
        "ca.haliburton.permitting.permit.issued"
    );
    assert_eq!(header(h, "ce-time"), "2026-11-25T14:03:00Z");
    assert_eq!(
        header(h, "ce-dataschema"),
        "https://schemas.example/permit.issued/v1"
    );
    assert_eq!(header(h, "ce-tenant"), "dysart");
    assert_eq!(header(h, "ce-partitionkey"), "roll-4621");
    // Space, non-ASCII, `%` and `"` are percent-encoded per the CloudEvents HTTP binding.
    assert_eq!(
        header(h, "ce-subject"),
        "Dysart%20caf%C3%A9%205%25%20%22north%22"
    );
    assert_eq!(
        percent_decode(header(h, "ce-subject")).as_deref(),
        ev.subject.as_deref()
    );
    assert!(h.get("ce-datacontenttype").is_none());
    assert_eq!(header(h, "webhook-id"), KEY);
    let ts: i64 = header(h, "webhook-timestamp")
        .parse()
        .expect("unix seconds");
    assert!((chrono::Utc::now().timestamp() - ts).abs() <= 5);
    assert_eq!(header(h, "traceparent"), TRACEPARENT);
    assert!(header(h, "user-agent").starts_with("civicbus-webhook/"));
    let sig = header(h, "webhook-signature");
    assert!(sig.starts_with("v1,") && !sig.contains(' '), "{sig}");

    let body: serde_json::Value = serde_json::from_slice(&got.body).expect("JSON body");
    assert_eq!(Some(Data::Json(body)), ev.data);

    // The body and headers verify with our own helper too.
    verify(&[SECRET_A], h, &got.body, DEFAULT_TOLERANCE).expect("signature verifies");
}

#[tokio::test]
async fn binary_mode_uses_datacontenttype_and_raw_bytes() {
    let server = start().await;
    let mut ev = event();
    ev.datacontenttype = Some("application/xml".into());
    ev.data = Some(Data::Text("<permit num=\"P-1\"/>".into()));
    let sub = subscription(
        &server.url("/hook"),
        &[SECRET_A],
        HttpMode::Binary,
        Duration::from_secs(5),
    );
    let outcome = deliver(&sink(), &sub, &ev).await;
    assert_eq!(outcome, SinkOutcome::Delivered { status: Some(200) });
    let got = server.last();
    assert_eq!(header(&got.headers, "content-type"), "application/xml");
    assert_eq!(&got.body[..], b"<permit num=\"P-1\"/>");
    assert!(got.headers.get("ce-datacontenttype").is_none());
}

#[tokio::test]
async fn structured_mode() {
    let server = start().await;
    let ev = event();
    let sub = subscription(
        &server.url("/hook"),
        &[SECRET_A],
        HttpMode::Structured,
        Duration::from_secs(5),
    );
    let outcome = deliver(&sink(), &sub, &ev).await;
    assert_eq!(outcome, SinkOutcome::Delivered { status: Some(200) });
    let got = server.last();
    assert_eq!(
        header(&got.headers, "content-type"),
        "application/cloudevents+json; charset=utf-8"
    );
    assert!(
        got.headers.keys().all(|k| !k.as_str().starts_with("ce-")),
        "structured mode sends no ce- headers"
    );
    let parsed = parse_structured(&got.body, &ParseLimits::default()).expect("valid event");
    assert_eq!(parsed, ev);
    assert_eq!(header(&got.headers, "webhook-id"), KEY);
    standardwebhooks::Webhook::new(SECRET_A)
        .expect("secret")
        .verify(&got.body, &got.headers)
        .expect("structured body signature verifies");
}

#[tokio::test]
async fn standardwebhooks_verifies_one_secret() {
    let server = start().await;
    let ev = event();
    let sub = subscription(
        &server.url("/hook"),
        &[SECRET_A],
        HttpMode::Binary,
        Duration::from_secs(5),
    );
    let outcome = deliver(&sink(), &sub, &ev).await;
    assert_eq!(outcome, SinkOutcome::Delivered { status: Some(200) });
    let got = server.last();
    standardwebhooks::Webhook::new(SECRET_A)
        .expect("secret")
        .verify(&got.body, &got.headers)
        .expect("the independent implementation accepts the signature");
    // A different secret must not verify, and neither must a tampered body.
    assert!(
        standardwebhooks::Webhook::new(SECRET_B)
            .expect("secret")
            .verify(&got.body, &got.headers)
            .is_err()
    );
    let mut tampered = got.body.to_vec();
    tampered.push(b' ');
    assert!(
        standardwebhooks::Webhook::new(SECRET_A)
            .expect("secret")
            .verify(&tampered, &got.headers)
            .is_err()
    );
}

#[tokio::test]
async fn standardwebhooks_verifies_each_rotated_secret() {
    let server = start().await;
    let ev = event();
    let sub = subscription(
        &server.url("/hook"),
        &[SECRET_A, SECRET_B],
        HttpMode::Binary,
        Duration::from_secs(5),
    );
    let outcome = deliver(&sink(), &sub, &ev).await;
    assert_eq!(outcome, SinkOutcome::Delivered { status: Some(200) });
    let got = server.last();
    let sig = header(&got.headers, "webhook-signature");
    assert_eq!(sig.split(' ').count(), 2, "{sig}");
    assert!(sig.split(' ').all(|s| s.starts_with("v1,")));
    for secret in [SECRET_A, SECRET_B] {
        standardwebhooks::Webhook::new(secret)
            .expect("secret")
            .verify(&got.body, &got.headers)
            .unwrap_or_else(|e| panic!("secret rotation: {e}"));
        verify(&[secret], &got.headers, &got.body, DEFAULT_TOLERANCE).expect("own verify");
    }
}

#[tokio::test]
async fn rotation_from_v1_to_v1a() {
    let server = start().await;
    let ev = event();
    let sub = subscription(
        &server.url("/hook"),
        &[SECRET_A, SIGNING_KEY],
        HttpMode::Binary,
        Duration::from_secs(5),
    );
    let outcome = deliver(&sink(), &sub, &ev).await;
    assert_eq!(outcome, SinkOutcome::Delivered { status: Some(200) });
    let got = server.last();
    let sig = header(&got.headers, "webhook-signature");
    let parts: Vec<&str> = sig.split(' ').collect();
    assert_eq!(parts.len(), 2, "{sig}");
    assert!(parts[0].starts_with("v1,"), "{sig}");
    assert!(parts[1].starts_with("v1a,"), "{sig}");
    // A subscriber still on the HMAC secret verifies with any Standard Webhooks library,
    // which skips the v1a signature it does not know.
    standardwebhooks::Webhook::new(SECRET_A)
        .expect("secret")
        .verify(&got.body, &got.headers)
        .expect("the v1 signature verifies beside a v1a one");
    // One moved to the public key verifies the v1a signature.
    let pk = public_key(SIGNING_KEY).expect("public key");
    verify(&[&pk], &got.headers, &got.body, DEFAULT_TOLERANCE).expect("v1a verifies");
    let mut tampered = got.body.to_vec();
    tampered.push(b' ');
    assert!(verify(&[&pk], &got.headers, &tampered, DEFAULT_TOLERANCE).is_err());
    assert!(verify(&[SECRET_B], &got.headers, &got.body, DEFAULT_TOLERANCE).is_err());
}

#[tokio::test]
async fn reasons_hide_v1a_signatures() {
    let server = start().await;
    let sub = subscription(
        &server.url("/echo"),
        &[SIGNING_KEY],
        HttpMode::Binary,
        Duration::from_secs(5),
    );
    let outcome = deliver(&sink(), &sub, &event()).await;
    let SinkOutcome::Terminal { status, reason } = &outcome else {
        panic!("expected terminal, got {outcome:?}");
    };
    assert_eq!(*status, Some(401));
    for secret_bit in ["v1a,", "ERERERERERER"] {
        assert!(
            !reason.contains(secret_bit),
            "{secret_bit} leaked: {reason}"
        );
    }
    assert!(reason.contains("bad signature [redacted]"), "{reason}");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Delivered,
    Retryable,
    Terminal,
    Gone,
}

fn kind(o: &SinkOutcome) -> Kind {
    match o {
        SinkOutcome::Delivered { .. } => Kind::Delivered,
        SinkOutcome::Retryable { .. } => Kind::Retryable,
        SinkOutcome::Terminal { .. } => Kind::Terminal,
        SinkOutcome::Gone { .. } => Kind::Gone,
    }
}

#[tokio::test]
async fn classification_by_status() {
    use Kind::*;
    let server = start().await;
    let sink = sink();
    let ev = event();
    let table: &[(u16, Kind)] = &[
        (200, Delivered),
        (201, Delivered),
        (202, Delivered),
        (204, Delivered),
        (301, Terminal),
        (302, Terminal),
        (400, Terminal),
        (401, Terminal),
        (403, Terminal),
        (404, Terminal),
        (408, Retryable),
        (409, Retryable),
        (410, Gone),
        (413, Terminal),
        (418, Terminal),
        (422, Terminal),
        (425, Retryable),
        (429, Retryable),
        (500, Retryable),
        (502, Retryable),
        (503, Retryable),
        (504, Retryable),
    ];
    for &(code, expected) in table {
        let sub = subscription(
            &server.url(&format!("/status/{code}")),
            &[SECRET_A],
            HttpMode::Binary,
            Duration::from_secs(5),
        );
        let outcome = deliver(&sink, &sub, &ev).await;
        assert_eq!(kind(&outcome), expected, "status {code}: {outcome:?}");
        assert_eq!(outcome.response_code(), Some(code), "status {code}");
        if let Some(reason) = outcome.error() {
            assert!(reason.contains(&code.to_string()), "{code}: {reason}");
            assert!(
                reason.contains("subscriber says no [1mthanks"),
                "{code}: body excerpt sanitised: {reason}"
            );
            assert!(!reason.contains('\u{1b}') && !reason.contains('\n'));
        }
        match (code, &outcome) {
            (429, SinkOutcome::Retryable { retry_after, .. }) => {
                assert_eq!(*retry_after, Some(Duration::from_secs(120)));
            }
            (503, SinkOutcome::Retryable { retry_after, .. }) => {
                let d = retry_after.expect("HTTP-date Retry-After honoured");
                assert!(
                    (Duration::from_secs(55)..=Duration::from_secs(61)).contains(&d),
                    "{d:?}"
                );
            }
            (_, SinkOutcome::Retryable { retry_after, .. }) => {
                assert_eq!(*retry_after, None, "{code}");
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn no_retry_header_makes_failure_terminal() {
    let server = start().await;
    let sub = subscription(
        &server.url("/noretry"),
        &[SECRET_A],
        HttpMode::Binary,
        Duration::from_secs(5),
    );
    let outcome = deliver(&sink(), &sub, &event()).await;
    match &outcome {
        SinkOutcome::Terminal { status, reason } => {
            assert_eq!(*status, Some(503));
            assert!(reason.contains(NO_RETRY_HEADER), "{reason}");
            assert!(reason.contains("we will never accept this"), "{reason}");
        }
        other => panic!("expected terminal, got {other:?}"),
    }
}

#[tokio::test]
async fn timeout_is_retryable() {
    let server = start().await;
    let sub = subscription(
        &server.url("/slow?token=s3cret"),
        &[SECRET_A],
        HttpMode::Binary,
        Duration::from_millis(300),
    );
    let started = std::time::Instant::now();
    let outcome = deliver(&sink(), &sub, &event()).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the timeout applied"
    );
    match &outcome {
        SinkOutcome::Retryable { status, reason, .. } => {
            assert_eq!(*status, None);
            assert_eq!(
                reason,
                &format!("timed out after 300ms waiting for {}", server.url("/slow"))
            );
        }
        other => panic!("expected retryable, got {other:?}"),
    }
}

#[tokio::test]
async fn connection_refused_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let url = format!("http://{addr}/hook");
    let sub = subscription(&url, &[SECRET_A], HttpMode::Binary, Duration::from_secs(5));
    let outcome = deliver(&sink(), &sub, &event()).await;
    match &outcome {
        SinkOutcome::Retryable { status, reason, .. } => {
            assert_eq!(*status, None);
            assert!(reason.contains("connection refused"), "{reason}");
            assert!(reason.contains(&url), "{reason}");
        }
        other => panic!("expected retryable, got {other:?}"),
    }
}

#[tokio::test]
async fn dns_failure_is_retryable() {
    let sub = subscription(
        "http://no-such-host.invalid/hook",
        &[SECRET_A],
        HttpMode::Binary,
        Duration::from_secs(5),
    );
    let outcome = deliver(&sink(), &sub, &event()).await;
    assert_eq!(kind(&outcome), Kind::Retryable, "{outcome:?}");
    let reason = outcome.error().expect("reason");
    assert!(reason.contains("no-such-host.invalid"), "{reason}");
}

#[tokio::test]
async fn redirect_is_terminal_and_names_location() {
    let server = start().await;
    let sub = subscription(
        &server.url("/status/302"),
        &[SECRET_A],
        HttpMode::Binary,
        Duration::from_secs(5),
    );
    let outcome = deliver(&sink(), &sub, &event()).await;
    match &outcome {
        SinkOutcome::Terminal { status, reason } => {
            assert_eq!(*status, Some(302));
            assert!(reason.contains(&server.url("/moved")), "{reason}");
            assert!(!reason.contains("token"), "query stripped: {reason}");
        }
        other => panic!("expected terminal, got {other:?}"),
    }
}

#[tokio::test]
async fn reasons_hide_credentials_query_and_signatures() {
    let server = start().await;
    let url = server
        .url("/echo?token=s3cret")
        .replace("http://", "http://alice:pa55word@");
    let sub = subscription(&url, &[SECRET_A], HttpMode::Binary, Duration::from_secs(5));
    let outcome = deliver(&sink(), &sub, &event()).await;
    let SinkOutcome::Terminal { status, reason } = &outcome else {
        panic!("expected terminal, got {outcome:?}");
    };
    assert_eq!(*status, Some(401));
    assert!(reason.contains(&server.url("/echo")), "{reason}");
    for secret_bit in ["alice", "pa55word", "s3cret", "v1,", "C2FVsBQIhrsc"] {
        assert!(
            !reason.contains(secret_bit),
            "{secret_bit} leaked: {reason}"
        );
    }
    assert!(reason.contains("bad signature [redacted]"), "{reason}");
    let excerpt = reason
        .split("response: ")
        .nth(1)
        .expect("the reason quotes the body");
    assert!(
        excerpt.chars().count() <= MAX_EXCERPT_CHARS + 1,
        "{excerpt}"
    );
}

#[tokio::test]
async fn invalid_secret_is_terminal_without_echo() {
    let server = start().await;
    let sub = subscription(
        &server.url("/hook"),
        &[SECRET_A, "not-a-whsec-secret"],
        HttpMode::Binary,
        Duration::from_secs(5),
    );
    let outcome = deliver(&sink(), &sub, &event()).await;
    let SinkOutcome::Terminal { status, reason } = &outcome else {
        panic!("expected terminal, got {outcome:?}");
    };
    assert_eq!(*status, None);
    assert!(reason.contains("secret #2"), "{reason}");
    assert!(reason.contains("whsec_"), "{reason}");
    assert!(!reason.contains("not-a-whsec-secret"), "{reason}");
    assert!(server.state.captured.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn bad_url_and_wrong_sink_are_terminal() {
    let s = sink();
    let ev = event();
    for url in ["not a url", "ftp://example.org/x", "mailto:x@example.org"] {
        let sub = subscription(url, &[SECRET_A], HttpMode::Binary, Duration::from_secs(1));
        let outcome = deliver(&s, &sub, &ev).await;
        assert_eq!(kind(&outcome), Kind::Terminal, "{url}: {outcome:?}");
    }
    let mut sub = subscription(
        "http://127.0.0.1:9/",
        &[],
        HttpMode::Binary,
        Duration::from_secs(1),
    );
    sub.sink = SinkSpec::Amqp(AmqpSinkSpec {
        exchange: "x".into(),
        routing_key: None,
    });
    let outcome = deliver(&s, &sub, &ev).await;
    assert_eq!(kind(&outcome), Kind::Terminal, "{outcome:?}");
}

#[tokio::test]
async fn connections_are_reused() {
    let server = start().await;
    let sink = sink();
    let ev = event();
    let sub = subscription(
        &server.url("/hook"),
        &[SECRET_A],
        HttpMode::Binary,
        Duration::from_secs(5),
    );
    for _ in 0..20 {
        let outcome = deliver(&sink, &sub, &ev).await;
        assert_eq!(outcome, SinkOutcome::Delivered { status: Some(200) });
    }
    // Also across statuses with a body, which the sink drains so the connection survives.
    let failing = subscription(
        &server.url("/status/500"),
        &[SECRET_A],
        HttpMode::Binary,
        Duration::from_secs(5),
    );
    for _ in 0..5 {
        assert_eq!(kind(&deliver(&sink, &failing, &ev).await), Kind::Retryable);
    }
    let accepted = server.connections.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&accepted),
        "25 sequential deliveries opened {accepted} connections"
    );
    assert_eq!(server.state.captured.lock().expect("lock").len(), 20);
}

#[tokio::test]
async fn tls_failure_is_retryable() {
    // Speak TLS to a plain-HTTP server: the handshake fails.
    let server = start().await;
    let url = server.url("/hook").replace("http://", "https://");
    let sub = subscription(&url, &[SECRET_A], HttpMode::Binary, Duration::from_secs(5));
    let outcome = deliver(&sink(), &sub, &event()).await;
    assert_eq!(kind(&outcome), Kind::Retryable, "{outcome:?}");
    let reason = outcome.error().expect("reason");
    assert!(reason.contains("TLS"), "{reason}");
    assert!(reason.contains(&url), "{reason}");
}
