//! The AMQP sink: delivers an event by publishing it, with confirm, to an exchange.

use async_trait::async_trait;
use civicbus_core::SinkSpec;
use civicbus_core::ports::{
    DeliveryRequest, Destination, PortErrorKind, Publisher, Sink, SinkOutcome,
};
use civicbus_core::wire::to_amqp;

use crate::publisher::BrokerPublisher;

/// Header carrying the delivery's idempotency key (as in Standard Webhooks).
pub const IDEMPOTENCY_HEADER: &str = "webhook-id";
/// Header carrying the W3C trace context.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// Delivers events to subscriptions whose sink is [`SinkSpec::Amqp`]: structured
/// CloudEvent (attributes also in `cloudEvents_*` headers), plus `webhook-id` and
/// `traceparent` headers, published persistent and mandatory to the configured exchange
/// (routing key: the configured one, else the event type), and confirmed.
///
/// Confirmed → delivered; refused (nack, unroutable, missing exchange, access refused) →
/// terminal; connection trouble → retryable.
#[derive(Debug, Clone)]
pub struct AmqpSink {
    publisher: BrokerPublisher,
}

impl AmqpSink {
    /// A sink publishing through `publisher` (a [`BrokerPublisher`] or a
    /// [`Broker`](crate::Broker)).
    pub fn new(publisher: impl Into<BrokerPublisher>) -> Self {
        AmqpSink {
            publisher: publisher.into(),
        }
    }
}

#[async_trait]
impl Sink for AmqpSink {
    async fn deliver(&self, request: DeliveryRequest<'_>) -> SinkOutcome {
        let SinkSpec::Amqp(spec) = &request.subscription.sink else {
            return SinkOutcome::Terminal {
                status: None,
                reason: format!(
                    "subscription '{}' has a {} sink, not an AMQP one",
                    request.subscription.key(),
                    request.subscription.sink.kind()
                ),
            };
        };
        let mut extra = vec![(
            IDEMPOTENCY_HEADER.to_string(),
            request.idempotency_key.to_string(),
        )];
        if let Some(tp) = request.traceparent {
            extra.push((TRACEPARENT_HEADER.to_string(), tp.to_string()));
        }
        let message = to_amqp(request.event, extra);
        let destination = Destination::Exchange {
            exchange: spec.exchange.clone(),
            routing_key: spec
                .routing_key
                .clone()
                .unwrap_or_else(|| request.event.ty.clone()),
        };
        match self
            .publisher
            .publish_confirmed(vec![(destination, message)])
            .await
        {
            Ok(()) => SinkOutcome::Delivered { status: None },
            Err(e) if e.kind == PortErrorKind::Rejected => SinkOutcome::Terminal {
                status: None,
                reason: e.message,
            },
            Err(e) => SinkOutcome::Retryable {
                status: None,
                reason: e.message,
                retry_after: None,
            },
        }
    }
}
