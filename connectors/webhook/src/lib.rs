//! civicbus webhook sink: delivers CloudEvents over HTTP, signed per
//! [Standard Webhooks](https://www.standardwebhooks.com/).
//!
//! # What a subscriber receives
//! A `POST` to the subscription URL with
//! - **binary mode** (default): body = the event data; `Content-Type` = `datacontenttype`
//!   (`application/json` for JSON data without one); every other attribute as a
//!   `ce-<name>` header, percent-encoded per the CloudEvents HTTP binding;
//! - **structured mode**: body = the event as `application/cloudevents+json; charset=utf-8`;
//! - always `webhook-id` (the stable idempotency key, the same on every retry),
//!   `webhook-timestamp` (unix seconds) and, when the subscription has secrets,
//!   `webhook-signature`: one signature per secret, space-separated, so a subscriber can
//!   rotate its secret: `v1,<base64 HMAC-SHA256("{id}.{timestamp}.{body}")>` for a
//!   `whsec_` secret, `v1a,<base64 ed25519 signature of "{id}.{timestamp}.{body}">` for a
//!   `whsk_` signing key (the subscriber verifies it with the `whpk_` public key);
//! - `traceparent` when the delivery carries W3C trace context.
//!
//! # How the answer is classified
//! | answer | outcome |
//! |---|---|
//! | 2xx | delivered |
//! | 410 | gone (disable the endpoint) |
//! | 408, 409, 425, 429, 5xx | retryable, honouring `Retry-After` (capped at 1 day) |
//! | 3xx | terminal: redirects are never followed; the reason names the `Location` |
//! | other 4xx (400, 401, 403, 404, 413, 422, …) | terminal |
//! | timeout, connection refused, DNS or TLS failure | retryable |
//!
//! A subscriber can stop retries of a failure by answering with the header
//! `civicbus-no-retry: true` ([`NO_RETRY_HEADER`]): the failure becomes terminal.
//! Reasons quote at most 200 sanitised characters of the response body, with any echo of
//! the signature or secrets redacted, and show URLs without credentials or query string.

mod classify;
pub mod signature;
mod sink;

pub use classify::{
    MAX_EXCERPT_CHARS, MAX_RETRY_AFTER, NO_RETRY_HEADER, body_excerpt, display_url,
    parse_retry_after,
};
pub use signature::{
    DEFAULT_TOLERANCE, InvalidSecret, VerifyError, encode_signing_key, public_key, sign,
    signature_header, validate_secret, verify, verify_at,
};
pub use sink::{
    BuildError, DEFAULT_REQUEST_TIMEOUT, HEADER_TRACEPARENT, STRUCTURED_CONTENT_TYPE_UTF8,
    WebhookOptions, WebhookSink,
};
