//! Ingest: stamp the tenant from the credential, check limits, publish to the events
//! exchange and wait for RabbitMQ's confirm. Shared by the HTTP API and AMQP ingress.

use std::sync::Arc;

use chrono::Utc;
use civicbus_core::binding::ParseLimits;
use civicbus_core::delivery::{HEADER_ACTOR, HEADER_RECEIVED_AT, HEADER_TRACEPARENT};
use civicbus_core::envelope::ExtensionValue;
use civicbus_core::error::{EnvelopeError, EnvelopeErrorKind};
use civicbus_core::ports::{Destination, OutboundMessage, PortError, PortErrorKind, Publisher};
use civicbus_core::tenant::check_claimed_tenant;
use civicbus_core::{CloudEvent, wire};

/// Limits applied at ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    /// Parser limits (depth, batch size).
    pub parse: ParseLimits,
    /// Largest single event, structured-mode encoded.
    pub max_event_bytes: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            parse: ParseLimits::default(),
            max_event_bytes: 256 * 1024,
        }
    }
}

/// Who submits events: resolved from the credential, never from the payload.
#[derive(Debug, Clone, Copy)]
pub struct Submitter<'a> {
    /// Tenant of the credential.
    pub tenant: &'a str,
    /// Credential name (HTTP token name or AMQP user), recorded as the audit actor.
    pub actor: &'a str,
    /// W3C `traceparent` of the request, if any.
    pub traceparent: Option<&'a str>,
}

/// Why ingest refused or could not take events.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IngestError {
    /// An event is invalid (names the field).
    #[error("{0}")]
    Invalid(EnvelopeError),
    /// An event is larger than the limit.
    #[error(
        "{field}: event is {size} bytes encoded, over the limit of {limit}; send large documents by reference (the `dataref` extension)"
    )]
    TooLarge {
        /// Which event (`[i]` in a batch, empty for one event).
        field: String,
        /// Encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// RabbitMQ is unreachable or did not confirm: nothing can be promised; retry later.
    #[error("{0}")]
    Unavailable(PortError),
    /// RabbitMQ refused the publish.
    #[error("{0}")]
    Rejected(PortError),
}

impl From<PortError> for IngestError {
    fn from(e: PortError) -> Self {
        match e.kind {
            PortErrorKind::Unavailable => IngestError::Unavailable(e),
            PortErrorKind::Rejected => IngestError::Rejected(e),
        }
    }
}

/// Validates, stamps and publishes events with confirms.
pub struct Ingest {
    publisher: Arc<dyn Publisher>,
    limits: IngestLimits,
}

impl Ingest {
    /// An ingest stage publishing through `publisher`.
    pub fn new(publisher: Arc<dyn Publisher>, limits: IngestLimits) -> Self {
        Ingest { publisher, limits }
    }

    /// The limits in force.
    pub fn limits(&self) -> &IngestLimits {
        &self.limits
    }

    /// Stamp and encode events for the events exchange, refusing any that claims another
    /// tenant or is too large. `batch` says whether errors name a batch position.
    pub fn prepare(
        &self,
        events: Vec<CloudEvent>,
        who: Submitter<'_>,
        batch: bool,
    ) -> Result<Vec<(Destination, OutboundMessage)>, IngestError> {
        let received_at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let mut out = Vec::with_capacity(events.len());
        for (i, mut ev) in events.into_iter().enumerate() {
            let at = |e: EnvelopeError| if batch { e.at_index(i) } else { e };
            check_claimed_tenant(ev.tenant(), who.tenant)
                .map_err(|e| IngestError::Invalid(at(e)))?;
            ev.set_tenant(who.tenant);
            if let Some(tp) = who.traceparent
                && !ev.extensions.contains_key("traceparent")
            {
                if !valid_traceparent(tp) {
                    return Err(IngestError::Invalid(EnvelopeError::new(
                        EnvelopeErrorKind::InvalidAttribute,
                        "traceparent",
                        "not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>); fix or omit the header",
                    )));
                }
                ev.extensions
                    .insert("traceparent".into(), ExtensionValue::String(tp.to_string()));
            }
            let mut headers = vec![
                (HEADER_ACTOR.to_string(), who.actor.to_string()),
                (HEADER_RECEIVED_AT.to_string(), received_at.clone()),
            ];
            if let Some(ExtensionValue::String(tp)) = ev.extensions.get("traceparent") {
                headers.push((HEADER_TRACEPARENT.to_string(), tp.clone()));
            }
            let routing_key = format!("{}.{}", who.tenant, ev.ty);
            let msg = wire::to_amqp(&ev, headers);
            if msg.body.len() > self.limits.max_event_bytes {
                return Err(IngestError::TooLarge {
                    field: if batch {
                        format!("[{i}]")
                    } else {
                        String::new()
                    },
                    size: msg.body.len(),
                    limit: self.limits.max_event_bytes,
                });
            }
            out.push((Destination::Events { routing_key }, msg));
        }
        Ok(out)
    }

    /// Validate, stamp and publish; returns once RabbitMQ confirmed every event.
    pub async fn submit(
        &self,
        events: Vec<CloudEvent>,
        who: Submitter<'_>,
        batch: bool,
    ) -> Result<usize, IngestError> {
        let messages = self.prepare(events, who, batch)?;
        let n = messages.len();
        if n > 0 {
            self.publisher.publish_confirmed(messages).await?;
        }
        Ok(n)
    }
}

/// Whether `s` has the shape of a W3C `traceparent` header.
pub fn valid_traceparent(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let hex = |p: &str, n: usize| {
        p.len() == n
            && p.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    parts.len() == 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && parts[1] != "0".repeat(32)
        && hex(parts[2], 16)
        && parts[2] != "0".repeat(16)
        && hex(parts[3], 2)
}
