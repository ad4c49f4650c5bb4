//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256>`.
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the key is the base64
//! part of a `whsec_…` secret. [`sign`] is what the sink sends; [`verify`] is for
//! subscribers (the demo's simulated municipal systems, tests).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The prefix every signing secret carries.
pub const SECRET_PREFIX: &str = "whsec_";

/// The signature scheme version this crate produces and accepts.
pub const SIGNATURE_VERSION: &str = "v1";

/// Header carrying the idempotency key (the message id).
pub const HEADER_WEBHOOK_ID: &str = "webhook-id";
/// Header carrying the unix time, in seconds, at which the request was signed.
pub const HEADER_WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying the space-separated signatures.
pub const HEADER_WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// The tolerance Standard Webhooks recommends between the signing time and the receiver's
/// clock.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// A signing secret that cannot be used. The message says how to fix it and never
/// contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSecret(pub String);

/// Check that a signing secret is `whsec_` followed by standard base64 of a non-empty key.
///
/// Call it when loading configuration so a bad secret is refused before anything is sent.
/// The error message explains the expected form and never echoes the secret.
pub fn validate_secret(secret: &str) -> Result<(), String> {
    decode_secret(secret).map(|_| ()).map_err(|e| e.0)
}

fn decode_secret(secret: &str) -> Result<Vec<u8>, InvalidSecret> {
    let Some(b64) = secret.strip_prefix(SECRET_PREFIX) else {
        return Err(InvalidSecret(format!(
            "a webhook signing secret must start with `{SECRET_PREFIX}` followed by base64; \
             generate one with `echo {SECRET_PREFIX}$(openssl rand -base64 32)`"
        )));
    };
    let key = B64.decode(b64.trim().as_bytes()).map_err(|_| {
        InvalidSecret(format!(
            "the part of the webhook signing secret after `{SECRET_PREFIX}` is not valid standard \
             base64 (A-Z a-z 0-9 + /, padded with =); generate one with \
             `echo {SECRET_PREFIX}$(openssl rand -base64 32)`"
        ))
    })?;
    if key.is_empty() {
        return Err(InvalidSecret(format!(
            "the webhook signing secret has an empty key after `{SECRET_PREFIX}`; generate one \
             with `echo {SECRET_PREFIX}$(openssl rand -base64 32)`"
        )));
    }
    Ok(key)
}

fn mac_for(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail; fall back to an empty-input
    // MAC of an empty key rather than panic (unreachable in practice).
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => HmacSha256::new(&Default::default()),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Sign one message: returns `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`,
/// where key is the base64-decoded part of `secret` after `whsec_`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, InvalidSecret> {
    let key = decode_secret(secret)?;
    let tag = mac_for(&key, id, timestamp, body).finalize().into_bytes();
    Ok(format!("{SIGNATURE_VERSION},{}", B64.encode(tag)))
}

/// The value of a `webhook-signature` header for these secrets: one `v1,…` signature per
/// secret, separated by spaces (so a subscriber can rotate its secret).
pub fn signature_header(
    secrets: &[impl AsRef<str>],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, InvalidSecret> {
    let mut out = String::new();
    for (i, s) in secrets.iter().enumerate() {
        let sig = sign(s.as_ref(), id, timestamp, body).map_err(|e| {
            InvalidSecret(format!(
                "signing secret #{} of the subscription: {}",
                i + 1,
                e.0
            ))
        })?;
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&sig);
    }
    Ok(out)
}

/// Why a webhook failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required header is absent or not visible ASCII.
    #[error("header `{0}` is missing or not valid ASCII")]
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not an integer.
    #[error("header `webhook-timestamp` is not a unix time in seconds")]
    InvalidTimestamp,
    /// The timestamp is further from now than the tolerance (a replay or a skewed clock).
    #[error(
        "webhook-timestamp is {skew_secs}s away from now, more than the {tolerance_secs}s tolerated"
    )]
    TimestampOutOfTolerance {
        /// Absolute difference between the timestamp and now, in seconds.
        skew_secs: u64,
        /// The tolerance, in seconds.
        tolerance_secs: u64,
    },
    /// One of the verifier's own secrets is unusable.
    #[error("{0}")]
    InvalidSecret(InvalidSecret),
    /// No signature in the header matches any of the secrets.
    #[error("no v1 signature matches any of the secrets")]
    NoMatchingSignature,
}

