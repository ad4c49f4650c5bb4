//! The webhook sink: one shared HTTP client, CloudEvents over HTTP, Standard Webhooks
//! signatures, and the classification of every result.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use civicbus_core::CloudEvent;
use civicbus_core::binding::percent_encode;
use civicbus_core::envelope::Data;
use civicbus_core::ports::{DeliveryRequest, Sink, SinkOutcome};
use civicbus_core::subscription::{HttpMode, SinkSpec, WebhookSpec};
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION, RETRY_AFTER};
use reqwest::Url;

use crate::classify::{
    NO_RETRY_HEADER, ResponseHints, body_excerpt, classify_error, classify_status, display_url,
    is_no_retry, parse_retry_after,
};
use crate::signature::{
    HEADER_WEBHOOK_ID, HEADER_WEBHOOK_SIGNATURE, HEADER_WEBHOOK_TIMESTAMP, secret_parts,
    signature_header,
};

/// The timeout used when a subscription's `timeout` is zero.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Header carrying the W3C trace context to the subscriber.
pub const HEADER_TRACEPARENT: &str = "traceparent";

/// Content type of a structured-mode delivery.
pub const STRUCTURED_CONTENT_TYPE_UTF8: &str = "application/cloudevents+json; charset=utf-8";

/// Settings of the shared HTTP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookOptions {
    /// `User-Agent` sent with every delivery.
    pub user_agent: String,
    /// Most bytes of a response body read (to quote in a failure reason and to let the
    /// connection be reused); the rest is discarded and the connection closed.
    pub max_response_bytes: usize,
    /// Time allowed to establish a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept for reuse.
    pub pool_idle_timeout: Duration,
    /// Most idle connections kept per host.
    pub pool_max_idle_per_host: usize,
}

impl Default for WebhookOptions {
    /// `civicbus-webhook/<version>`, 64 KiB, 10 s connect, 90 s idle, 32 idle per host.
    fn default() -> Self {
        WebhookOptions {
            user_agent: format!("civicbus-webhook/{}", env!("CARGO_PKG_VERSION")),
            max_response_bytes: 64 * 1024,
            connect_timeout: Duration::from_secs(10),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 32,
        }
    }
}

/// The HTTP client could not be built (bad user agent, TLS initialisation).
#[derive(Debug, thiserror::Error)]
#[error("could not build the webhook HTTP client: {0}")]
pub struct BuildError(String);

/// Delivers events to webhook subscriptions: CloudEvents HTTP binding (binary or
/// structured), signed per Standard Webhooks with every secret of the subscription
/// (`v1` HMAC for `whsec_` secrets, `v1a` ed25519 for `whsk_` keys).
///
/// Clone it freely: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct WebhookSink {
    client: reqwest::Client,
    options: WebhookOptions,
}

impl WebhookSink {
    /// A sink with one pooled HTTP client built from `options`. Redirects are never
    /// followed (a redirect is a terminal failure naming the new location).
    pub fn new(options: WebhookOptions) -> Result<Self, BuildError> {
        let user_agent = HeaderValue::from_str(&options.user_agent).map_err(|_| {
            BuildError("the user agent must be visible ASCII (no control characters)".into())
        })?;
        let client = reqwest::Client::builder()
            .user_agent(user_agent)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(options.connect_timeout)
            .pool_idle_timeout(options.pool_idle_timeout)
            .pool_max_idle_per_host(options.pool_max_idle_per_host)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| BuildError(error_text(&e)))?;
        Ok(WebhookSink { client, options })
    }

    /// The options this sink was built with.
    pub fn options(&self) -> &WebhookOptions {
        &self.options
    }

    /// Deliver one event to one webhook endpoint and classify the result.
    ///
    /// `idempotency_key` is sent as `webhook-id`; `traceparent`, when given, is forwarded.
    pub async fn deliver_to(
        &self,
        spec: &WebhookSpec,
        event: &CloudEvent,
        idempotency_key: &str,
        traceparent: Option<&str>,
    ) -> SinkOutcome {
        let url = match parse_url(&spec.url) {
            Ok(u) => u,
            Err(reason) => {
                return SinkOutcome::Terminal {
                    status: None,
                    reason,
                };
            }
        };
        let shown = display_url(&url);
        let host = url.host_str().unwrap_or_default().to_string();

        let (body, mut headers) = match encode(event, spec.mode) {
            Ok(v) => v,
            Err(reason) => {
                return SinkOutcome::Terminal {
                    status: None,
                    reason: format!("cannot send the event to {shown}: {reason}"),
                };
            }
        };

        let Ok(id_value) = HeaderValue::from_str(idempotency_key) else {
            return SinkOutcome::Terminal {
                status: None,
                reason: format!(
                    "cannot send the event to {shown}: the idempotency key is not a valid header value"
                ),
            };
        };
        let timestamp = chrono::Utc::now().timestamp();
        headers.insert(HEADER_WEBHOOK_ID, id_value);
        headers.insert(HEADER_WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp));
        let signature = if spec.secrets.is_empty() {
            None
        } else {
            match signature_header(&spec.secrets, idempotency_key, timestamp, &body) {
                Ok(s) => Some(s),
                Err(e) => {
                    return SinkOutcome::Terminal {
                        status: None,
                        reason: format!("cannot sign the delivery to {shown}: {e}"),
                    };
                }
            }
        };
        if let Some(sig) = &signature {
            match HeaderValue::from_str(sig) {
                Ok(v) => {
                    headers.insert(HEADER_WEBHOOK_SIGNATURE, v);
                }
                Err(_) => {
                    return SinkOutcome::Terminal {
                        status: None,
                        reason: format!(
                            "cannot sign the delivery to {shown}: bad signature header"
                        ),
                    };
                }
            }
        }
        if let Some(tp) = traceparent
            && let Ok(v) = HeaderValue::from_str(tp)
        {
            headers.insert(HEADER_TRACEPARENT, v);
        }

        let timeout = if spec.timeout.is_zero() {
            DEFAULT_REQUEST_TIMEOUT
        } else {
            spec.timeout
        };
        let started = Instant::now();
        let result = self
            .client
            .post(url.clone())
            .headers(headers)
            .body(body)
            .timeout(timeout)
            .send()
            .await;
        let outcome = match result {
            Err(e) => classify_error(&e, &shown, &host, timeout, self.options.connect_timeout),
            Ok(response) => {
                let status = response.status();
                let hints = response_hints(response.headers(), &url);
                let body = read_limited(response, self.options.max_response_bytes).await;
                let excerpt = if status.is_success() {
                    String::new()
                } else {
                    let mut redact: Vec<&str> = Vec::new();
                    if let Some(sig) = &signature {
                        redact.push(sig);
                        redact.extend(sig.split(' '));
                        redact.extend(
                            sig.split(' ')
                                .filter_map(|s| s.split_once(','))
                                .map(|p| p.1),
                        );
                    }
                    for s in &spec.secrets {
                        redact.extend(secret_parts(s));
                    }
                    // Longest first, so a whole value is redacted before its parts.
                    redact.sort_by_key(|s| std::cmp::Reverse(s.len()));
                    body_excerpt(&body, &redact)
                };
                classify_status(status, &shown, &hints, &excerpt)
            }
        };
        tracing::debug!(
            url = %shown,
            status = ?outcome.response_code(),
            outcome = outcome.status().as_str(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "webhook delivery attempt"
        );
        outcome
    }
}

