//! Standard Webhooks signatures, symmetric and asymmetric.
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}`. A subscription signs
//! with every one of its secrets, each adding one signature to `webhook-signature`
//! (space-separated), so a subscriber can rotate keys or move between schemes:
//!
//! | secret | signature |
//! |---|---|
//! | `whsec_<base64 key>` (shared with the subscriber) | `v1,<base64 HMAC-SHA256(key, content)>` |
//! | `whsk_<base64 ed25519 secret key>` (kept by civicbus) | `v1a,<base64 ed25519 signature of content>` |
//!
//! The subscriber of a `whsk_` key verifies with its public key `whpk_<base64 32 bytes>`
//! ([`public_key`]). A `whsk_` key is the 32-byte ed25519 secret key (seed), as
//! [`encode_signing_key`] writes it; the 64-byte form (seed followed by its public key) is
//! accepted too, and its two halves must agree.
//!
//! [`sign`] and [`signature_header`] are what the sink sends; [`verify`] is for
//! subscribers (the demo's simulated municipal systems, tests). No error message of this
//! module contains a secret or a key.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The prefix of a symmetric (HMAC-SHA256) signing secret, shared with the subscriber.
pub const SECRET_PREFIX: &str = "whsec_";

/// The prefix of an asymmetric (ed25519) signing key, kept by the sender.
pub const SIGNING_KEY_PREFIX: &str = "whsk_";

/// The prefix of an ed25519 public key, given to subscribers to verify `v1a` signatures.
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";

/// The identifier of symmetric (HMAC-SHA256) signatures.
pub const SIGNATURE_VERSION: &str = "v1";

/// The identifier of asymmetric (ed25519) signatures.
pub const ASYMMETRIC_SIGNATURE_VERSION: &str = "v1a";

/// Header carrying the idempotency key (the message id).
pub const HEADER_WEBHOOK_ID: &str = "webhook-id";
/// Header carrying the unix time, in seconds, at which the request was signed.
pub const HEADER_WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying the space-separated signatures.
pub const HEADER_WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// The tolerance Standard Webhooks recommends between the signing time and the receiver's
/// clock.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

const GENERATE_HINT: &str = "generate one with `echo whsec_$(openssl rand -base64 32)` (HMAC) \
     or `civicbus token generate --signing-key` (ed25519)";

/// A signing secret or key that cannot be used. The message says how to fix it and never
/// contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSecret(pub String);

/// Check that a signing secret is usable: `whsec_` followed by standard base64 of a
/// non-empty key, or `whsk_` followed by standard base64 of an ed25519 secret key.
///
/// Call it when loading configuration so a bad secret is refused before anything is sent.
/// The error message explains the expected form and never echoes the secret.
pub fn validate_secret(secret: &str) -> Result<(), String> {
    parse_signer(secret).map(|_| ()).map_err(|e| e.0)
}

/// What signs: an HMAC key or an ed25519 secret key.
enum SigningSecret {
    Hmac(Vec<u8>),
    Ed25519(SigningKey),
}

/// What verifies: an HMAC key or an ed25519 public key.
enum VerifyingSecret {
    Hmac(Vec<u8>),
    Ed25519(VerifyingKey),
}

fn parse_signer(secret: &str) -> Result<SigningSecret, InvalidSecret> {
    if secret.starts_with(SECRET_PREFIX) {
        decode_hmac_secret(secret).map(SigningSecret::Hmac)
    } else if secret.starts_with(SIGNING_KEY_PREFIX) {
        decode_signing_key(secret).map(SigningSecret::Ed25519)
    } else if secret.starts_with(PUBLIC_KEY_PREFIX) {
        Err(InvalidSecret(format!(
            "this is an ed25519 public key (`{PUBLIC_KEY_PREFIX}`), which only verifies: give it \
             to the subscriber, and sign with its secret key (`{SIGNING_KEY_PREFIX}`, printed \
             with it by `civicbus token generate --signing-key`)"
        )))
    } else {
        Err(InvalidSecret(format!(
            "a webhook signing secret must start with `{SECRET_PREFIX}` (HMAC-SHA256) or \
             `{SIGNING_KEY_PREFIX}` (ed25519) followed by base64; {GENERATE_HINT}"
        )))
    }
}

fn parse_verifier(key: &str) -> Result<VerifyingSecret, InvalidSecret> {
    if key.starts_with(SECRET_PREFIX) {
        decode_hmac_secret(key).map(VerifyingSecret::Hmac)
    } else if key.starts_with(PUBLIC_KEY_PREFIX) {
        decode_public_key(key).map(VerifyingSecret::Ed25519)
    } else if key.starts_with(SIGNING_KEY_PREFIX) {
        Err(InvalidSecret(format!(
            "an ed25519 signing key (`{SIGNING_KEY_PREFIX}`) stays with the sender; verify with \
             its public key (`{PUBLIC_KEY_PREFIX}`, printed with it by \
             `civicbus token generate --signing-key`)"
        )))
    } else {
        Err(InvalidSecret(format!(
            "a webhook verification key must be a shared secret `{SECRET_PREFIX}…` or an ed25519 \
             public key `{PUBLIC_KEY_PREFIX}…`"
        )))
    }
}

fn decode_hmac_secret(secret: &str) -> Result<Vec<u8>, InvalidSecret> {
    let b64 = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
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

fn decode_signing_key(secret: &str) -> Result<SigningKey, InvalidSecret> {
    let hint = "generate one with `civicbus token generate --signing-key`";
    let b64 = secret.strip_prefix(SIGNING_KEY_PREFIX).unwrap_or(secret);
    let bytes = B64.decode(b64.trim().as_bytes()).map_err(|_| {
        InvalidSecret(format!(
            "the part of the ed25519 signing key after `{SIGNING_KEY_PREFIX}` is not valid \
             standard base64 (A-Z a-z 0-9 + /, padded with =); {hint}"
        ))
    })?;
    if let Ok(seed) = <&[u8; 32]>::try_from(bytes.as_slice()) {
        return Ok(SigningKey::from_bytes(seed));
    }
    if let Ok(pair) = <&[u8; 64]>::try_from(bytes.as_slice()) {
        return SigningKey::from_keypair_bytes(pair).map_err(|_| {
            InvalidSecret(format!(
                "the 64-byte ed25519 signing key after `{SIGNING_KEY_PREFIX}` is a secret key \
                 followed by a public key that does not belong to it; use the 32-byte secret \
                 key alone, or {hint}"
            ))
        });
    }
    Err(InvalidSecret(format!(
        "the ed25519 signing key after `{SIGNING_KEY_PREFIX}` decodes to {} bytes; it must be \
         the 32-byte secret key (or 64 bytes: secret key then public key); {hint}",
        bytes.len()
    )))
}

fn decode_public_key(key: &str) -> Result<VerifyingKey, InvalidSecret> {
    let b64 = key.strip_prefix(PUBLIC_KEY_PREFIX).unwrap_or(key);
    let bytes = B64.decode(b64.trim().as_bytes()).map_err(|_| {
        InvalidSecret(format!(
            "the part of the ed25519 public key after `{PUBLIC_KEY_PREFIX}` is not valid \
             standard base64 (A-Z a-z 0-9 + /, padded with =)"
        ))
    })?;
    let Ok(array) = <&[u8; 32]>::try_from(bytes.as_slice()) else {
        return Err(InvalidSecret(format!(
            "the ed25519 public key after `{PUBLIC_KEY_PREFIX}` decodes to {} bytes; it must be \
             32",
            bytes.len()
        )));
    };
    match VerifyingKey::from_bytes(array) {
        Ok(k) if !k.is_weak() => Ok(k),
        _ => Err(InvalidSecret(format!(
            "the key after `{PUBLIC_KEY_PREFIX}` is not a usable ed25519 public key"
        ))),
    }
}

/// `{id}.{timestamp}.{body}`, the content every signature covers.
fn signed_content(id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let ts = timestamp.to_string();
    let mut out = Vec::with_capacity(id.len() + ts.len() + body.len() + 2);
    out.extend_from_slice(id.as_bytes());
    out.push(b'.');
    out.extend_from_slice(ts.as_bytes());
    out.push(b'.');
    out.extend_from_slice(body);
    out
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

/// Sign one message with one secret:
/// - `whsec_…`: `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`, where key is
///   the base64-decoded part after `whsec_`;
/// - `whsk_…`: `v1a,<base64(ed25519 signature of "{id}.{timestamp}.{body}")>`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, InvalidSecret> {
    match parse_signer(secret)? {
        SigningSecret::Hmac(key) => {
            let tag = mac_for(&key, id, timestamp, body).finalize().into_bytes();
            Ok(format!("{SIGNATURE_VERSION},{}", B64.encode(tag)))
        }
        SigningSecret::Ed25519(key) => {
            let signature = key.sign(&signed_content(id, timestamp, body));
            Ok(format!(
                "{ASYMMETRIC_SIGNATURE_VERSION},{}",
                B64.encode(signature.to_bytes())
            ))
        }
    }
}

/// The value of a `webhook-signature` header for these secrets: one signature per secret
/// (`v1,…` for a `whsec_` secret, `v1a,…` for a `whsk_` key), in the order given,
/// separated by spaces (so a subscriber can rotate its secret or change scheme).
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

/// A `whsk_` signing key for the ed25519 secret key `seed` (32 bytes, e.g. from a CSPRNG).
pub fn encode_signing_key(seed: &[u8; 32]) -> String {
    format!("{SIGNING_KEY_PREFIX}{}", B64.encode(seed))
}

/// The `whpk_` public key of a `whsk_` signing key: what a subscriber needs to verify
/// the `v1a` signatures it makes.
pub fn public_key(signing_key: &str) -> Result<String, InvalidSecret> {
    if !signing_key.starts_with(SIGNING_KEY_PREFIX) {
        return Err(InvalidSecret(format!(
            "only an ed25519 signing key (`{SIGNING_KEY_PREFIX}…`) has a public key"
        )));
    }
    let key = decode_signing_key(signing_key)?;
    Ok(format!(
        "{PUBLIC_KEY_PREFIX}{}",
        B64.encode(key.verifying_key().as_bytes())
    ))
}

/// The parts of a signing secret that must never appear in text shown to anyone: the
/// whole secret and its base64 key (without the `whsec_`/`whsk_` prefix).
pub fn secret_parts(secret: &str) -> impl Iterator<Item = &str> {
    let key = secret
        .strip_prefix(SECRET_PREFIX)
        .or_else(|| secret.strip_prefix(SIGNING_KEY_PREFIX))
        .filter(|k| !k.is_empty());
    std::iter::once(secret).chain(key)
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
    /// One of the verifier's own secrets or public keys is unusable.
    #[error("{0}")]
    InvalidSecret(InvalidSecret),
    /// No signature in the header matches any of the secrets or public keys.
    #[error("no v1 or v1a signature matches any of the secrets or public keys")]
    NoMatchingSignature,
}

/// Verify a received webhook against the receiver's keys (any one may match), with the
/// timestamp within `tolerance` of the current clock.
///
/// Each key is a shared secret `whsec_…` (checks `v1` signatures, compared in constant
/// time) or an ed25519 public key `whpk_…` (checks `v1a` signatures, strictly). A `whsk_`
/// signing key is refused: it belongs to the sender only.
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
    let keys = secrets
        .iter()
        .map(|s| parse_verifier(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(VerifyError::InvalidSecret)?;
    let candidates: Vec<(&str, Vec<u8>)> = signatures
        .split(' ')
        .filter_map(|s| s.split_once(','))
        .filter_map(|(v, sig)| B64.decode(sig.as_bytes()).ok().map(|b| (v, b)))
        .collect();
    let of_version = |version: &'static str| {
        candidates
            .iter()
            .filter(move |(v, _)| *v == version)
            .map(|(_, sig)| sig.as_slice())
    };
    let mut content = None;
    let mut matched = false;
    for key in &keys {
        match key {
            VerifyingSecret::Hmac(key) => {
                let mac = mac_for(key, id, ts, body);
                for candidate in of_version(SIGNATURE_VERSION) {
                    // `verify_slice` compares in constant time.
                    matched |= mac.clone().verify_slice(candidate).is_ok();
                }
            }
            VerifyingSecret::Ed25519(key) => {
                let content = content.get_or_insert_with(|| signed_content(id, ts, body));
                for candidate in of_version(ASYMMETRIC_SIGNATURE_VERSION) {
                    if let Ok(signature) = Signature::from_slice(candidate) {
                        matched |= key.verify_strict(content, &signature).is_ok();
                    }
                }
            }
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
        assert!(validate_secret(SIGNING_KEY).is_ok());
    }

    /// The Standard Webhooks reference implementation's `whsk_` key (32-byte seed).
    const SIGNING_KEY: &str = "whsk_VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=";

    #[test]
    fn known_asymmetric_vector() {
        // The v1a vector of the Standard Webhooks reference implementation (Go library,
        // TestAsymmetricWebhookSign): the key is the 32-byte ed25519 seed.
        let sig = sign(
            SIGNING_KEY,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .expect("valid key");
        assert_eq!(
            sig,
            "v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag=="
        );
    }

    #[test]
    fn signing_key_forms_and_public_key() {
        let seed = [7u8; 32];
        let sk = encode_signing_key(&seed);
        assert!(sk.starts_with(SIGNING_KEY_PREFIX));
        let pk = public_key(&sk).expect("public key");
        assert!(pk.starts_with(PUBLIC_KEY_PREFIX));
        let pk_bytes = B64
            .decode(pk.trim_start_matches(PUBLIC_KEY_PREFIX))
            .expect("base64");
        assert_eq!(pk_bytes.len(), 32);
        assert_eq!(
            pk_bytes,
            SigningKey::from_bytes(&seed).verifying_key().as_bytes()
        );
        // The 64-byte form (seed then public key) signs exactly like the seed.
        let mut pair = seed.to_vec();
        pair.extend_from_slice(&pk_bytes);
        let sk64 = format!("{SIGNING_KEY_PREFIX}{}", B64.encode(&pair));
        assert_eq!(
            sign(&sk64, "msg_1", 1, b"x").expect("64-byte key"),
            sign(&sk, "msg_1", 1, b"x").expect("32-byte key")
        );
        assert_eq!(public_key(&sk64).expect("public key"), pk);
        // A public key is not a secret, and a whsec_ secret has no public key.
        assert!(validate_secret(&pk).is_err());
        assert!(public_key(SECRET).is_err());
    }

    #[test]
    fn bad_signing_keys_are_refused_without_echo() {
        let seed = B64.encode([9u8; 32]);
        let mut mismatched = [9u8; 64].to_vec();
        mismatched[40] ^= 1;
        let cases = [
            (format!("{SIGNING_KEY_PREFIX}not*base64!!"), "base64"),
            (SIGNING_KEY_PREFIX.to_string(), "0 bytes"),
            (
                format!("{SIGNING_KEY_PREFIX}{}", B64.encode([1u8; 31])),
                "31 bytes",
            ),
            (
                format!("{SIGNING_KEY_PREFIX}{}", B64.encode(&mismatched)),
                "does not belong",
            ),
            (format!("{PUBLIC_KEY_PREFIX}{seed}"), "public key"),
            (seed.clone(), "whsk_"),
        ];
        for (bad, expect) in &cases {
            let msg = validate_secret(bad).expect_err("must be refused");
            assert!(msg.contains(expect), "{bad}: {msg}");
            assert!(msg.contains("--signing-key"), "{msg}");
            let tail = bad
                .trim_start_matches(SIGNING_KEY_PREFIX)
                .trim_start_matches(PUBLIC_KEY_PREFIX);
            if tail.len() > 4 {
                assert!(!msg.contains(tail), "{msg} echoes the key");
            }
        }
    }

    fn headers(id: &str, ts: i64, signature: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(HEADER_WEBHOOK_ID, id.parse().expect("hv"));
        h.insert(
            HEADER_WEBHOOK_TIMESTAMP,
            ts.to_string().parse().expect("hv"),
        );
        h.insert(HEADER_WEBHOOK_SIGNATURE, signature.parse().expect("hv"));
        h
    }

    #[test]
    fn v1a_round_trip() {
        let now = 1_700_000_000;
        let body = b"{\"permit\":\"BP-1\"}";
        let header = signature_header(&[SIGNING_KEY], "msg_1", now, body).expect("sign");
        assert!(header.starts_with("v1a,"), "{header}");
        let pk = public_key(SIGNING_KEY).expect("public key");
        let h = headers("msg_1", now, &header);
        let tol = DEFAULT_TOLERANCE;
        assert_eq!(verify_at(&[&pk], &h, body, tol, now), Ok(()));
        assert_eq!(
            verify_at(&[&pk], &h, b"{\"permit\":\"BP-2\"}", tol, now),
            Err(VerifyError::NoMatchingSignature)
        );
        // Another id or timestamp is another message.
        let moved = headers("msg_2", now, &header);
        assert_eq!(
            verify_at(&[&pk], &moved, body, tol, now),
            Err(VerifyError::NoMatchingSignature)
        );
        let later = headers("msg_1", now + 1, &header);
        assert_eq!(
            verify_at(&[&pk], &later, body, tol, now),
            Err(VerifyError::NoMatchingSignature)
        );
        let other = public_key(&encode_signing_key(&[3u8; 32])).expect("public key");
        assert_eq!(
            verify_at(&[&other], &h, body, tol, now),
            Err(VerifyError::NoMatchingSignature)
        );
        // The v1a signature relabelled v1 is not accepted, nor by an HMAC secret.
        let relabelled = headers("msg_1", now, &header.replacen("v1a,", "v1,", 1));
        assert_eq!(
            verify_at(&[&pk], &relabelled, body, tol, now),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            verify_at(&[SECRET], &h, body, tol, now),
            Err(VerifyError::NoMatchingSignature)
        );
        // The verifier refuses the signing key: it belongs to the sender.
        match verify_at(&[SIGNING_KEY], &h, body, tol, now) {
            Err(VerifyError::InvalidSecret(e)) => {
                assert!(e.0.contains(PUBLIC_KEY_PREFIX), "{e}");
                assert!(!e.0.contains(&SIGNING_KEY[5..]), "{e} echoes the key");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rotation_mixes_v1_and_v1a() {
        let now = 1_700_000_000;
        let body = b"{\"a\":1}";
        let new_key = encode_signing_key(&[42u8; 32]);
        let header = signature_header(&[SECRET, &new_key], "msg_1", now, body).expect("sign");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2, "{header}");
        assert!(parts[0].starts_with("v1,"), "{header}");
        assert!(parts[1].starts_with("v1a,"), "{header}");
        let pk = public_key(&new_key).expect("public key");
        let h = headers("msg_1", now, &header);
        let tol = DEFAULT_TOLERANCE;
        // A subscriber still on the old HMAC secret, one moved to the public key, and one
        // trusting both, all verify.
        assert_eq!(verify_at(&[SECRET], &h, body, tol, now), Ok(()));
        assert_eq!(verify_at(&[&pk], &h, body, tol, now), Ok(()));
        assert_eq!(verify_at(&[SECRET, &pk], &h, body, tol, now), Ok(()));
        assert_eq!(
            verify_at(&[SECRET, &pk], &h, b"{\"a\":2}", tol, now),
            Err(VerifyError::NoMatchingSignature)
        );
        // Each signature alone verifies with its own key only.
        let only_v1a = headers("msg_1", now, parts[1]);
        assert_eq!(verify_at(&[&pk], &only_v1a, body, tol, now), Ok(()));
        assert_eq!(
            verify_at(&[SECRET], &only_v1a, body, tol, now),
            Err(VerifyError::NoMatchingSignature)
        );
        // The signing key and its base64 part are among the parts to redact.
        let parts: Vec<&str> = secret_parts(&new_key).collect();
        assert_eq!(parts, vec![new_key.as_str(), &new_key[5..]]);
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
