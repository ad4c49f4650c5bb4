//! Ingest: stamp the tenant from the credential, check limits, publish to the events
//! exchange and wait for RabbitMQ's confirm. Shared by the HTTP API and AMQP ingress.

use std::sync::Arc;

use chrono::Utc;
use civicbus_core::binding::ParseLimits;
use civicbus_core::delivery::{HEADER_ACTOR, HEADER_RECEIVED_AT, HEADER_TRACEPARENT};
use civicbus_core::envelope::{ExtensionValue, TENANT_EXTENSION};
use civicbus_core::error::{EnvelopeError, EnvelopeErrorKind};
use civicbus_core::ports::{
    DataValidator, Destination, OutboundMessage, PortError, PortErrorKind, Publisher,
    SchemaRejection,
};
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
        "{}event is {size} bytes encoded, over the limit of {limit}; send large documents by reference (the `dataref` extension)",
        field_prefix(.field)
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
    /// An event's data does not match its schema, or its type has none and the tenant's
    /// policy refuses unknown types.
    #[error("{}{rejection}", field_prefix(.field))]
    Schema {
        /// Which event (`[i]` in a batch, empty for one event).
        field: String,
        /// Why, with every violation.
        rejection: SchemaRejection,
    },
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
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
    validator: Option<Arc<dyn DataValidator>>,
}

impl Ingest {
    /// An ingest stage publishing through `publisher`.
    pub fn new(publisher: Arc<dyn Publisher>, limits: IngestLimits) -> Self {
        Ingest {
            publisher,
            limits,
            validator: None,
        }
    }

    /// Check every event's data with `validator` (the schema registry) before it is
    /// accepted.
    pub fn with_validator(mut self, validator: Arc<dyn DataValidator>) -> Self {
        self.validator = Some(validator);
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> &IngestLimits {
        &self.limits
    }

    /// Stamp and encode events for the events exchange, refusing any that claims another
    /// tenant, carries an invalid `traceparent`, cannot travel on RabbitMQ (routing key or
    /// header names over 255 bytes, attribute headers over [`MAX_HEADER_BYTES`]) or is too
    /// large. `batch` says whether errors name a batch position.
    pub fn prepare(
        &self,
        events: Vec<CloudEvent>,
        who: Submitter<'_>,
        batch: bool,
    ) -> Result<Vec<(Destination, OutboundMessage)>, IngestError> {
        // The request's trace context is checked once, whether or not an event uses it:
        // the same header must not be accepted or refused depending on the payload.
        if let Some(tp) = who.traceparent
            && !valid_traceparent(tp)
        {
            return Err(IngestError::Invalid(EnvelopeError::new(
                EnvelopeErrorKind::InvalidAttribute,
                HEADER_TRACEPARENT,
                "not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>); fix or omit the header",
            )));
        }
        let received_at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let mut out = Vec::with_capacity(events.len());
        for (i, mut ev) in events.into_iter().enumerate() {
            let at = |e: EnvelopeError| if batch { e.at_index(i) } else { e };
            // Any claimed tenant counts, whatever its JSON type (`"tenant": 7` is a claim too).
            let claimed = ev.extensions.get(TENANT_EXTENSION).map(|v| v.as_string());
            check_claimed_tenant(claimed.as_deref(), who.tenant)
                .map_err(|e| IngestError::Invalid(at(e)))?;
            ev.set_tenant(who.tenant);
            if let Some(v) = &self.validator
                && let Err(rejection) = v.check(who.tenant, &ev)
            {
                return Err(IngestError::Schema {
                    field: if batch {
                        format!("[{i}]")
                    } else {
                        String::new()
                    },
                    rejection,
                });
            }
            match ev.extensions.get(TRACEPARENT_EXTENSION) {
                Some(ExtensionValue::String(tp)) if valid_traceparent(tp) => {}
                Some(_) => {
                    return Err(IngestError::Invalid(at(EnvelopeError::new(
                        EnvelopeErrorKind::InvalidAttribute,
                        TRACEPARENT_EXTENSION,
                        "the event's `traceparent` is not a W3C traceparent string (00-<32 hex>-<16 hex>-<2 hex>); fix or omit it",
                    ))));
                }
                None => {
                    if let Some(tp) = who.traceparent {
                        ev.extensions.insert(
                            TRACEPARENT_EXTENSION.into(),
                            ExtensionValue::String(tp.to_string()),
                        );
                    }
                }
            }
            let mut headers = vec![
                (HEADER_ACTOR.to_string(), who.actor.to_string()),
                (HEADER_RECEIVED_AT.to_string(), received_at.clone()),
            ];
            if let Some(ExtensionValue::String(tp)) = ev.extensions.get(TRACEPARENT_EXTENSION) {
                headers.push((HEADER_TRACEPARENT.to_string(), tp.clone()));
            }
            let routing_key = format!("{}.{}", who.tenant, ev.ty);
            if routing_key.len() > AMQP_SHORT_STRING {
                return Err(IngestError::Invalid(at(EnvelopeError::new(
                    EnvelopeErrorKind::InvalidAttribute,
                    "type",
                    format!(
                        "`type` is {} bytes long; with the tenant it must fit a RabbitMQ routing key ({AMQP_SHORT_STRING} bytes); use a shorter reverse-DNS type",
                        ev.ty.len()
                    ),
                ))));
            }
            let msg = wire::to_amqp(&ev, headers);
            check_headers(&msg.headers).map_err(|e| IngestError::Invalid(at(e)))?;
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

/// The CloudEvents distributed-tracing extension carrying the W3C trace context.
const TRACEPARENT_EXTENSION: &str = "traceparent";

/// Longest AMQP short string (routing keys, header names), in bytes.
const AMQP_SHORT_STRING: usize = 255;

/// Most bytes of headers (names and values) one event may carry on RabbitMQ. Attributes
/// are copied to headers, and AMQP 0-9-1 sends all headers in one frame (RabbitMQ's
/// default `frame_max` is 128 KiB): a larger header table makes RabbitMQ close the
/// connection, which no retry can fix.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Refuse headers RabbitMQ cannot carry, naming the attribute at fault.
fn check_headers(headers: &[(String, String)]) -> Result<(), EnvelopeError> {
    let attribute = |name: &str| {
        name.strip_prefix(wire::AMQP_HEADER_PREFIX)
            .unwrap_or(name)
            .to_string()
    };
    if let Some((name, _)) = headers.iter().find(|(n, _)| n.len() > AMQP_SHORT_STRING) {
        return Err(EnvelopeError::new(
            EnvelopeErrorKind::InvalidAttribute,
            attribute(name),
            format!(
                "the attribute name is {} bytes long; it travels as a RabbitMQ header name, which allows at most {} bytes with the `{}` prefix; use a shorter name",
                attribute(name).len(),
                AMQP_SHORT_STRING,
                wire::AMQP_HEADER_PREFIX
            ),
        ));
    }
    let total: usize = headers.iter().map(|(n, v)| n.len() + v.len()).sum();
    if total > MAX_HEADER_BYTES {
        let largest = headers
            .iter()
            .max_by_key(|(n, v)| n.len() + v.len())
            .map(|(n, _)| attribute(n))
            .unwrap_or_default();
        return Err(EnvelopeError::new(
            EnvelopeErrorKind::TooLarge,
            largest,
            format!(
                "the event's attributes take {total} bytes as RabbitMQ headers, over the limit of {MAX_HEADER_BYTES}; keep attributes short and put large values in `data`"
            ),
        ));
    }
    Ok(())
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
