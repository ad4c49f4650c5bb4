//! The HTTP API: CloudEvents ingest, event lookup, health. `app()` returns the axum
//! `Router`, so handlers are testable without a server.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use civicbus_core::CloudEvent;
use civicbus_core::binding::{HeaderPrefixes, parse_batch, parse_binary, parse_structured};
use civicbus_core::envelope::{BATCH_CONTENT_TYPE, STRUCTURED_CONTENT_TYPE};
use civicbus_core::error::EnvelopeError;
use civicbus_core::ports::{ArchivedEvent, EventQuery, EventStore};
use civicbus_router::{Ingest, IngestError, Submitter};
use serde::Deserialize;
use serde_json::{Value, json};

use super::problem::Problem;
use crate::auth::{Principal, TokenSet};

/// Longest a readiness check may take before `/readyz` answers 503.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(3);

/// Tells whether the bus can do its work right now.
#[async_trait]
pub trait Readiness: Send + Sync + 'static {
    /// `Ok` when ready; otherwise what is not.
    async fn check(&self) -> Result<(), String>;
}

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The ingest stage.
    pub ingest: Arc<Ingest>,
    /// Valid tokens.
    pub tokens: Arc<TokenSet>,
    /// The store, for lookups.
    pub store: Arc<dyn EventStore>,
    /// Readiness probe.
    pub readiness: Arc<dyn Readiness>,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Time allowed for the broker's confirm.
    pub request_timeout: Duration,
    /// `Retry-After` seconds on 503.
    pub retry_after_seconds: u32,
}

/// The API's routes.
pub fn app(state: ApiState) -> Router {
    Router::new()
        .route("/v1/events", post(post_events).get(search_events))
        .route("/v1/events/{tenant}/{id}", get(show_event))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "No such resource",
        "no endpoint at this path; events are posted to /v1/events",
    )
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "this endpoint does not accept that method; events are sent with POST /v1/events",
    )
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

async fn readyz(State(st): State<ApiState>) -> Response {
    let checked = tokio::time::timeout(READINESS_TIMEOUT, st.readiness.check())
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "readiness check did not finish within {}s (store or broker hanging)",
                READINESS_TIMEOUT.as_secs()
            ))
        });
    match checked {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "Not ready",
            why,
        )
        .retry_after(st.retry_after_seconds)
        .into_response(),
    }
}

fn authenticate<'a>(st: &'a ApiState, headers: &HeaderMap) -> Result<&'a Principal, Problem> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Problem::unauthorized(
            "no Authorization header; send `Authorization: Bearer <token>` with your tenant's API token",
        ));
    };
    // The scheme is case-insensitive (RFC 9110 section 11.1).
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(Problem::unauthorized(
            "the Authorization header is not `Bearer <token>`",
        ));
    };
    st.tokens.authenticate(token).ok_or_else(|| {
        Problem::unauthorized(
            "the token is not valid; check it, or ask an administrator for a new one",
        )
    })
}

fn envelope_problem(e: &EnvelopeError) -> Problem {
    let title = match e.kind {
        civicbus_core::EnvelopeErrorKind::MalformedJson => "Malformed JSON",
        civicbus_core::EnvelopeErrorKind::TooDeep => "JSON nested too deep",
        civicbus_core::EnvelopeErrorKind::MissingAttribute => "Missing CloudEvents attribute",
        civicbus_core::EnvelopeErrorKind::InvalidAttribute => "Invalid CloudEvents attribute",
        civicbus_core::EnvelopeErrorKind::UnsupportedMediaType => "Unsupported media type",
        civicbus_core::EnvelopeErrorKind::InvalidBatch => "Invalid batch",
        civicbus_core::EnvelopeErrorKind::TooLarge => "Too large",
    };
    let problem = Problem::new(StatusCode::BAD_REQUEST, e.kind.slug(), title, e.to_string());
    // A problem with the body as a whole (malformed JSON, too deep) names no field.
    if e.field.is_empty() {
        problem
    } else {
        problem.with_field(e.field.clone(), e.message.clone())
    }
}

