//! Real deliveries of [`WebhookSink`], verified by the official Standard Webhooks library
//! for Python (`standardwebhooks` on PyPI) through `tests/verify_official.py`: one secret,
//! rotation (two `v1` signatures, each secret on its own), a tampered body, and `v1a`
//! (ed25519) signatures, alone and mixed with `v1` during rotation.
//!
//! The official Python library (1.1.0) verifies `v1` only; the script checks `v1a` with the
//! `cryptography` package, following the spec, and derives the `whpk_` public key from the
//! `whsk_` key on its own. A missing `python3` or package fails the test (never skips it):
//! `scripts/test.sh` installs both.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use civicbus_core::ports::{DeliveryRequest, Sink, SinkOutcome};
use civicbus_core::subscription::{HttpMode, WebhookSpec};
use civicbus_core::{CloudEvent, Data, SinkSpec, Subscription};
use civicbus_webhook::{WebhookOptions, WebhookSink, encode_signing_key, public_key};
use serde_json::{Value, json};

const SECRET_A: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const SECRET_B: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const PIP_HINT: &str = "python3 -m pip install 'standardwebhooks==1.1.0' cryptography";

#[derive(Debug, Clone)]
struct Captured {
    headers: HeaderMap,
    body: Bytes,
}

type Inbox = Arc<Mutex<Vec<Captured>>>;

async fn capture(State(inbox): State<Inbox>, headers: HeaderMap, body: Bytes) -> StatusCode {
    inbox.lock().expect("lock").push(Captured { headers, body });
    StatusCode::NO_CONTENT
}

/// A local receiver that keeps the raw body and headers of every request.
async fn receiver() -> (String, Inbox) {
    let inbox = Inbox::default();
    let app = Router::new()
        .route("/hook", post(capture))
        .with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    (format!("http://{addr}/hook"), inbox)
}

fn event(id: &str) -> CloudEvent {
    let mut ev = CloudEvent::new(
        id,
        "/dysart/permitting",
        "ca.haliburton.permitting.permit.issued",
    )
    .expect("valid event");
    ev.subject = Some("BP-2026-0147".into());
    ev.set_tenant("dysart");
    ev.data = Some(Data::Json(
        json!({"PermitNum": "BP-2026-0147", "fee": 125.5, "note": "Rue de l'Église"}),
    ));
    ev
}

/// Deliver one event through a real sink to `url`, signed with `secrets`, and return what
/// the receiver got.
async fn delivery(url: &str, inbox: &Inbox, secrets: &[&str], mode: HttpMode) -> Captured {
    let sub = Subscription {
        id: "records-filing".into(),
        tenant: "dysart".into(),
        filters: vec![],
        sink: SinkSpec::Webhook(WebhookSpec {
            url: url.into(),
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            mode,
            timeout: Duration::from_secs(10),
        }),
        concurrency: 1,
        retry: civicbus_core::RetryPolicy::default(),
        ordering: civicbus_core::subscription::Ordering::Unordered,
    };
    let before = inbox.lock().expect("lock").len();
    let key = format!("msg_official_{before}");
    let ev = event(&format!("P-2026-{before:04}"));
    let sink = WebhookSink::new(WebhookOptions::default()).expect("client");
    let outcome = sink
        .deliver(DeliveryRequest {
            event: &ev,
            subscription: &sub,
            idempotency_key: &key,
            attempt: 1,
            traceparent: None,
        })
        .await;
    assert_eq!(outcome, SinkOutcome::Delivered { status: Some(204) });
    let got = inbox.lock().expect("lock").last().cloned();
    got.expect("the receiver got the delivery")
}

fn headers_json(h: &HeaderMap) -> Value {
    let map: serde_json::Map<String, Value> = h
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), json!(v.to_str().ok()?))))
        .collect();
    Value::Object(map)
}

/// One check for the script: `kind` with `extra` fields, on `body` and `got`'s headers.
fn check(name: &str, kind: &str, got: &Captured, body: &[u8], extra: Value) -> Value {
    let mut c = json!({
        "name": name,
        "kind": kind,
        "body_b64": B64.encode(body),
        "headers": headers_json(&got.headers),
    });
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(extra.clone());
    }
    c
}

/// Run `tests/verify_official.py` on `checks`; returns each check's name → (ok, error).
fn run_official(checks: Vec<Value>) -> Vec<(String, bool, String)> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/verify_official.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run python3 ({e}): this test needs Python 3 with the official Standard \
                 Webhooks library; install Python 3, then `{PIP_HINT}`"
            )
        });
    let input = json!({ "checks": checks }).to_string();
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())
        .expect("write the checks to the script");
    let out = child.wait_with_output().expect("the script finishes");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed ({}): {stderr}\nInstall the official library: `{PIP_HINT}`",
        script.display(),
        out.status
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut results = Vec::new();
    for line in stdout.lines() {
        let v: Value = serde_json::from_str(line).expect("the script prints JSON lines");
        if let Some(version) = v.get("library_version") {
            eprintln!("official standardwebhooks library {version}");
            continue;
        }
        results.push((
            v["name"].as_str().unwrap_or_default().to_string(),
            v["ok"].as_bool().unwrap_or(false),
            v["error"].as_str().unwrap_or_default().to_string(),
        ));
    }
    assert_eq!(
        results.len(),
        checks.len(),
        "one result per check: {stdout}\n{stderr}"
    );
    results
}