#[async_trait]
impl Sink for WebhookSink {
    async fn deliver(&self, request: DeliveryRequest<'_>) -> SinkOutcome {
        match &request.subscription.sink {
            SinkSpec::Webhook(spec) => {
                self.deliver_to(
                    spec,
                    request.event,
                    request.idempotency_key,
                    request.traceparent,
                )
                .await
            }
            other => SinkOutcome::Terminal {
                status: None,
                reason: format!(
                    "subscription {} has a {} sink, which the webhook sink cannot deliver to",
                    request.subscription.key(),
                    other.kind()
                ),
            },
        }
    }
}

fn parse_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| {
        format!(
            "the subscription URL is not a valid absolute URL ({e}); fix it in the configuration"
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the subscription URL {} must use http or https, not `{}`",
            display_url(&url),
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the subscription URL has no host; fix it in the configuration".into());
    }
    Ok(url)
}

/// Body and CloudEvents headers for one event in one mode.
fn encode(event: &CloudEvent, mode: HttpMode) -> Result<(Bytes, HeaderMap), String> {
    let mut headers = HeaderMap::new();
    match mode {
        HttpMode::Structured => {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static(STRUCTURED_CONTENT_TYPE_UTF8),
            );
            Ok((Bytes::from(event.to_structured_bytes()), headers))
        }
        HttpMode::Binary => {
            for (name, value) in event.attributes() {
                // The HTTP binding carries datacontenttype as Content-Type only.
                if name == "datacontenttype" {
                    continue;
                }
                let header = HeaderName::from_bytes(format!("ce-{name}").as_bytes())
                    .map_err(|_| format!("attribute `{name}` cannot be an HTTP header name"))?;
                let value = HeaderValue::from_str(&percent_encode(&value))
                    .map_err(|_| format!("attribute `{name}` cannot be an HTTP header value"))?;
                headers.append(header, value);
            }
            let content_type = match (&event.datacontenttype, &event.data) {
                (Some(ct), _) => Some(ct.as_str()),
                (None, Some(Data::Json(_))) => Some("application/json"),
                (None, Some(Data::Text(_))) => Some("text/plain; charset=utf-8"),
                (None, Some(Data::Binary(_))) => Some("application/octet-stream"),
                (None, None) => None,
            };
            if let Some(ct) = content_type {
                let v = HeaderValue::from_str(ct).map_err(|_| {
                    "datacontenttype cannot be an HTTP Content-Type value".to_string()
                })?;
                headers.insert(CONTENT_TYPE, v);
            }
            let body = event.data.as_ref().map(Data::to_bytes).unwrap_or_default();
            Ok((body, headers))
        }
    }
}

fn response_hints(headers: &HeaderMap, request_url: &Url) -> ResponseHints {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    ResponseHints {
        retry_after: text(RETRY_AFTER.as_str())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now())),
        no_retry: headers
            .get_all(NO_RETRY_HEADER)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(is_no_retry),
        location: text(LOCATION.as_str()).map(|loc| match request_url.join(loc) {
            Ok(u) => display_url(&u),
            Err(_) => "an unparseable Location".to_string(),
        }),
    }
}

/// Read at most `max` bytes of the body. A body that ends within the limit leaves the
/// connection reusable; a longer one is cut off (and its connection closed).
async fn read_limited(mut response: reqwest::Response, max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = max.saturating_sub(out.len());
        if chunk.len() > room {
            out.extend_from_slice(&chunk[..room]);
            break;
        }
        out.extend_from_slice(&chunk);
    }
    out
}

fn error_text(err: &reqwest::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    parts.join(": ")
}
