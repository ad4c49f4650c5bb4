//! The names of every exchange and queue civicbus uses on RabbitMQ.

/// Base name of the ingress exchange and queue (systems publish CloudEvents here).
pub const INGRESS: &str = "civicbus.ingress";
/// Base name of the events exchange (topic, routing key `<tenant>.<type>`).
pub const EVENTS: &str = "civicbus.events";
/// Base name of the route queue (bound to the events exchange with `#`).
pub const ROUTE: &str = "civicbus.route";
/// Base name prefix of per-subscription delivery queues (`civicbus.sub.<tenant>.<id>`).
pub const SUBSCRIPTION_PREFIX: &str = "civicbus.sub.";
/// Suffix of a subscription's retry (wait) queue.
pub const RETRY_SUFFIX: &str = ".retry";
/// Suffix of a subscription's dead-letter queue.
pub const DEAD_LETTER_SUFFIX: &str = ".dead";

/// Names every exchange and queue of one civicbus deployment.
///
/// The prefix is `""` in production. Tests use a unique prefix (e.g. `t<uuid>.`) so they
/// can share one RabbitMQ without seeing each other's messages.
///
/// | object | name | kind |
/// |---|---|---|
/// | ingress exchange | `<p>civicbus.ingress` | topic |
/// | events exchange | `<p>civicbus.events` | topic, key `<tenant>.<type>` |
/// | ingress queue | `<p>civicbus.ingress` | quorum, bound to ingress with `#` |
/// | route queue | `<p>civicbus.route` | quorum, bound to events with `#` |
/// | delivery queue | `<p>civicbus.sub.<tenant>.<id>` | quorum, one per subscription |
/// | retry queue | `<p>civicbus.sub.<tenant>.<id>.retry` | quorum, message TTL = retry delay, dead-letters (at least once) back to the delivery queue |
/// | dead-letter queue | `<p>civicbus.sub.<tenant>.<id>.dead` | quorum |
///
/// Declaring is done by [`crate::Broker::declare_base`] and
/// [`crate::Broker::declare_subscription`].
///
/// A subscription id should not end in `.retry` or `.dead`: its delivery queue would be
/// another subscription's retry or dead-letter queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
}

impl Topology {
    /// A topology whose names all start with `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Topology {
            prefix: prefix.into(),
        }
    }

    /// The production topology (empty prefix).
    pub fn production() -> Self {
        Topology::default()
    }

    /// The prefix every name starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The exchange systems publish CloudEvents to (topic).
    pub fn ingress_exchange(&self) -> String {
        format!("{}{INGRESS}", self.prefix)
    }

    /// The queue the ingest consumer reads (bound to the ingress exchange with `#`).
    pub fn ingress_queue(&self) -> String {
        format!("{}{INGRESS}", self.prefix)
    }

    /// The exchange accepted events are published to (topic, key `<tenant>.<type>`).
    pub fn events_exchange(&self) -> String {
        format!("{}{EVENTS}", self.prefix)
    }

    /// The queue the router reads (bound to the events exchange with `#`).
    pub fn route_queue(&self) -> String {
        format!("{}{ROUTE}", self.prefix)
    }

    /// The delivery queue of one subscription, by subscription key (`<tenant>.<id>`).
    pub fn subscription_queue(&self, key: &str) -> String {
        format!("{}{SUBSCRIPTION_PREFIX}{key}", self.prefix)
    }

    /// The retry (wait) queue of one subscription: messages wait there for the retry
    /// delay, then RabbitMQ dead-letters them back to the delivery queue.
    pub fn retry_queue(&self, key: &str) -> String {
        format!("{}{RETRY_SUFFIX}", self.subscription_queue(key))
    }

    /// The dead-letter queue of one subscription (deliveries that failed for good).
    pub fn dead_letter_queue(&self, key: &str) -> String {
        format!("{}{DEAD_LETTER_SUFFIX}", self.subscription_queue(key))
    }

    /// The routing key of an event on the events exchange: `<tenant>.<type>`.
    pub fn events_routing_key(tenant: &str, ty: &str) -> String {
        format!("{tenant}.{ty}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let t = Topology::new("tabc.");
        assert_eq!(t.ingress_exchange(), "tabc.civicbus.ingress");
        assert_eq!(t.ingress_queue(), "tabc.civicbus.ingress");
        assert_eq!(t.events_exchange(), "tabc.civicbus.events");
        assert_eq!(t.route_queue(), "tabc.civicbus.route");
        assert_eq!(
            t.subscription_queue("dysart.records"),
            "tabc.civicbus.sub.dysart.records"
        );
        assert_eq!(t.retry_queue("a.b"), "tabc.civicbus.sub.a.b.retry");
        assert_eq!(t.dead_letter_queue("a.b"), "tabc.civicbus.sub.a.b.dead");
        let p = Topology::production();
        assert_eq!(p.route_queue(), "civicbus.route");
        assert_eq!(
            Topology::events_routing_key("dysart", "ca.haliburton.permit.issued"),
            "dysart.ca.haliburton.permit.issued"
        );
    }
}