/// Verify a received webhook against the receiver's secrets (any one may match), with the
/// timestamp within `tolerance` of the current clock. Comparison is constant-time.
pub fn verify(
    secrets: &[&str],
    headers: &http::HeaderMap,
    body: &[u8],
    tolerance: Duration,
) -> Result<(), VerifyError> {
    verify_at(
        secrets,
        headers,
        body,
        tolerance,
        chrono::Utc::now().timestamp(),
    )
}

/// [`verify`] against an explicit `now` (unix seconds), for tests.
pub fn verify_at(
    secrets: &[&str],
    headers: &http::HeaderMap,
    body: &[u8],
    tolerance: Duration,
    now: i64,
) -> Result<(), VerifyError> {
    let header = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .ok_or(VerifyError::MissingHeader(name))
    };
    let id = header(HEADER_WEBHOOK_ID)?;
    let ts_str = header(HEADER_WEBHOOK_TIMESTAMP)?;
    let signatures = header(HEADER_WEBHOOK_SIGNATURE)?;
    let ts: i64 = ts_str.parse().map_err(|_| VerifyError::InvalidTimestamp)?;
    let skew = now.abs_diff(ts);
    if skew > tolerance.as_secs() {
        return Err(VerifyError::TimestampOutOfTolerance {
            skew_secs: skew,
            tolerance_secs: tolerance.as_secs(),
        });
    }
    let candidates: Vec<Vec<u8>> = signatures
        .split(' ')
        .filter_map(|s| s.split_once(','))
        .filter(|(v, _)| *v == SIGNATURE_VERSION)
        .filter_map(|(_, sig)| B64.decode(sig.as_bytes()).ok())
        .collect();
    let mut matched = false;
    for secret in secrets {
        let key = decode_secret(secret).map_err(VerifyError::InvalidSecret)?;
        let mac = mac_for(&key, id, ts, body);
        for candidate in &candidates {
            // `verify_slice` compares in constant time.
            matched |= mac.clone().verify_slice(candidate).is_ok();
        }
    }
    if matched {
        Ok(())
    } else {
        Err(VerifyError::NoMatchingSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    #[test]
    fn known_vector() {
        // The vector from the Standard Webhooks reference implementation.
        let sig = sign(
            SECRET,
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        )
        .expect("valid secret");
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn bad_secrets_are_refused_without_echo() {
        for bad in [
            "C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "whsec_not*base64!!",
            "whsec_",
        ] {
            let msg = validate_secret(bad).expect_err("must be refused");
            assert!(msg.contains("whsec_"), "{msg}");
            assert!(msg.contains("openssl rand"), "{msg}");
            let tail = bad.trim_start_matches("whsec_");
            if !tail.is_empty() {
                assert!(!msg.contains(tail), "{msg} echoes the secret");
            }
        }
        assert!(validate_secret(SECRET).is_ok());
    }

    #[test]
    fn verify_round_trip_and_tolerance() {
        let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let now = 1_700_000_000;
        let body = b"{\"a\":1}";
        let header = signature_header(&[SECRET, other], "msg_1", now, body).expect("sign");
        let mut h = http::HeaderMap::new();
        h.insert(HEADER_WEBHOOK_ID, "msg_1".parse().expect("hv"));
        h.insert(
            HEADER_WEBHOOK_TIMESTAMP,
            now.to_string().parse().expect("hv"),
        );
        h.insert(HEADER_WEBHOOK_SIGNATURE, header.parse().expect("hv"));
        let tol = DEFAULT_TOLERANCE;
        assert_eq!(verify_at(&[SECRET], &h, body, tol, now), Ok(()));
        assert_eq!(verify_at(&[other], &h, body, tol, now + 10), Ok(()));
        assert_eq!(
            verify_at(&[SECRET], &h, b"{\"a\":2}", tol, now),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            verify_at(&["whsec_dGhpcyBpcyBhbm90aGVyIGtleQ=="], &h, body, tol, now),
            Err(VerifyError::NoMatchingSignature)
        );
        assert!(matches!(
            verify_at(&[SECRET], &h, body, tol, now + 301),
            Err(VerifyError::TimestampOutOfTolerance { .. })
        ));
        assert!(matches!(
            verify_at(&[SECRET], &h, body, tol, now - 301),
            Err(VerifyError::TimestampOutOfTolerance { .. })
        ));
        h.remove(HEADER_WEBHOOK_ID);
        assert_eq!(
            verify_at(&[SECRET], &h, body, tol, now),
            Err(VerifyError::MissingHeader(HEADER_WEBHOOK_ID))
        );
    }
}