fn tampered(body: &[u8]) -> Vec<u8> {
    let mut t = body.to_vec();
    match t.iter().position(|b| *b == b'5') {
        Some(i) => t[i] = b'6',
        None => t.push(b' '),
    }
    t
}

#[tokio::test]
async fn official_library_verifies_deliveries_including_rotation() {
    let (url, inbox) = receiver().await;
    let signing_key = encode_signing_key(&[0x5a; 32]);
    let other_key = encode_signing_key(&[0x33; 32]);
    let pk = public_key(&signing_key).expect("public key");
    let other_pk = public_key(&other_key).expect("public key");

    let one = delivery(&url, &inbox, &[SECRET_A], HttpMode::Binary).await;
    let rotation = delivery(&url, &inbox, &[SECRET_A, SECRET_B], HttpMode::Binary).await;
    let structured = delivery(&url, &inbox, &[SECRET_B], HttpMode::Structured).await;
    let v1a = delivery(&url, &inbox, &[&signing_key], HttpMode::Binary).await;
    let mixed = delivery(
        &url,
        &inbox,
        &[SECRET_A, &signing_key],
        HttpMode::Structured,
    )
    .await;

    let sig = |c: &Captured| {
        c.headers
            .get("webhook-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(sig(&rotation).split(' ').count(), 2, "{}", sig(&rotation));
    assert!(sig(&v1a).starts_with("v1a,"), "{}", sig(&v1a));
    let mixed_sig = sig(&mixed);
    let versions: Vec<&str> = mixed_sig
        .split(' ')
        .filter_map(|s| s.split_once(','))
        .map(|p| p.0)
        .collect();
    assert_eq!(versions, ["v1", "v1a"], "{mixed_sig}");

    let official = |name: &str, got: &Captured, body: &[u8], secret: &str| {
        check(name, "official", got, body, json!({ "secret": secret }))
    };
    let ed25519 = |name: &str, got: &Captured, body: &[u8], public_key: &str| {
        check(
            name,
            "ed25519",
            got,
            body,
            json!({ "public_key": public_key }),
        )
    };
    // (expected to verify, check)
    let cases: Vec<(bool, Value)> = vec![
        // (a) one secret.
        (true, official("one secret", &one, &one.body, SECRET_A)),
        (
            false,
            official("one secret, another secret", &one, &one.body, SECRET_B),
        ),
        // (b) rotation: two v1 signatures, each secret verifies on its own.
        (
            true,
            official("rotation, old secret", &rotation, &rotation.body, SECRET_A),
        ),
        (
            true,
            official("rotation, new secret", &rotation, &rotation.body, SECRET_B),
        ),
        (
            true,
            official("structured mode", &structured, &structured.body, SECRET_B),
        ),
        // (c) a tampered body fails, with either secret.
        (
            false,
            official("one secret, tampered", &one, &tampered(&one.body), SECRET_A),
        ),
        (
            false,
            official(
                "rotation, tampered",
                &rotation,
                &tampered(&rotation.body),
                SECRET_B,
            ),
        ),
        // v1a (ed25519), checked per the spec with `cryptography`.
        (
            true,
            json!({
                "name": "whpk_ derived from whsk_",
                "kind": "public_key",
                "signing_key": signing_key,
                "public_key": pk,
            }),
        ),
        (true, ed25519("v1a", &v1a, &v1a.body, &pk)),
        (
            false,
            ed25519("v1a, another public key", &v1a, &v1a.body, &other_pk),
        ),
        (
            false,
            ed25519("v1a, tampered", &v1a, &tampered(&v1a.body), &pk),
        ),
        (
            false,
            official("v1a only, HMAC secret", &v1a, &v1a.body, SECRET_A),
        ),
        // Rotation from v1 to v1a: both signatures in one header.
        (
            true,
            official("mixed, v1 (official)", &mixed, &mixed.body, SECRET_A),
        ),
        (true, ed25519("mixed, v1a", &mixed, &mixed.body, &pk)),
        (
            false,
            official(
                "mixed, v1, tampered",
                &mixed,
                &tampered(&mixed.body),
                SECRET_A,
            ),
        ),
        (
            false,
            ed25519("mixed, v1a, tampered", &mixed, &tampered(&mixed.body), &pk),
        ),
    ];
    let results = run_official(cases.iter().map(|c| c.1.clone()).collect());
    let mut wrong = Vec::new();
    for ((expected, c), (name, ok, error)) in cases.iter().zip(&results) {
        assert_eq!(c["name"], name.as_str(), "results come in order");
        if ok != expected {
            wrong.push(format!(
                "{name}: expected {}, got {} {error}",
                if *expected { "verified" } else { "refused" },
                if *ok { "verified" } else { "refused:" },
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
