//! Tenants and the rules by which one tenant shares event types with others.

use crate::error::{EnvelopeError, EnvelopeErrorKind};

/// Check an identifier used for tenants and subscriptions: 1–63 characters of lower-case
/// letters, digits and `-`, starting with a letter. Such names are safe in queue names,
/// routing keys, URLs and SQL.
pub fn validate_name(kind: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{kind} `{name}` is not a valid name: use 1-63 lower-case letters, digits and '-', starting with a letter"
        ))
    }
}

/// Who a [`SharingRule`] shares with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every other tenant.
    All,
    /// The named tenants.
    Tenants(Vec<String>),
}

/// `owner` shares its events whose type starts with `type_prefix` with `audience`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharingRule {
    /// The tenant whose events are shared.
    pub owner: String,
    /// Event types starting with this prefix are shared, e.g. `ca.haliburton.gis.`.
    pub type_prefix: String,
    /// The tenants that may subscribe to them.
    pub audience: Audience,
}

impl SharingRule {
    /// Whether this rule lets `viewer` see an event of `owner` with type `ty`.
    pub fn allows(&self, owner: &str, ty: &str, viewer: &str) -> bool {
        self.owner == owner
            && ty.starts_with(&self.type_prefix)
            && match &self.audience {
                Audience::All => true,
                Audience::Tenants(ts) => ts.iter().any(|t| t == viewer),
            }
    }
}

/// Refuse an event whose payload claims a tenant other than the credential's.
///
/// The tenant always comes from the credential; an event that names a different one is
/// either misconfigured or an attempt to act as another tenant.
pub fn check_claimed_tenant(
    claimed: Option<&str>,
    credential_tenant: &str,
) -> Result<(), EnvelopeError> {
    match claimed {
        Some(c) if c != credential_tenant => Err(EnvelopeError::new(
            EnvelopeErrorKind::InvalidAttribute,
            crate::envelope::TENANT_EXTENSION,
            format!(
                "the event says tenant `{c}` but the credential belongs to `{credential_tenant}`; the bus sets the tenant from the credential, so remove the attribute or use the right token"
            ),
        )),
        _ => Ok(()),
    }
}
