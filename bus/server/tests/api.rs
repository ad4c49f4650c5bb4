//! The HTTP API as a client sees it: every refusal is an RFC 9457 problem naming the
//! field at fault, every acceptance means the (fake) broker confirmed, the tenant comes
//! from the token, and the token never leaks.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use bytes::Bytes;
use chrono::{TimeZone as _, Utc};
use civicbus_core::CloudEvent;
use civicbus_core::ports::{ArchivedEvent, AttemptStatus, DeliveryAttempt, Destination};
use serde_json::{Value, json};
use support::{
    Behaviour, COUNTY_TOKEN, Harness, MAX_BATCH_EVENTS, MAX_BODY_BYTES, MAX_EVENT_BYTES,
    MAX_JSON_DEPTH, REQUEST_TIMEOUT, RETRY_AFTER, Reply, TENANT, TOKEN, TOKEN_NAME,
};

const STRUCTURED: &str = "application/cloudevents+json";
const BATCH: &str = "application/cloudevents-batch+json";
const ISSUED: &str = "ca.haliburton.permitting.permit.issued";
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

/// A valid structured event.
fn event(id: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "/dysart/permitting",
        "type": ISSUED,
        "subject": "BP-2026-0147",
        "time": "2026-03-02T14:03:00Z",
        "datacontenttype": "application/json",
        "data": { "PermitNum": "BP-2026-0147", "PermitType": "Building" },
    })
}

/// `event(id)` with `key` set to `value` (`Value::Null` removes it).
fn event_with(id: &str, key: &str, value: Value) -> Value {
    let mut ev = event(id);
    let map = ev.as_object_mut().expect("object");
    if value.is_null() {
        map.remove(key);
    } else {
        map.insert(key.to_string(), value);
    }
    ev
}

/// `POST /v1/events` with an Authorization header (`None`: none), a content type and
/// further headers.
fn post_as(
    authorization: Option<&str>,
    content_type: Option<&str>,
    headers: &[(&str, &[u8])],
    body: impl Into<Body>,
) -> Request<Body> {
    let mut b = Request::post("/v1/events");
    if let Some(a) = authorization {
        b = b.header(header::AUTHORIZATION, a);
    }
    if let Some(ct) = content_type {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    for (name, value) in headers {
        let value = HeaderValue::from_bytes(value).expect("a header value http accepts");
        b = b.header(*name, value);
    }
    b.body(body.into()).expect("request builds")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `POST /v1/events` as Dysart.
fn post(
    content_type: Option<&str>,
    headers: &[(&str, &[u8])],
    body: impl Into<Body>,
) -> Request<Body> {
    post_as(Some(&bearer(TOKEN)), content_type, headers, body)
}

fn structured(body: impl Into<Body>) -> Request<Body> {
    post(Some(STRUCTURED), &[], body)
}

fn batch(events: &[Value]) -> Request<Body> {
    post(Some(BATCH), &[], Value::Array(events.to_vec()).to_string())
}

/// The headers of a valid binary-mode event, with `replace` applied (an empty value
/// drops the header).
fn binary_headers<'a>(replace: &[(&'a str, &'a [u8])]) -> Vec<(&'a str, &'a [u8])> {
    let mut h: Vec<(&str, &[u8])> = vec![
        ("ce-specversion", b"1.0"),
        ("ce-id", b"dys-9004"),
        ("ce-source", b"/dysart/permitting"),
        ("ce-type", b"ca.haliburton.permitting.permit.closed"),
        ("ce-time", b"2026-03-02T14:03:00Z"),
    ];
    for (name, value) in replace {
        h.retain(|(n, _)| n != name);
        if !value.is_empty() {
            h.push((name, value));
        }
    }
    h
}

fn binary(replace: &[(&str, &[u8])], body: &str) -> Request<Body> {
    post(
        Some("application/json"),
        &binary_headers(replace),
        body.to_string(),
    )
}

fn get(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::get(uri);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, bearer(t));
    }
    b.body(Body::empty()).expect("request builds")
}

/// JSON nested `depth` arrays deep.
fn nested(depth: usize) -> Value {
    let text = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    serde_json::from_str(&text).expect("nested JSON")
}

// ---------------------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------------------

