//! The CLI against a real bus (`civicbus publish`, `civicbus demo` without RabbitMQ), and
//! bad input over the real HTTP server: each gets its status and problem+json, and the bus
//! keeps serving.

use std::process::Command;

use civicbus_core::ports::EventStore;
use civicbus_tests::{Backend, Harness, permit_event};
use serde_json::{Value, json};

fn civicbus() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_civicbus-e2e"));
    c.env_remove("CIVICBUS_TOKEN").env_remove("CIVICBUS_URL");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publish_command_sends_events_to_a_running_bus() {
    let h = Harness::new("cli", Backend::Sqlite).await.expect("harness");
    let bus = h.start().await.expect("bus");
    let token = bus.tokens["dysart"].clone();
    let base = bus.base_url.clone();

    // From flags, structured and binary.
    for (id, mode) in [("cli-1", "structured"), ("cli-2", "binary")] {
        let out = civicbus()
            .args(["publish", "--url", &base, "--type"])
            .arg("ca.haliburton.permitting.permit.issued")
            .args([
                "--source",
                "/dysart/permitting",
                "--id",
                id,
                "--subject",
                "BP-7",
            ])
            .args(["--mode", mode, "--data"])
            .arg(permit_event("dysart", id, "issued", "BP-7")["data"].to_string())
            .env("CIVICBUS_TOKEN", &token)
            .output()
            .expect("run publish");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("202"));
    }
    // From a file holding a batch.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("batch.json");
    let batch = json!([
        permit_event("dysart", "cli-3", "issued", "BP-8"),
        permit_event("dysart", "cli-4", "closed", "BP-8"),
    ]);
    std::fs::write(&file, batch.to_string()).expect("write");
    let out = civicbus()
        .args(["publish", "--url", &base, "--token", &token, "--file"])
        .arg(&file)
        .output()
        .expect("run publish");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#""accepted":2"#));

    // A refused event: exit 1 and the problem's detail on stderr.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"specversion":"1.0","id":"x","type":"t"}"#).expect("write");
    let out = civicbus()
        .args(["publish", "--url", &base, "--token", &token, "--file"])
        .arg(&bad)
        .output()
        .expect("run publish");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("400") && err.contains("source"), "{err}");

    // A wrong token: exit 1, says 401.
    let out = civicbus()
        .args(["publish", "--url", &base, "--token", "cbt_wrong", "--file"])
        .arg(&file)
        .output()
        .expect("run publish");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));

    let store = bus.store();
    let archived = civicbus_tests::eventually(std::time::Duration::from_secs(20), || {
        let store = store.clone();
        async move { store.count_events(Some("dysart")).await.unwrap_or(0) == 4 }
    })
    .await;
    assert!(archived, "the four published events are archived");
    bus.stop().await;
}

#[test]
fn demo_without_rabbitmq_says_how_to_start_it_and_fails() {
    let out = civicbus()
        .args(["demo", "--broker-url", "amqp://guest:guest@127.0.0.1:1/%2f"])
        .output()
        .expect("run demo");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rabbitmq-server -detached"), "{err}");
    assert!(
        !err.contains("guest:guest"),
        "the password is not printed: {err}"
    );
}

/// name, token, content type, body, expected status, expected problem type.
type Case<'a> = (&'a str, Option<&'a str>, &'a str, String, u16, &'a str);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_over_the_real_server_gets_problems_and_the_bus_keeps_serving() {
    let mut h = Harness::new("bad", Backend::Sqlite).await.expect("harness");
    // A small limit, so the oversized body still fits the socket buffers and the client
    // reads the 413 instead of a broken pipe.
    h.config.api.max_body_bytes = 64 * 1024;
    let bus = h.start().await.expect("bus");
    let url = format!("{}/v1/events", bus.base_url);
    let token = bus.tokens["dysart"].clone();
    let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let cases: Vec<Case<'_>> = vec![
        // name, token, content type, body, status, problem type
        (
            "no token",
            None,
            "application/cloudevents+json",
            "{}".into(),
            401,
            "/problems/unauthorized",
        ),
        (
            "bad token",
            Some("cbt_nope"),
            "application/cloudevents+json",
            "{}".into(),
            401,
            "/problems/unauthorized",
        ),
        (
            "wrong content type",
            Some(&token),
            "text/plain",
            "hello".into(),
            415,
            "/problems/unsupported-media-type",
        ),
        (
            "malformed json",
            Some(&token),
            "application/cloudevents+json",
            "{\"id\":".into(),
            400,
            "/problems/malformed-json",
        ),
        (
            "too deep",
            Some(&token),
            "application/cloudevents+json",
            format!("{{\"data\":{deep}}}"),
            400,
            "/problems/json-too-deep",
        ),
        (
            "missing type",
            Some(&token),
            "application/cloudevents+json",
            json!({"specversion":"1.0","id":"1","source":"/s"}).to_string(),
            400,
            "/problems/missing-attribute",
        ),
        (
            "over the size limit",
            Some(&token),
            "application/cloudevents+json",
            "x".repeat(100 * 1024),
            413,
            "/problems/too-large",
        ),
    ];
    for (name, tok, ct, body, status, ty) in cases {
        // A client per case: after refusing a body unread, the server closes that
        // connection, and a pooled client might reuse it for the next request.
        let client = reqwest::Client::new();
        let mut rb = client.post(&url).header("content-type", ct).body(body);
        if let Some(t) = tok {
            rb = rb.bearer_auth(t);
        }
        let resp = rb.send().await.expect(name);
        assert_eq!(resp.status().as_u16(), status, "{name}");
        assert_eq!(
            resp.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "{name}"
        );
        let p: Value = resp.json().await.expect("problem json");
        assert_eq!(p["type"], ty, "{name}: {p}");
        assert_eq!(p["status"], status, "{name}");
        assert!(
            p["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{name}"
        );
    }
    let (status, body) = bus
        .publish(
            "dysart",
            &permit_event("dysart", "still-1", "issued", "BP-1"),
        )
        .await
        .expect("post");
    assert_eq!(status, 202, "the bus keeps serving: {body}");
    bus.stop().await;
}
