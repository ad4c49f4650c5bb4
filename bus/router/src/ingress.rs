//! AMQP ingress: systems that speak AMQP publish CloudEvents to `civicbus.ingress`.
//!
//! The tenant comes from the publishing RabbitMQ user: RabbitMQ refuses a message whose
//! `user_id` property differs from the connection's user, so `user_id` is an
//! authenticated identity. The configuration maps users to tenants. A message without
//! `user_id`, from an unmapped user, or that is not a valid CloudEvent is quarantined with
//! the reason and acknowledged: never dropped, never redelivered forever.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use civicbus_core::ports::{EventStore, InboundMessage};
use civicbus_core::wire;

use crate::consumer;
use crate::ingest::{Ingest, IngestError, Submitter};
use crate::quarantine::{Reason, quarantine_and_ack};

/// Handles messages from the ingress queue.
pub struct IngressWorker {
    ingest: Arc<Ingest>,
    store: Arc<dyn EventStore>,
    users: BTreeMap<String, String>,
    infra_backoff: Duration,
}

impl IngressWorker {
    /// A worker mapping RabbitMQ `users` (user → tenant).
    pub fn new(
        ingest: Arc<Ingest>,
        store: Arc<dyn EventStore>,
        users: BTreeMap<String, String>,
    ) -> Self {
        IngressWorker {
            ingest,
            store,
            users,
            infra_backoff: consumer::INFRA_BACKOFF,
        }
    }

    /// How long to hold a message before handing it back when RabbitMQ or the store is
    /// failing (default [`consumer::INFRA_BACKOFF`]).
    pub fn with_infra_backoff(mut self, backoff: Duration) -> Self {
        self.infra_backoff = backoff;
        self
    }

    /// Process one message: publish it to the events exchange, or quarantine it.
    pub async fn handle(&self, msg: InboundMessage) {
        let Some(user) = msg.user_id.clone() else {
            return self
                .quarantine(&msg, None, "missing-user-id", "user_id", "the message has no user_id property; set it to your RabbitMQ user name (RabbitMQ verifies it) so civicbus knows your tenant")
                .await;
        };
        let Some(tenant) = self.users.get(&user).cloned() else {
            let why = format!(
                "RabbitMQ user `{user}` is not mapped to a tenant; add it to `amqp_users` of its tenant in the configuration"
            );
            return self
                .quarantine(&msg, None, "unknown-amqp-user", "user_id", &why)
                .await;
        };
        let event = match wire::from_amqp(&msg, &self.ingest.limits().parse) {
            Ok(ev) => ev,
            Err(e) => {
                return self
                    .quarantine(&msg, Some(&tenant), e.kind.slug(), &e.field, &e.message)
                    .await;
            }
        };
        let who = Submitter {
            tenant: &tenant,
            actor: &user,
            traceparent: msg.header("traceparent"),
        };
        match self.ingest.submit(vec![event], who, false).await {
            Ok(_) => consumer::ack(&msg).await,
            Err(IngestError::Invalid(e)) => {
                self.quarantine(&msg, Some(&tenant), e.kind.slug(), &e.field, &e.message)
                    .await
            }
            Err(IngestError::Schema { rejection, .. }) => {
                let kind = match rejection.kind {
                    civicbus_core::ports::SchemaRejectionKind::Invalid => "schema-violation",
                    civicbus_core::ports::SchemaRejectionKind::UnknownType => "unknown-type",
                    civicbus_core::ports::SchemaRejectionKind::UnknownSchema => "unknown-schema",
                };
                let field = rejection
                    .violations
                    .first()
                    .map(|v| format!("data{}", v.pointer))
                    .unwrap_or_else(|| "type".into());
                self.quarantine(&msg, Some(&tenant), kind, &field, &rejection.to_string())
                    .await
            }
            Err(e @ IngestError::TooLarge { .. }) => {
                self.quarantine(&msg, Some(&tenant), "too-large", "", &e.to_string())
                    .await
            }
            Err(e) => {
                consumer::requeue_after(
                    &msg,
                    &format!("cannot publish to the events exchange: {e}"),
                    self.infra_backoff,
                )
                .await
            }
        }
    }

    async fn quarantine(
        &self,
        msg: &InboundMessage,
        tenant: Option<&str>,
        kind: &str,
        field: &str,
        message: &str,
    ) {
        let reason = Reason {
            kind: kind.to_string(),
            field: field.to_string(),
            message: message.to_string(),
        };
        quarantine_and_ack(
            self.store.as_ref(),
            msg,
            tenant,
            "amqp",
            reason,
            self.infra_backoff,
        )
        .await;
    }
}
