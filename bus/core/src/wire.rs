//! How events travel on RabbitMQ: structured mode, attributes copied to `cloudEvents_*`
//! headers; on input, structured or binary mode with any accepted prefix.

use bytes::Bytes;

use crate::binding::{HeaderPrefixes, ParseLimits, parse_binary, parse_structured};
use crate::envelope::{CloudEvent, STRUCTURED_CONTENT_TYPE};
use crate::error::EnvelopeError;
use crate::ports::{InboundMessage, OutboundMessage};

/// Header prefix civicbus writes on RabbitMQ (JMS selectors reject `:`).
pub const AMQP_HEADER_PREFIX: &str = "cloudEvents_";

/// Encode an event for RabbitMQ: structured JSON body, attributes copied to headers,
/// plus `extra` headers.
pub fn to_amqp(event: &CloudEvent, extra: Vec<(String, String)>) -> OutboundMessage {
    let mut headers: Vec<(String, String)> = event
        .attributes()
        .into_iter()
        .map(|(k, v)| (format!("{AMQP_HEADER_PREFIX}{k}"), v))
        .collect();
    headers.extend(extra);
    OutboundMessage {
        body: Bytes::from(event.to_structured_bytes()),
        content_type: STRUCTURED_CONTENT_TYPE.to_string(),
        headers,
        message_id: Some(event.id.clone()),
    }
}

/// Decode an event received from RabbitMQ (structured when the content type says so,
/// else binary mode with attributes in headers).
pub fn from_amqp(msg: &InboundMessage, limits: &ParseLimits) -> Result<CloudEvent, EnvelopeError> {
    let structured = msg.content_type.as_deref().is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|e| e.trim().eq_ignore_ascii_case(STRUCTURED_CONTENT_TYPE))
    });
    if structured {
        parse_structured(&msg.body, limits)
    } else {
        parse_binary(
            msg.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            HeaderPrefixes::Amqp,
            msg.content_type.as_deref(),
            &msg.body,
            limits,
        )
    }
}
