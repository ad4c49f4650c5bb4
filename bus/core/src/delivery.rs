//! What travels from the router to a subscription's queue, and the idempotency key.

use sha2::{Digest, Sha256};

/// AMQP header naming the subscription key a delivery message is for.
pub const HEADER_SUBSCRIPTION: &str = "x-civicbus-subscription";
/// AMQP header holding the output index (0 until transforms emit several events).
pub const HEADER_OUTPUT_INDEX: &str = "x-civicbus-output-index";
/// AMQP header naming who submitted an event (a credential name), for the audit log.
pub const HEADER_ACTOR: &str = "x-civicbus-actor";
/// AMQP header with the RFC 3339 time the bus accepted the event.
pub const HEADER_RECEIVED_AT: &str = "x-civicbus-received-at";
/// AMQP header with the W3C trace context of the request that brought the event in.
pub const HEADER_TRACEPARENT: &str = "traceparent";

/// The stable idempotency key of one delivery: subscription + event source + event id +
/// output index. Sent as `webhook-id`; the same on every attempt and every redelivery.
pub fn idempotency_key(
    subscription_key: &str,
    source: &str,
    id: &str,
    output_index: u32,
) -> String {
    let mut h = Sha256::new();
    for part in [subscription_key, source, id] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.update(output_index.to_be_bytes());
    let digest = h.finalize();
    format!("msg_{}", hex::encode(&digest[..16]))
}

/// AMQP header with the number of the next delivery attempt (1 for the first).
pub const HEADER_ATTEMPT: &str = "x-civicbus-attempt";
/// AMQP header on a dead letter: why the last attempt failed.
pub const HEADER_ERROR: &str = "x-civicbus-error";
/// AMQP header on a dead letter: the outcome of the last attempt (`terminal`, `gone`, …).
pub const HEADER_OUTCOME: &str = "x-civicbus-outcome";
/// AMQP header on a dead letter: why it was dead-lettered (`terminal`, `gone`,
/// `attempts-exhausted`, `max-age-exceeded`).
pub const HEADER_DEAD_LETTER_REASON: &str = "x-civicbus-dead-letter-reason";

/// Header on a transform's output: the plugins (`name@sha256:…`, comma-separated) that
/// produced it. Its presence means the message is transformed already.
pub const HEADER_TRANSFORMED_BY: &str = "x-civicbus-transformed-by";