fn media_essence(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

/// `POST /v1/events`: structured, batch or binary CloudEvents. 202 only after RabbitMQ
/// confirmed every event.
async fn post_events(State(st): State<ApiState>, headers: HeaderMap, body: Body) -> Response {
    match ingest_request(&st, &headers, body).await {
        Ok(n) => (
            StatusCode::ACCEPTED,
            [(header::CONTENT_TYPE, "application/json")],
            json!({ "accepted": n }).to_string(),
        )
            .into_response(),
        Err(p) => p.into_response(),
    }
}

async fn ingest_request(st: &ApiState, headers: &HeaderMap, body: Body) -> Result<usize, Problem> {
    let principal = authenticate(st, headers)?;
    let too_large = |what: String| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "Request too large",
            format!(
                "{what}, over the limit of {} bytes; split the batch, or send large documents by reference (the `dataref` extension)",
                st.max_body_bytes
            ),
        )
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > st.max_body_bytes as u64
    {
        return Err(too_large(format!("the body is {len} bytes")));
    }
    // The body must arrive within the request timeout (a slow sender cannot hold a
    // connection open forever); a larger body than the limit is refused while reading.
    let bytes = match tokio::time::timeout(
        st.request_timeout,
        axum::body::to_bytes(body, st.max_body_bytes),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => return Err(too_large("the body is larger".to_string())),
        Err(_) => {
            return Err(Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request body too slow",
                format!(
                    "the request body did not arrive within {:?}; send it faster or in smaller batches",
                    st.request_timeout
                ),
            ));
        }
    };

    let limits = st.ingest.limits().parse;
    let essence = media_essence(headers);
    let has_ce_headers = headers.keys().any(|k| k.as_str().starts_with("ce-"));
    let (events, batch): (Vec<CloudEvent>, bool) = match essence.as_deref() {
        Some(STRUCTURED_CONTENT_TYPE) => (
            vec![parse_structured(&bytes, &limits).map_err(|e| envelope_problem(&e))?],
            false,
        ),
        Some(BATCH_CONTENT_TYPE) => (
            parse_batch(&bytes, &limits).map_err(|e| envelope_problem(&e))?,
            true,
        ),
        _ if has_ce_headers => {
            let pairs: Vec<(&str, &str)> = headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
                .collect();
            if let Some((name, _)) = headers
                .iter()
                .find(|(k, v)| k.as_str().starts_with("ce-") && v.to_str().is_err())
            {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-attribute",
                    "Invalid CloudEvents attribute",
                    format!("{name}: header value is not visible ASCII; percent-encode it as the CloudEvents HTTP binding requires"),
                )
                .with_field(name.as_str(), "not visible ASCII"));
            }
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            (
                vec![
                    parse_binary(pairs, HeaderPrefixes::Http, ct, &bytes, &limits)
                        .map_err(|e| envelope_problem(&e))?,
                ],
                false,
            )
        }
        other => {
            let got = other.map_or_else(
                || "no Content-Type".to_string(),
                |c| format!("Content-Type `{c}`"),
            );
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                format!(
                    "{got} is not a CloudEvents binding; send application/cloudevents+json (one event), application/cloudevents-batch+json (a batch), or binary mode with ce-specversion, ce-id, ce-source and ce-type headers"
                ),
            ));
        }
    };

    let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok());
    let who = Submitter {
        tenant: &principal.tenant,
        actor: &principal.name,
        traceparent,
    };
    let submitted =
        tokio::time::timeout(st.request_timeout, st.ingest.submit(events, who, batch)).await;
    match submitted {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(IngestError::Invalid(e))) => Err(envelope_problem(&e)),
        Ok(Err(IngestError::Schema { field, rejection })) => Err(schema_problem(&field, &rejection)),
        Ok(Err(IngestError::TooLarge { field, size, limit })) => {
            let what = if field.is_empty() {
                "the event".to_string()
            } else {
                format!("event {field}")
            };
            let problem = Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Event too large",
                format!(
                    "{what} is {size} bytes encoded, over the limit of {limit} (limits.max_event_bytes); send large documents by reference (the `dataref` extension)"
                ),
            );
            // In a batch, name the event at fault.
            if field.is_empty() {
                Err(problem)
            } else {
                Err(problem.with_field(field, "over limits.max_event_bytes"))
            }
        }
        Ok(Err(e @ (IngestError::Unavailable(_) | IngestError::Rejected(_)))) => {
            tracing::warn!(error = %e, tenant = %principal.tenant, "ingest could not publish");
            Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "broker-unavailable",
                "Message broker unavailable",
                "RabbitMQ did not confirm the events, so they were not accepted; retry after the delay (re-sending the same ids is safe)",
            )
            .retry_after(st.retry_after_seconds))
        }
        Err(_) => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "broker-timeout",
            "Message broker did not confirm in time",
            format!(
                "RabbitMQ did not confirm within {} (api.request_timeout), so the events were not accepted; retry after the delay (re-sending the same ids is safe)",
                humantime::format_duration(st.request_timeout)
            ),
        )
        .retry_after(st.retry_after_seconds)),
    }
}

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    #[serde(rename = "type")]
    type_prefix: Option<String>,
    subject: Option<String>,
    source: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    limit: Option<u32>,
}

fn event_json(a: &ArchivedEvent) -> Value {
    json!({
        "received_at": a.received_at.to_rfc3339(),
        "actor": a.actor,
        "event": a.event.to_json(),
    })
}

