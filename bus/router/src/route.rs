//! Routing: archive each accepted event, match subscriptions, enqueue one delivery per
//! match on the subscription's queue, and only then acknowledge the source message.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use civicbus_core::binding::ParseLimits;
use civicbus_core::delivery::{
    HEADER_ACTOR, HEADER_ATTEMPT, HEADER_OUTPUT_INDEX, HEADER_RECEIVED_AT, HEADER_SUBSCRIPTION,
    HEADER_TRACEPARENT,
};
use civicbus_core::ports::{ArchivedEvent, Destination, EventStore, InboundMessage, Publisher};
use civicbus_core::{RoutingTable, wire};

use crate::consumer;
use crate::quarantine::{Reason, quarantine_and_ack};

/// Handles messages from the route queue.
pub struct RouteWorker {
    table: Arc<RoutingTable>,
    store: Arc<dyn EventStore>,
    publisher: Arc<dyn Publisher>,
    limits: ParseLimits,
    infra_backoff: Duration,
}

impl RouteWorker {
    /// A worker routing with `table`.
    pub fn new(
        table: Arc<RoutingTable>,
        store: Arc<dyn EventStore>,
        publisher: Arc<dyn Publisher>,
        limits: ParseLimits,
    ) -> Self {
        RouteWorker {
            table,
            store,
            publisher,
            limits,
            infra_backoff: consumer::INFRA_BACKOFF,
        }
    }

    /// How long to hold a message before handing it back when RabbitMQ or the store is
    /// failing (default [`consumer::INFRA_BACKOFF`]).
    pub fn with_infra_backoff(mut self, backoff: Duration) -> Self {
        self.infra_backoff = backoff;
        self
    }

    /// Route one event. Settles the message: ack after the archive committed and every
    /// delivery was confirmed; redelivery (after a pause) if either failed.
    pub async fn handle(&self, msg: InboundMessage) {
        let event = match wire::from_amqp(&msg, &self.limits) {
            Ok(ev) => ev,
            Err(e) => {
                let reason = Reason {
                    kind: e.kind.slug().into(),
                    field: e.field.clone(),
                    message: format!(
                        "a message on the events exchange is not a valid CloudEvent: {}",
                        e.message
                    ),
                };
                return self.quarantine(&msg, reason).await;
            }
        };
        let Some(tenant) = event.tenant().map(str::to_string) else {
            let reason = Reason {
                kind: "missing-tenant".into(),
                field: "tenant".into(),
                message: "an event on the events exchange has no tenant; publish through the API or the ingress exchange".into(),
            };
            return self.quarantine(&msg, reason).await;
        };
        let received_at = msg
            .header(HEADER_RECEIVED_AT)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(Utc::now);
        let actor = msg.header(HEADER_ACTOR).unwrap_or("unknown").to_string();
        let subs = self.table.route(&event);
        let keys: Vec<String> = subs.iter().map(|s| s.key()).collect();
        let archived = ArchivedEvent {
            event,
            tenant,
            received_at,
            actor,
        };
        if let Err(e) = self.store.archive(&archived, &keys).await {
            return consumer::requeue_after(
                &msg,
                &format!("store cannot archive: {e}"),
                self.infra_backoff,
            )
            .await;
        }
        if !keys.is_empty() {
            let traceparent = msg.header(HEADER_TRACEPARENT).map(str::to_string);
            let template = wire::to_amqp(&archived.event, Vec::new());
            let received = archived
                .received_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            let deliveries = keys
                .iter()
                .map(|key| {
                    let mut m = template.clone();
                    m.headers.push((HEADER_SUBSCRIPTION.into(), key.clone()));
                    m.headers.push((HEADER_OUTPUT_INDEX.into(), "0".into()));
                    m.headers.push((HEADER_ATTEMPT.into(), "1".into()));
                    m.headers
                        .push((HEADER_RECEIVED_AT.into(), received.clone()));
                    if let Some(tp) = &traceparent {
                        m.headers.push((HEADER_TRACEPARENT.into(), tp.clone()));
                    }
                    (Destination::Subscription { key: key.clone() }, m)
                })
                .collect();
            if let Err(e) = self.publisher.publish_confirmed(deliveries).await {
                return consumer::requeue_after(
                    &msg,
                    &format!("cannot enqueue deliveries: {e}"),
                    self.infra_backoff,
                )
                .await;
            }
        }
        tracing::debug!(
            event_id = %archived.event.id,
            tenant = %archived.tenant,
            subscriptions = keys.len(),
            "event routed"
        );
        consumer::ack(&msg).await;
    }

    async fn quarantine(&self, msg: &InboundMessage, reason: Reason) {
        quarantine_and_ack(
            self.store.as_ref(),
            msg,
            None,
            "events",
            reason,
            self.infra_backoff,
        )
        .await;
    }
}