/// What a refused request must get back.
struct Expect {
    status: u16,
    /// The problem type slug (`/problems/<slug>`).
    slug: &'static str,
    /// `errors[0].field`, or `None` when no single field is at fault.
    field: Option<&'static str>,
}

const fn expect(status: u16, slug: &'static str, field: Option<&'static str>) -> Expect {
    Expect {
        status,
        slug,
        field,
    }
}

fn assert_problem(name: &str, reply: &Reply, want: &Expect) {
    let body = reply.text();
    assert_eq!(
        reply.status.as_u16(),
        want.status,
        "{name}: status; body {body}"
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json"),
        "{name}: content type; body {body}"
    );
    let p = reply.json();
    assert_eq!(
        p["type"],
        format!("/problems/{}", want.slug),
        "{name}: problem type; body {body}"
    );
    assert_eq!(p["status"], want.status, "{name}: problem status");
    for key in ["title", "detail"] {
        assert!(
            p[key].as_str().is_some_and(|s| !s.is_empty()),
            "{name}: problem has a {key}; body {body}"
        );
    }
    match want.field {
        Some(field) => assert_eq!(
            p["errors"][0]["field"], field,
            "{name}: errors[0].field; body {body}"
        ),
        None => assert!(
            p.get("errors").is_none(),
            "{name}: no field is at fault, so no errors[]; body {body}"
        ),
    }
    if want.status == 401 {
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Bearer realm=\"civicbus\""),
            "{name}: 401 carries the challenge"
        );
    }
    if want.status == 503 {
        assert_eq!(
            reply.header("retry-after"),
            Some(RETRY_AFTER.to_string().as_str()),
            "{name}: 503 says when to retry"
        );
    }
}

