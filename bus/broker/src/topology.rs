//! The names of every exchange and queue civicbus uses on RabbitMQ.

/// Base name of the ingress exchange and queue (systems publish CloudEvents here).
pub const INGRESS: &str = "civicbus.ingress";
/// Base name of the events exchange (topic, routing key `<tenant>.<type>`).
pub const EVENTS: &str = "civicbus.events";
/// Base name of the route queue (bound to the events exchange with `#`).
pub const ROUTE: &str = "civicbus.route";
/// Base name prefix of per-subscription delivery queues (`civicbus.sub.<tenant>.<id>`).
pub const SUBSCRIPTION_PREFIX: &str = "civicbus.sub.";
/// Base name of the delay exchange (headers) and its level queues.
pub const DELAY: &str = "civicbus.delay";
/// Number of delay levels: level `k` waits up to 2^k seconds (1 s … 2^17 s ≈ 36 h).
pub const DELAY_LEVELS: u32 = 18;
/// Header that routes a delayed message to its level queue.
pub const DELAY_LEVEL_HEADER: &str = "civicbus-delay-level";
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
/// | dead-letter queue | `<p>civicbus.sub.<tenant>.<id>.dead` | quorum |
/// | delay exchange | `<p>civicbus.delay` | headers, on `civicbus-delay-level` (headers exchanges ignore `x-` headers) |
/// | delay queues | `<p>civicbus.delay.<2^k>s`, k = 0…17 | quorum; each message carries its own TTL (`expiration`) of at most 2^k s, then is dead-lettered (at least once) through the default exchange to the queue named by its routing key: its subscription's delivery queue |
///
/// Delay queues are shared by all subscriptions: a retry is published to the delay
/// exchange with the delivery queue's name as routing key, so when its TTL expires
/// RabbitMQ dead-letters it straight back there. A wait of `d` goes to the smallest level
/// `2^k ≥ d`; as every message in a level waits between half the level and the level, a
/// message is delayed at most until the older ones ahead of it expire (never more than
/// 2^k s).
///
/// Declaring is done by [`crate::Broker::declare_base`] and
/// [`crate::Broker::declare_subscription`].
///
/// A subscription id should not end in `.dead`: its delivery queue would be another
/// subscription's dead-letter queue (civicbus's own ids cannot contain dots).
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

    /// The delay exchange.
    pub fn delay_exchange(&self) -> String {
        format!("{}{DELAY}", self.prefix)
    }

    /// The delay queue of `level` (waits up to 2^level seconds).
    pub fn delay_queue(&self, level: u32) -> String {
        format!(
            "{}{DELAY}.{}s",
            self.prefix,
            1u64 << level.min(DELAY_LEVELS - 1)
        )
    }

    /// The level for a wait of `delay`: the smallest `k` with 2^k s ≥ `delay` (capped).
    pub fn delay_level(delay: std::time::Duration) -> u32 {
        let ms = delay.as_millis();
        (0..DELAY_LEVELS)
            .find(|k| u128::from(1u64 << k) * 1000 >= ms)
            .unwrap_or(DELAY_LEVELS - 1)
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
        assert_eq!(t.delay_exchange(), "tabc.civicbus.delay");
        assert_eq!(t.delay_queue(0), "tabc.civicbus.delay.1s");
        assert_eq!(t.delay_queue(17), "tabc.civicbus.delay.131072s");
        use std::time::Duration;
        assert_eq!(Topology::delay_level(Duration::from_millis(1)), 0);
        assert_eq!(Topology::delay_level(Duration::from_secs(1)), 0);
        assert_eq!(Topology::delay_level(Duration::from_millis(1001)), 1);
        assert_eq!(Topology::delay_level(Duration::from_secs(5)), 3);
        assert_eq!(Topology::delay_level(Duration::from_secs(86_400)), 17);
        assert_eq!(Topology::delay_level(Duration::from_secs(10_000_000)), 17);
        assert_eq!(t.dead_letter_queue("a.b"), "tabc.civicbus.sub.a.b.dead");
        let p = Topology::production();
        assert_eq!(p.route_queue(), "civicbus.route");
        assert_eq!(
            Topology::events_routing_key("dysart", "ca.haliburton.permit.issued"),
            "dysart.ca.haliburton.permit.issued"
        );
    }
}