fn store_problem(e: &civicbus_core::ports::PortError, retry: u32) -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store-unavailable",
        "Store unavailable",
        e.to_string(),
    )
    .retry_after(retry)
}

/// `GET /v1/events`: the credential's tenant's archived events, newest first.
async fn search_events(
    State(st): State<ApiState>,
    headers: HeaderMap,
    params: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let principal = match authenticate(&st, &headers) {
        Ok(p) => p,
        Err(p) => return p.into_response(),
    };
    let Query(params) = match params {
        Ok(q) => q,
        Err(e) => {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-query",
                "Invalid query",
                e.body_text(),
            )
            .into_response();
        }
    };
    let query = EventQuery {
        tenant: Some(principal.tenant.clone()),
        type_prefix: params.type_prefix,
        subject: params.subject,
        source: params.source,
        since: params.since,
        until: params.until,
        limit: params.limit.unwrap_or(100).clamp(1, 1000),
    };
    match st.store.search_events(&query).await {
        Ok(events) => {
            let list: Vec<Value> = events.iter().map(event_json).collect();
            axum::Json(json!({ "events": list })).into_response()
        }
        Err(e) => store_problem(&e, st.retry_after_seconds).into_response(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowParams {
    source: String,
}

/// `GET /v1/events/{tenant}/{id}?source=…`: one event with its delivery attempts.
async fn show_event(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Path((tenant, id)): Path<(String, String)>,
    params: Result<Query<ShowParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let principal = match authenticate(&st, &headers) {
        Ok(p) => p,
        Err(p) => return p.into_response(),
    };
    let Query(params) = match params {
        Ok(q) => q,
        Err(e) => {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-query",
                "Invalid query",
                format!(
                    "{}; name the event's source, e.g. ?source=/dysart/permitting",
                    e.body_text()
                ),
            )
            .into_response();
        }
    };
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            "event-not-found",
            "No such event",
            format!(
                "no event `{id}` from `{}` in your tenant's archive",
                params.source
            ),
        )
        .into_response()
    };
    if tenant != principal.tenant {
        return not_found();
    }
    let event = match st.store.get_event(&tenant, &params.source, &id).await {
        Ok(Some(e)) => e,
        Ok(None) => return not_found(),
        Err(e) => return store_problem(&e, st.retry_after_seconds).into_response(),
    };
    let attempts = match st
        .store
        .attempts_for_event(&tenant, &params.source, &id)
        .await
    {
        Ok(a) => a,
        Err(e) => return store_problem(&e, st.retry_after_seconds).into_response(),
    };
    let attempts: Vec<Value> = attempts
        .iter()
        .map(|a| {
            json!({
                "subscription": a.subscription,
                "webhook_id": a.idempotency_key,
                "attempt": a.attempt,
                "status": a.status.as_str(),
                "response_code": a.response_code,
                "error": a.error,
                "duration_ms": a.duration.as_secs_f64() * 1000.0,
                "at": a.at.to_rfc3339(),
            })
        })
        .collect();
    let mut body = event_json(&event);
    body["attempts"] = Value::Array(attempts);
    axum::Json(body).into_response()
}

/// 422 for an event refused by the schema registry: one `errors[]` entry per violation,
/// with the JSON pointer into `data`, the schema keyword and what is wrong.
fn schema_problem(field: &str, rejection: &civicbus_core::ports::SchemaRejection) -> Problem {
    use civicbus_core::ports::SchemaRejectionKind;
    let (slug, title) = match rejection.kind {
        SchemaRejectionKind::Invalid => {
            ("schema-violation", "Event data does not match its schema")
        }
        SchemaRejectionKind::UnknownType => ("unknown-event-type", "No schema for the event type"),
        SchemaRejectionKind::UnknownSchema => ("unknown-dataschema", "Unknown dataschema"),
    };
    let prefix = if field.is_empty() {
        String::new()
    } else {
        format!("{field}.")
    };
    let mut problem = Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        slug,
        title,
        if field.is_empty() {
            rejection.message.clone()
        } else {
            format!("event {field}: {}", rejection.message)
        },
    );
    if let Some(schema) = &rejection.schema {
        problem = problem.with_schema(schema);
    }
    if rejection.violations.is_empty() {
        let attribute = match rejection.kind {
            SchemaRejectionKind::UnknownSchema => "dataschema",
            _ => "type",
        };
        return problem.with_field(format!("{prefix}{attribute}"), rejection.message.clone());
    }
    for v in &rejection.violations {
        problem = problem.with_violation(
            format!("{prefix}data{}", v.pointer),
            v.pointer.clone(),
            v.keyword.clone(),
            v.message.clone(),
        );
    }
    problem
}
