//! Subscriptions, their sinks, and the routing table that matches events to them.

use std::time::Duration;

use crate::envelope::CloudEvent;
use crate::filter::{Filter, matches_all};
use crate::tenant::SharingRule;

/// How a webhook carries the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpMode {
    /// CloudEvents HTTP binary mode: attributes as `ce-*` headers, body = data.
    #[default]
    Binary,
    /// CloudEvents HTTP structured mode: `application/cloudevents+json` body.
    Structured,
}

/// Where a webhook subscription sends its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSpec {
    /// Endpoint URL.
    pub url: String,
    /// Signing secrets (`whsec_…`); every one signs, so a subscriber can rotate.
    pub secrets: Vec<String>,
    /// Binding mode.
    pub mode: HttpMode,
    /// Time allowed for the whole request.
    pub timeout: Duration,
}

/// Where an AMQP subscription publishes its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpSinkSpec {
    /// Target exchange (must exist; `""` is the default exchange).
    pub exchange: String,
    /// Routing key; `None` uses the event type.
    pub routing_key: Option<String>,
}

/// A subscription's sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    /// Deliver over HTTP with Standard Webhooks signatures.
    Webhook(WebhookSpec),
    /// Publish to a RabbitMQ exchange with confirms.
    Amqp(AmqpSinkSpec),
}

impl SinkSpec {
    /// A short name of the sink kind, for logs and tables.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkSpec::Webhook(_) => "webhook",
            SinkSpec::Amqp(_) => "amqp",
        }
    }
}

/// A tenant's subscription: which events, delivered where.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// Name, unique within the tenant.
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// Filters that must all match (empty = every visible event).
    pub filters: Vec<Filter>,
    /// Where events go.
    pub sink: SinkSpec,
    /// Most deliveries in flight at once for this subscription.
    pub concurrency: u16,
    /// When failed deliveries are retried and when they are dead-lettered.
    pub retry: crate::retry::RetryPolicy,
    /// Whether events with the same ordering key are delivered in order.
    pub ordering: Ordering,
}

/// Delivery order of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ordering {
    /// Deliveries run concurrently and retries overtake: no order (the default, fastest).
    #[default]
    Unordered,
    /// Events with the same ordering key ([`ordering_key`]: `partitionkey`, else
    /// `subject`) are delivered one at a time, in the order civicbus accepted them; a
    /// failing event holds back later events with its key only. Events with neither
    /// attribute are delivered unordered.
    PerSubject,
}

/// The key that orders an event in a [`Ordering::PerSubject`] subscription: the
/// `partitionkey` extension if set, else `subject`.
pub fn ordering_key(event: &CloudEvent) -> Option<String> {
    event
        .extensions
        .get(PARTITION_KEY_EXTENSION)
        .map(|v| v.as_string())
        .or_else(|| event.subject.clone())
        .filter(|k| !k.is_empty())
}

/// The CloudEvents `partitionkey` extension (Partitioning extension).
pub const PARTITION_KEY_EXTENSION: &str = "partitionkey";

impl Subscription {
    /// The subscription's key, unique across tenants: `<tenant>.<id>`.
    pub fn key(&self) -> String {
        format!("{}.{}", self.tenant, self.id)
    }
}

/// The routing table: subscriptions plus sharing rules.
#[derive(Debug, Clone, Default)]
pub struct RoutingTable {
    subscriptions: Vec<Subscription>,
    shares: Vec<SharingRule>,
}

impl RoutingTable {
    /// A table over these subscriptions and sharing rules.
    pub fn new(subscriptions: Vec<Subscription>, shares: Vec<SharingRule>) -> Self {
        RoutingTable {
            subscriptions,
            shares,
        }
    }

    /// Every subscription.
    pub fn subscriptions(&self) -> &[Subscription] {
        &self.subscriptions
    }

    /// A subscription by key (`<tenant>.<id>`).
    pub fn get(&self, key: &str) -> Option<&Subscription> {
        self.subscriptions.iter().find(|s| s.key() == key)
    }

    /// Whether `viewer` may see an event of tenant `owner` with type `ty`.
    pub fn visible(&self, owner: &str, ty: &str, viewer: &str) -> bool {
        owner == viewer || self.shares.iter().any(|r| r.allows(owner, ty, viewer))
    }

    /// The subscriptions an event goes to: visible to the subscription's tenant and
    /// passing its filters. An event without a tenant goes nowhere.
    pub fn route(&self, event: &CloudEvent) -> Vec<&Subscription> {
        let Some(owner) = event.tenant() else {
            return Vec::new();
        };
        self.subscriptions
            .iter()
            .filter(|s| self.visible(owner, &event.ty, &s.tenant))
            .filter(|s| matches_all(&s.filters, event))
            .collect()
    }
}

#[cfg(test)]
mod ordering_tests {
    use super::*;
    use crate::envelope::ExtensionValue;

    #[test]
    fn partitionkey_wins_over_subject_and_empty_is_none() {
        let mut ev = CloudEvent::new("1", "/dysart/permitting", "t").expect("valid");
        assert_eq!(ordering_key(&ev), None);
        ev.subject = Some("BP-1".into());
        assert_eq!(ordering_key(&ev).as_deref(), Some("BP-1"));
        ev.extensions.insert(
            PARTITION_KEY_EXTENSION.into(),
            ExtensionValue::String("roll-4410".into()),
        );
        assert_eq!(ordering_key(&ev).as_deref(), Some("roll-4410"));
        ev.extensions.insert(
            PARTITION_KEY_EXTENSION.into(),
            ExtensionValue::String(String::new()),
        );
        ev.subject = None;
        assert_eq!(ordering_key(&ev), None);
    }
}