fn accepted(reply: &Reply, n: usize) {
    assert_eq!(reply.status, StatusCode::ACCEPTED, "body {}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json(), json!({ "accepted": n }));
}

// ---------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------

/// Every way a request can be refused, each with what the client gets back.
fn refusals() -> Vec<(&'static str, Request<Body>, Expect)> {
    let ok = event("dys-1").to_string();
    let unauthorized = expect(401, "unauthorized", None);
    let too_large = expect(413, "too-large", None);
    let over_limit = MAX_BODY_BYTES as u64 + 1;
    let chunks =
        (0..=MAX_BODY_BYTES / 1024).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 1024])));
    let big_data = "x".repeat(MAX_EVENT_BYTES);
    vec![
        // Credentials.
        (
            "no Authorization",
            post_as(None, Some(STRUCTURED), &[], ok.clone()),
            unauthorized,
        ),
        (
            "Basic credentials",
            post_as(
                Some("Basic ZHlzYXJ0OnNlY3JldA=="),
                Some(STRUCTURED),
                &[],
                ok.clone(),
            ),
            expect(401, "unauthorized", None),
        ),
        (
            "unknown token",
            post_as(
                Some("Bearer cbt_not-a-token-anyone-was-given"),
                Some(STRUCTURED),
                &[],
                ok.clone(),
            ),
            expect(401, "unauthorized", None),
        ),
        (
            "empty bearer token",
            post_as(Some("Bearer "), Some(STRUCTURED), &[], ok.clone()),
            expect(401, "unauthorized", None),
        ),
        // Size, before the body is read: this body never ends.
        (
            "Content-Length over api.max_body_bytes",
            {
                let mut r = post(
                    Some(STRUCTURED),
                    &[],
                    Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>()),
                );
                r.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(over_limit));
                r
            },
            too_large,
        ),
        (
            "chunked body over api.max_body_bytes, no Content-Length",
            post(
                Some(STRUCTURED),
                &[],
                Body::from_stream(futures::stream::iter(chunks)),
            ),
            expect(413, "too-large", None),
        ),
        // Media type.
        (
            "text/plain without ce- headers",
            post(Some("text/plain"), &[], "permit issued"),
            expect(415, "unsupported-media-type", None),
        ),
        (
            "no Content-Type",
            post(None, &[], ok.clone()),
            expect(415, "unsupported-media-type", None),
        ),
        (
            "application/json without ce- headers",
            post(Some("application/json"), &[], ok.clone()),
            expect(415, "unsupported-media-type", None),
        ),
        // Structured mode.
        (
            "malformed JSON",
            structured(r#"{"specversion":"1.0","id":"#),
            expect(400, "malformed-json", None),
        ),
        (
            "a JSON array sent as one event",
            structured(format!("[{ok}]")),
            expect(400, "malformed-json", None),
        ),
        (
            "missing type",
            structured(event_with("dys-2", "type", Value::Null).to_string()),
            expect(400, "missing-attribute", Some("type")),
        ),
        (
            "type not a string",
            structured(event_with("dys-2", "type", json!(7)).to_string()),
            expect(400, "invalid-attribute", Some("type")),
        ),
        (
            "specversion 0.3",
            structured(event_with("dys-3", "specversion", json!("0.3")).to_string()),
            expect(400, "invalid-attribute", Some("specversion")),
        ),
        (
            "time not RFC 3339",
            structured(event_with("dys-3", "time", json!("yesterday")).to_string()),
            expect(400, "invalid-attribute", Some("time")),
        ),
        (
            "data nested deeper than limits.max_json_depth",
            structured(event_with("dys-4", "data", nested(MAX_JSON_DEPTH + 1)).to_string()),
            expect(400, "json-too-deep", None),
        ),
        (
            "tenant attribute of another tenant",
            structured(event_with("dys-5", "tenant", json!("county")).to_string()),
            expect(400, "invalid-attribute", Some("tenant")),
        ),
        (
            "invalid traceparent header",
            post(
                Some(STRUCTURED),
                &[("traceparent", b"00-not-a-trace")],
                ok.clone(),
            ),
            expect(400, "invalid-attribute", Some("traceparent")),
        ),
        (
            "event over limits.max_event_bytes",
            structured(event_with("dys-6", "data", json!({ "blob": big_data })).to_string()),
            expect(413, "too-large", None),
        ),
        // Batch mode.
        (
            "batch: the third event has no source",
            batch(&[
                event("dys-b1"),
                event("dys-b2"),
                event_with("dys-b3", "source", Value::Null),
            ]),
            expect(400, "missing-attribute", Some("[2].source")),
        ),
        (
            "batch: the second entry is not an object",
            batch(&[event("dys-b1"), json!("dys-b2")]),
            expect(400, "malformed-json", Some("[1]")),
        ),
        (
            "batch: the second event claims another tenant",
            batch(&[
                event("dys-b1"),
                event_with("dys-b2", "tenant", json!("county")),
            ]),
            expect(400, "invalid-attribute", Some("[1].tenant")),
        ),
        (
            "batch: the second event is over limits.max_event_bytes",
            batch(&[
                event("dys-b1"),
                event_with("dys-b2", "data", json!(big_data)),
            ]),
            expect(413, "too-large", Some("[1]")),
        ),
        (
            "batch over limits.max_batch_events",
            batch(
                &(0..=MAX_BATCH_EVENTS)
                    .map(|i| event(&format!("dys-b{i}")))
                    .collect::<Vec<_>>(),
            ),
            expect(400, "invalid-batch", None),
        ),
        (
            "batch that is an object",
            post(Some(BATCH), &[], ok.clone()),
            expect(400, "invalid-batch", None),
        ),
        // Binary mode.
        (
            "binary: no ce-id",
            binary(&[("ce-id", b"")], "{}"),
            expect(400, "missing-attribute", Some("ce-id")),
        ),
        (
            "binary: ce-id given twice",
            {
                let mut r = binary(&[], "{}");
                r.headers_mut()
                    .append("ce-id", HeaderValue::from_static("dys-9005"));
                r
            },
            expect(400, "invalid-attribute", Some("ce-id")),
        ),
        (
            "binary: ce-time not RFC 3339",
            binary(&[("ce-time", b"2026-13-45")], "{}"),
            expect(400, "invalid-attribute", Some("ce-time")),
        ),
        (
            "binary: ce-specversion 0.3",
            binary(&[("ce-specversion", b"0.3")], "{}"),
            expect(400, "invalid-attribute", Some("ce-specversion")),
        ),
        (
            "binary: a header value that is not visible ASCII",
            binary(&[("ce-subject", "BP-2026-0147 é".as_bytes())], "{}"),
            expect(400, "invalid-attribute", Some("ce-subject")),
        ),
        (
            "binary: ce-tenant of another tenant",
            binary(&[("ce-tenant", b"county")], "{}"),
            expect(400, "invalid-attribute", Some("tenant")),
        ),
        (
            "binary: body not JSON though declared so",
            binary(&[], "{PermitNum"),
            expect(400, "malformed-json", Some("data")),
        ),
        (
            "binary: body nested too deep",
            binary(&[], &nested(MAX_JSON_DEPTH + 1).to_string()),
            expect(400, "json-too-deep", Some("data")),
        ),
        (
            "binary: event over limits.max_event_bytes",
            post(Some("text/plain"), &binary_headers(&[]), big_data.clone()),
            expect(413, "too-large", None),
        ),
        // Routing.
        (
            "unknown path",
            get("/v2/events", Some(TOKEN)),
            expect(404, "not-found", None),
        ),
        (
            "unknown path, no credential",
            get("/admin", None),
            expect(404, "not-found", None),
        ),
        (
            "PUT /v1/events",
            Request::put("/v1/events")
                .body(Body::empty())
                .expect("request"),
            expect(405, "method-not-allowed", None),
        ),
        (
            "POST /healthz",
            Request::post("/healthz")
                .body(Body::empty())
                .expect("request"),
            expect(405, "method-not-allowed", None),
        ),
    ]
}

