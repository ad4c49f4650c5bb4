//! civicbus broker adapter: RabbitMQ topology, confirmed publishing, consumers and the
//! AMQP sink. This is the only crate that names `lapin`; the rest of the bus sees the
//! ports of [`civicbus_core::ports`].
//!
//! - [`Topology`] names every exchange and queue (with a prefix so tests can isolate).
//! - [`Broker`] is one connection with automatic recovery: it declares the topology,
//!   lends a [`BrokerPublisher`] (implements [`civicbus_core::ports::Publisher`]) and
//!   starts [`BrokerConsumer`]s (streams of [`civicbus_core::ports::InboundMessage`]).
//! - [`AmqpSink`] implements [`civicbus_core::ports::Sink`] for `SinkSpec::Amqp`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), civicbus_core::ports::PortError> {
//! use civicbus_broker::{Broker, BrokerOptions, Topology};
//! use civicbus_core::ports::{Destination, OutboundMessage, Publisher};
//! use futures::StreamExt;
//!
//! let broker = Broker::connect(
//!     "amqp://guest:guest@127.0.0.1:5672/%2f",
//!     Topology::production(),
//!     BrokerOptions::default(),
//! )
//! .await?;
//! broker.declare_base().await?;
//! broker
//!     .publisher()
//!     .publish_confirmed(vec![(
//!         Destination::Events { routing_key: "dysart.ca.haliburton.permit.issued".into() },
//!         OutboundMessage {
//!             body: "{}".into(),
//!             content_type: "application/json".into(),
//!             headers: vec![],
//!             message_id: Some("P-1".into()),
//!         },
//!     )])
//!     .await?;
//! let mut route = broker.consume_route().await?;
//! if let Some(message) = route.next().await {
//!     message?.acker.ack().await?;
//! }
//! broker.close().await?;
//! # Ok(())
//! # }
//! ```

mod broker;
mod consumer;
mod error;
mod headers;
mod publisher;
mod sink;
mod topology;

pub use broker::{Broker, BrokerOptions, ExchangeType, QueueStats};
pub use consumer::BrokerConsumer;
pub use error::{BROKER_URL_ENV, redact_url};
pub use headers::DELIVERY_COUNT_HEADER;
pub use publisher::BrokerPublisher;
pub use sink::{AmqpSink, IDEMPOTENCY_HEADER, TRACEPARENT_HEADER};
pub use topology::Topology;

#[cfg(test)]
mod send_checks {
    //! Compile-time checks: the futures and streams the server spawns are `Send`.

    use super::*;

    fn is_send<T: Send>(_: &T) {}

    #[allow(dead_code)]
    fn futures_are_send(b: &Broker, c: BrokerConsumer) {
        is_send(&b.consume_route());
        is_send(&b.consume_ingress());
        is_send(&b.consume_subscription("k", 1));
        is_send(&b.declare_base());
        is_send(&b.declare_subscription("k"));
        is_send(&b.queue_stats("q"));
        is_send(&b.close());
        is_send(&b.publisher().publish_confirmed_as("u", vec![]));
        is_send(&c.cancel());
    }

    #[allow(dead_code)]
    fn consumer_is_send_and_static(c: BrokerConsumer) -> impl futures::Stream + Send + 'static {
        c
    }
}
