//! Building quarantine records: inputs the bus could not accept, kept with the reason.

use std::time::Duration;

use chrono::Utc;
use civicbus_core::ports::{EventStore, InboundMessage, QuarantineRecord};

use crate::consumer;

/// Why an input is quarantined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// Machine-readable kind (e.g. `missing-attribute`, `unknown-amqp-user`).
    pub kind: String,
    /// Field at fault, if any.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// A quarantine record for a message received from RabbitMQ.
pub fn record_for(
    msg: &InboundMessage,
    tenant: Option<&str>,
    transport: &str,
    reason: &Reason,
) -> QuarantineRecord {
    let mut headers = msg.headers.clone();
    if let Some(u) = &msg.user_id {
        headers.push(("user_id".into(), u.clone()));
    }
    if let Some(ct) = &msg.content_type {
        headers.push(("content_type".into(), ct.clone()));
    }
    if let Some(id) = &msg.message_id {
        headers.push(("message_id".into(), id.clone()));
    }
    QuarantineRecord {
        id: uuid::Uuid::now_v7().to_string(),
        tenant: tenant.map(str::to_string),
        transport: transport.to_string(),
        reason_kind: reason.kind.clone(),
        field: reason.field.clone(),
        reason: reason.message.clone(),
        body: msg.body.to_vec(),
        headers,
        received_at: Utc::now(),
    }
}

/// Quarantine `msg` and ack it; if the store cannot take it, hand it back after
/// `backoff` (normally [`consumer::INFRA_BACKOFF`]).
pub async fn quarantine_and_ack(
    store: &dyn EventStore,
    msg: &InboundMessage,
    tenant: Option<&str>,
    transport: &str,
    reason: Reason,
    backoff: Duration,
) {
    let record = record_for(msg, tenant, transport, &reason);
    tracing::warn!(
        quarantine_id = %record.id,
        tenant = tenant.unwrap_or("-"),
        kind = %reason.kind,
        field = %reason.field,
        "input quarantined: {}", reason.message
    );
    match store.quarantine(&record).await {
        Ok(()) => consumer::ack(msg).await,
        Err(e) => {
            consumer::requeue_after(msg, &format!("store cannot quarantine: {e}"), backoff).await
        }
    }
}