#[tokio::test]
async fn every_refusal_is_a_problem_naming_the_field() {
    let h = Harness::new();
    for (name, request, want) in refusals() {
        let reply = h.send(request).await;
        assert_problem(name, &reply, &want);
    }
    assert!(
        h.publisher.take().is_empty(),
        "nothing refused reaches the broker"
    );
    // The service keeps serving after all that.
    let reply = h.send(structured(event("dys-after").to_string())).await;
    accepted(&reply, 1);
    assert_eq!(h.publisher.take().len(), 1);
}

#[tokio::test]
async fn wrong_method_names_the_allowed_ones() {
    let h = Harness::new();
    let reply = h
        .send(
            Request::delete("/v1/events")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_problem(
        "DELETE /v1/events",
        &reply,
        &expect(405, "method-not-allowed", None),
    );
    let allow = reply.header("allow").unwrap_or_default();
    for m in ["GET", "POST"] {
        assert!(allow.contains(m), "Allow lists {m}: {allow:?}");
    }
}

#[tokio::test]
async fn broker_unavailable_is_503_with_retry_after() {
    let h = Harness::new();
    h.publisher.set(Behaviour::Unavailable);
    for (name, request) in [
        ("structured", structured(event("dys-u1").to_string())),
        ("batch", batch(&[event("dys-u2"), event("dys-u3")])),
        ("binary", binary(&[], "{}")),
    ] {
        let reply = h.send(request).await;
        assert_problem(name, &reply, &expect(503, "broker-unavailable", None));
    }
    // RabbitMQ is back: the same event is accepted.
    h.publisher.set(Behaviour::Confirm);
    accepted(&h.send(structured(event("dys-u1").to_string())).await, 1);
}

#[tokio::test]
async fn broker_that_never_confirms_is_503_after_the_request_timeout() {
    let h = Harness::new();
    h.publisher.set(Behaviour::Hang);
    let started = Instant::now();
    let reply = h.send(structured(event("dys-h1").to_string())).await;
    let took = started.elapsed();
    assert_problem("hang", &reply, &expect(503, "broker-timeout", None));
    assert!(took >= REQUEST_TIMEOUT, "waited the timeout, took {took:?}");
    assert!(
        took < REQUEST_TIMEOUT * 10,
        "did not wait much longer, took {took:?}"
    );
    let detail = reply.json()["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        detail.contains("200ms"),
        "the detail names the timeout as configured: {detail}"
    );
    h.publisher.set(Behaviour::Confirm);
    accepted(&h.send(structured(event("dys-h1").to_string())).await, 1);
}

// ---------------------------------------------------------------------------------------
// Acceptance
// ---------------------------------------------------------------------------------------

/// The header of a published message.
fn header_of<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn routing_key(d: &Destination) -> &str {
    match d {
        Destination::Events { routing_key } => routing_key,
        other => panic!("published to {other:?}, not the events exchange"),
    }
}

#[tokio::test]
async fn structured_event_is_stamped_with_the_tokens_tenant() {
    let h = Harness::new();
    let request = post(
        Some("application/cloudevents+json; charset=utf-8"),
        &[("traceparent", TRACEPARENT.as_bytes())],
        event("dys-9003").to_string(),
    );
    accepted(&h.send(request).await, 1);

    let published = h.publisher.take();
    assert_eq!(published.len(), 1);
    let (dest, msg) = &published[0];
    assert_eq!(routing_key(dest), format!("{TENANT}.{ISSUED}"));
    assert_eq!(msg.content_type, STRUCTURED);
    assert_eq!(msg.message_id.as_deref(), Some("dys-9003"));
    assert_eq!(
        header_of(&msg.headers, "x-civicbus-actor"),
        Some(TOKEN_NAME)
    );
    assert_eq!(header_of(&msg.headers, "cloudEvents_tenant"), Some(TENANT));
    assert_eq!(header_of(&msg.headers, "traceparent"), Some(TRACEPARENT));
    let body: Value = serde_json::from_slice(&msg.body).expect("structured JSON");
    assert_eq!(body["tenant"], TENANT);
    assert_eq!(body["traceparent"], TRACEPARENT);
    assert_eq!(body["subject"], "BP-2026-0147");
    assert_eq!(body["data"]["PermitNum"], "BP-2026-0147");
}

#[tokio::test]
async fn an_event_naming_its_own_tenant_is_accepted() {
    let h = Harness::new();
    let ev = event_with("dys-own", "tenant", json!(TENANT));
    accepted(&h.send(structured(ev.to_string())).await, 1);
    // The county's token stamps the county.
    let request = post_as(
        Some(&bearer(COUNTY_TOKEN)),
        Some(STRUCTURED),
        &[],
        event("c-1").to_string(),
    );
    accepted(&h.send(request).await, 1);
    let published = h.publisher.take();
    assert_eq!(routing_key(&published[1].0), format!("county.{ISSUED}"));
    assert_eq!(
        header_of(&published[1].1.headers, "x-civicbus-actor"),
        Some("county-gis")
    );
}

#[tokio::test]
async fn binary_event_headers_are_percent_decoded() {
    let h = Harness::new();
    let request = binary(
        &[
            ("ce-subject", b"BP-2026%2F0147%20%C3%A9"),
            ("ce-partitionkey", b"parcel%3A4620"),
            ("traceparent", TRACEPARENT.as_bytes()),
        ],
        r#"{"PermitNum":"BP-2026-0147"}"#,
    );
    accepted(&h.send(request).await, 1);
    let published = h.publisher.take();
    assert_eq!(published.len(), 1);
    let (dest, msg) = &published[0];
    assert_eq!(
        routing_key(dest),
        format!("{TENANT}.ca.haliburton.permitting.permit.closed")
    );
    let body: Value = serde_json::from_slice(&msg.body).expect("structured JSON");
    assert_eq!(body["subject"], "BP-2026/0147 é");
    assert_eq!(body["partitionkey"], "parcel:4620");
    assert_eq!(body["tenant"], TENANT);
    assert_eq!(body["traceparent"], TRACEPARENT);
    assert_eq!(body["datacontenttype"], "application/json");
    assert_eq!(body["data"], json!({ "PermitNum": "BP-2026-0147" }));
    assert_eq!(
        header_of(&msg.headers, "x-civicbus-actor"),
        Some(TOKEN_NAME)
    );
}

#[tokio::test]
async fn batch_of_three_is_published_in_order() {
    let h = Harness::new();
    let ids = ["dys-b1", "dys-b2", "dys-b3"];
    let events: Vec<Value> = ids.iter().map(|id| event(id)).collect();
    accepted(&h.send(batch(&events)).await, 3);
    let published = h.publisher.take();
    let got: Vec<&str> = published
        .iter()
        .map(|(_, m)| m.message_id.as_deref().unwrap_or_default())
        .collect();
    assert_eq!(got, ids);
    for (dest, msg) in &published {
        assert_eq!(routing_key(dest), format!("{TENANT}.{ISSUED}"));
        assert_eq!(header_of(&msg.headers, "cloudEvents_tenant"), Some(TENANT));
        assert_eq!(
            header_of(&msg.headers, "x-civicbus-actor"),
            Some(TOKEN_NAME)
        );
    }
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let h = Harness::new();
    for auth in [
        format!("bearer {TOKEN}"),
        format!("BEARER {TOKEN}"),
        format!("Bearer  {TOKEN} "),
    ] {
        let request = post_as(
            Some(&auth),
            Some(STRUCTURED),
            &[],
            event("dys-case").to_string(),
        );
        accepted(&h.send(request).await, 1);
    }
}

#[tokio::test]
async fn empty_batch_is_accepted_and_publishes_nothing() {
    let h = Harness::new();
    accepted(&h.send(batch(&[])).await, 0);
    assert!(h.publisher.take().is_empty());
}

// ---------------------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn healthz_and_readyz() {
    let h = Harness::new();
    let reply = h.send(get("/healthz", None)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = h.send(get("/readyz", None)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());

    h.readiness.set(false);
    let reply = h.send(get("/readyz", None)).await;
    assert_problem("not ready", &reply, &expect(503, "not-ready", None));
    assert!(
        reply.json()["detail"]
            .as_str()
            .is_some_and(|d| d.contains("RabbitMQ"))
    );
    // Liveness does not depend on readiness.
    assert_eq!(h.send(get("/healthz", None)).await.status, StatusCode::OK);

    h.readiness.set(true);
    assert_eq!(h.send(get("/readyz", None)).await.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// Lookups
// ---------------------------------------------------------------------------------------

fn archived(tenant: &str, id: &str, ty: &str, minute: u32) -> ArchivedEvent {
    let mut event = CloudEvent::new(id, format!("/{tenant}/system"), ty).expect("valid event");
    event.set_tenant(tenant);
    ArchivedEvent {
        event,
        tenant: tenant.into(),
        received_at: Utc
            .with_ymd_and_hms(2026, 3, 2, 14, minute, 0)
            .single()
            .expect("a time"),
        actor: format!("{tenant}-system"),
    }
}

fn seeded() -> Harness {
    let h = Harness::new();
    h.store.add(archived("dysart", "d-1", ISSUED, 1));
    h.store.add(archived(
        "county",
        "c-1",
        "ca.haliburton.gis.address.updated",
        2,
    ));
    h.store.add(archived(
        "dysart",
        "d-2",
        "ca.haliburton.permitting.permit.closed",
        3,
    ));
    h.store.add(archived("highlands-east", "he-1", ISSUED, 4));
    h
}

fn ids(reply: &Reply) -> Vec<String> {
    reply.json()["events"]
        .as_array()
        .expect("an events array")
        .iter()
        .map(|e| e["event"]["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn search_returns_only_the_credentials_tenant() {
    let h = seeded();
    let reply = h.send(get("/v1/events", Some(TOKEN))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(ids(&reply), ["d-2", "d-1"], "Dysart's, newest first");
    for e in reply.json()["events"].as_array().into_iter().flatten() {
        assert_eq!(e["event"]["tenant"], "dysart");
    }
    assert_eq!(h.store.queries()[0].tenant.as_deref(), Some("dysart"));

    let reply = h.send(get("/v1/events", Some(COUNTY_TOKEN))).await;
    assert_eq!(ids(&reply), ["c-1"]);

    let reply = h
        .send(get(
            &format!("/v1/events?type={ISSUED}&limit=5"),
            Some(TOKEN),
        ))
        .await;
    assert_eq!(ids(&reply), ["d-1"]);
    let q = h.store.queries().pop().expect("a query");
    assert_eq!(q.type_prefix.as_deref(), Some(ISSUED));
    assert_eq!(q.limit, 5);
}

#[tokio::test]
async fn search_refuses_what_it_does_not_understand() {
    let h = seeded();
    let bad = expect(400, "invalid-query", None);
    for (name, uri) in [
        ("unknown parameter", "/v1/events?colour=red"),
        (
            "a tenant parameter cannot widen the search",
            "/v1/events?tenant=county",
        ),
        ("limit not a number", "/v1/events?limit=many"),
        ("since not a timestamp", "/v1/events?since=yesterday"),
    ] {
        let reply = h.send(get(uri, Some(TOKEN))).await;
        assert_problem(name, &reply, &bad);
    }
    let reply = h.send(get("/v1/events", None)).await;
    assert_problem("no credential", &reply, &expect(401, "unauthorized", None));
    assert!(h.store.queries().is_empty(), "nothing reached the store");
}

#[tokio::test]
async fn show_finds_only_the_credentials_tenants_events() {
    let h = seeded();
    h.store.add_attempt(DeliveryAttempt {
        idempotency_key: "msg_dysart-1".into(),
        tenant: "dysart".into(),
        subscription: "dysart.records-permits".into(),
        event_tenant: "dysart".into(),
        event_source: "/dysart/system".into(),
        event_id: "d-1".into(),
        attempt: 1,
        status: AttemptStatus::Delivered,
        response_code: Some(204),
        error: None,
        duration: Duration::from_millis(12),
        at: Utc::now(),
    });
    let reply = h
        .send(get(
            "/v1/events/dysart/d-1?source=/dysart/system",
            Some(TOKEN),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["event"]["id"], "d-1");
    assert_eq!(body["attempts"][0]["status"], "delivered");
    assert_eq!(body["attempts"][0]["webhook_id"], "msg_dysart-1");

    // Another tenant's event is not found (not "forbidden": its existence is not told).
    let reply = h
        .send(get(
            "/v1/events/county/c-1?source=/county/system",
            Some(TOKEN),
        ))
        .await;
    assert_problem(
        "other tenant",
        &reply,
        &expect(404, "event-not-found", None),
    );
    let reply = h.send(get("/v1/events/dysart/d-1", Some(TOKEN))).await;
    assert_problem("no source", &reply, &expect(400, "invalid-query", None));
}

// ---------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        let buf = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .write(data)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn tokens_never_appear_in_responses_or_logs() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    // The test runtime is single-threaded, so the subscriber sees every handler.
    let _guard = tracing::subscriber::set_default(subscriber);

    let wrong = "cbt_wrong-but-secret-looking-token";
    let h = Harness::new();
    let mut replies = Vec::new();
    for (name, request, _) in refusals() {
        replies.push((name.to_string(), h.send(request).await));
    }
    for auth in [
        bearer(wrong),
        format!("Basic {TOKEN}"),
        format!("Bearer {TOKEN}x"),
        format!("bearer  {wrong} "),
        format!("Token {TOKEN}"),
    ] {
        let request = post_as(Some(&auth), Some(STRUCTURED), &[], event("s-1").to_string());
        replies.push((auth.clone(), h.send(request).await));
    }
    h.publisher.set(Behaviour::Unavailable);
    replies.push((
        "unavailable".into(),
        h.send(structured(event("s-2").to_string())).await,
    ));
    h.publisher.set(Behaviour::Hang);
    replies.push((
        "hang".into(),
        h.send(structured(event("s-3").to_string())).await,
    ));
    h.publisher.set(Behaviour::Confirm);
    replies.push((
        "ok".into(),
        h.send(structured(event("s-4").to_string())).await,
    ));
    replies.push((
        "search".into(),
        h.send(get("/v1/events?colour=red", Some(TOKEN))).await,
    ));

    let secrets = [TOKEN, COUNTY_TOKEN, wrong];
    for (name, reply) in &replies {
        let mut seen = reply.text();
        for (k, v) in &reply.headers {
            seen.push_str(&format!("\n{k}: {}", String::from_utf8_lossy(v.as_bytes())));
        }
        for s in secrets {
            assert!(
                !seen.contains(s),
                "{name}: the response shows a token: {seen}"
            );
        }
    }
    let logged = logs.text();
    assert!(
        logged.contains("ingest could not publish"),
        "the capture works: the broker failure was logged:\n{logged}"
    );
    for s in secrets {
        assert!(!logged.contains(s), "a token was logged:\n{logged}");
    }
    // And nothing of the payload is logged either.
    assert!(
        !logged.contains("BP-2026-0147"),
        "a payload was logged:\n{logged}"
    );
}
