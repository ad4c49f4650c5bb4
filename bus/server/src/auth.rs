//! API credentials: bearer tokens mapped to a tenant. Tokens are kept only as SHA-256
//! hashes and never logged.

use std::collections::HashMap;

use crate::config::{ResolvedToken, token_hash};

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Tenant of the credential.
    pub tenant: String,
    /// Credential name (audit actor).
    pub name: String,
}

/// The set of valid tokens.
#[derive(Debug, Clone, Default)]
pub struct TokenSet {
    by_hash: HashMap<[u8; 32], Principal>,
}

impl TokenSet {
    /// A set from resolved configuration tokens.
    pub fn new(tokens: &[ResolvedToken]) -> Self {
        let by_hash = tokens
            .iter()
            .map(|t| {
                (
                    t.sha256,
                    Principal {
                        tenant: t.tenant.clone(),
                        name: t.name.clone(),
                    },
                )
            })
            .collect();
        TokenSet { by_hash }
    }

    /// The principal of a bearer token, if it is valid.
    pub fn authenticate(&self, token: &str) -> Option<&Principal> {
        self.by_hash.get(&token_hash(token))
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// A new random API token (`cbt_` + 32 random bytes, URL-safe base64).
pub fn generate_token() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    format!(
        "cbt_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// A new random Standard Webhooks signing secret (`whsec_` + base64 of 32 random bytes).
pub fn generate_secret() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// A new random Standard Webhooks ed25519 signing key and its public key:
/// (`whsk_` + base64 of a 32-byte secret key, `whpk_` + base64 of the public key).
pub fn generate_signing_key() -> (String, String) {
    let seed: [u8; 32] = rand::random();
    let signing_key = civicbus_webhook::encode_signing_key(&seed);
    // A key made from 32 bytes always has a public key; the error arm is unreachable.
    let public_key = civicbus_webhook::public_key(&signing_key).unwrap_or_default();
    (signing_key, public_key)
}
