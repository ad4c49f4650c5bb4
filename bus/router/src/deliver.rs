//! Delivery: one worker per subscription sends each event through the subscription's sink,
//! records the attempt, and settles the message. A delivery that already succeeded (same
//! idempotency key) is not sent again. A retryable failure waits durably in RabbitMQ's
//! delay queues for as long as the subscription's retry policy says (or the subscriber's
//! `Retry-After`); a terminal one, or one whose retries are exhausted, is recorded as a
//! dead letter in the store and moved to the subscription's dead-letter queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use civicbus_core::binding::ParseLimits;
use civicbus_core::delivery::{
    HEADER_ATTEMPT, HEADER_DEAD_LETTER_REASON, HEADER_ERROR, HEADER_OUTCOME, HEADER_OUTPUT_INDEX,
    HEADER_RECEIVED_AT, HEADER_TRACEPARENT, idempotency_key,
};
use civicbus_core::ports::{
    AttemptStatus, DeadLetter, DeadLetterReason, DeliveryAttempt, DeliveryRequest, Destination,
    EventStore, InboundMessage, OutboundMessage, Publisher, Sink, SinkOutcome,
};
use civicbus_core::{RetryDecision, Subscription, wire};

use crate::consumer;
use crate::quarantine::{Reason, quarantine_and_ack};

/// Delivers the messages of one subscription's queue.
pub struct DeliveryWorker {
    subscription: Subscription,
    key: String,
    sink: Arc<dyn Sink>,
    store: Arc<dyn EventStore>,
    publisher: Arc<dyn Publisher>,
    limits: ParseLimits,
    infra_backoff: Duration,
}

impl DeliveryWorker {
    /// A worker for `subscription` delivering through `sink`.
    pub fn new(
        subscription: Subscription,
        sink: Arc<dyn Sink>,
        store: Arc<dyn EventStore>,
        publisher: Arc<dyn Publisher>,
        limits: ParseLimits,
    ) -> Self {
        let key = subscription.key();
        DeliveryWorker {
            subscription,
            key,
            sink,
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

    /// The subscription served.
    pub fn subscription(&self) -> &Subscription {
        &self.subscription
    }

    /// Deliver one message and settle it.
    pub async fn handle(&self, msg: InboundMessage) {
        let event = match wire::from_amqp(&msg, &self.limits) {
            Ok(ev) => ev,
            Err(e) => {
                let reason = Reason {
                    kind: e.kind.slug().into(),
                    field: e.field.clone(),
                    message: format!(
                        "a message on the delivery queue of {} is not a valid CloudEvent: {}",
                        self.key, e.message
                    ),
                };
                return quarantine_and_ack(
                    self.store.as_ref(),
                    &msg,
                    Some(&self.subscription.tenant),
                    "delivery",
                    reason,
                    self.infra_backoff,
                )
                .await;
            }
        };
        let output_index: u32 = msg
            .header(HEADER_OUTPUT_INDEX)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        // Attempts count from 1; a missing, garbled or zero header starts over at 1.
        let first_attempt: u32 = msg
            .header(HEADER_ATTEMPT)
            .and_then(|v| v.trim().parse().ok())
            .filter(|&n| n >= 1)
            .unwrap_or(1);
        let attempt = first_attempt.saturating_add(msg.delivery_count);
        let key = idempotency_key(&self.key, &event.source, &event.id, output_index);
        let received_at = msg
            .header(HEADER_RECEIVED_AT)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc));

        match self.store.is_delivered(&key).await {
            Ok(true) => {
                tracing::debug!(webhook_id = %key, subscription = %self.key, "already delivered; not sending again");
                return consumer::ack(&msg).await;
            }
            Ok(false) => {}
            Err(e) => {
                return consumer::requeue_after(
                    &msg,
                    &format!("store cannot check idempotency: {e}"),
                    self.infra_backoff,
                )
                .await;
            }
        }

        let started = Instant::now();
        let at = Utc::now();
        let traceparent = msg.header(HEADER_TRACEPARENT);
        let outcome = self
            .sink
            .deliver(DeliveryRequest {
                event: &event,
                subscription: &self.subscription,
                idempotency_key: &key,
                attempt,
                traceparent,
            })
            .await;
        let record = DeliveryAttempt {
            idempotency_key: key.clone(),
            tenant: self.subscription.tenant.clone(),
            subscription: self.key.clone(),
            event_tenant: event.tenant().unwrap_or_default().to_string(),
            event_source: event.source.clone(),
            event_id: event.id.clone(),
            attempt,
            status: outcome.status(),
            response_code: outcome.response_code(),
            error: outcome.error().map(str::to_string),
            duration: started.elapsed(),
            at,
        };
        if let Err(e) = self.store.record_attempt(&record).await {
            // Without the record the attempt cannot be proven; deliver again later (the
            // subscriber deduplicates by webhook-id).
            return consumer::requeue_after(
                &msg,
                &format!("store cannot record the attempt: {e}"),
                self.infra_backoff,
            )
            .await;
        }
        let reason = match &outcome {
            SinkOutcome::Delivered { .. } => {
                tracing::debug!(webhook_id = %key, subscription = %self.key, attempt, "delivered");
                return consumer::ack(&msg).await;
            }
            SinkOutcome::Retryable {
                reason,
                retry_after,
                ..
            } => {
                let age = received_at
                    .and_then(|t| (Utc::now() - t).to_std().ok())
                    .unwrap_or_default();
                match self
                    .subscription
                    .retry
                    .decide(&key, attempt, age, *retry_after)
                {
                    RetryDecision::RetryAfter(delay) => {
                        tracing::info!(webhook_id = %key, subscription = %self.key, attempt, retry_in = ?delay, reason = %reason, "delivery failed; will retry");
                        let next = self.republish(&msg, attempt.saturating_add(1), &outcome, None);
                        return self
                            .forward(
                                &msg,
                                Destination::Retry {
                                    key: self.key.clone(),
                                    delay,
                                },
                                next,
                            )
                            .await;
                    }
                    RetryDecision::GiveUp(why) => why,
                }
            }
            SinkOutcome::Terminal { .. } => DeadLetterReason::Terminal,
            SinkOutcome::Gone { .. } => DeadLetterReason::Gone,
        };
        tracing::warn!(
            webhook_id = %key,
            subscription = %self.key,
            attempt,
            reason = reason.as_str(),
            error = outcome.error().unwrap_or(""),
            "delivery failed for good; dead-lettered"
        );
        let record = DeadLetter {
            id: uuid::Uuid::now_v7().to_string(),
            tenant: self.subscription.tenant.clone(),
            subscription: self.key.clone(),
            idempotency_key: key.clone(),
            event_tenant: event.tenant().unwrap_or_default().to_string(),
            event,
            reason,
            error: outcome.error().unwrap_or_default().to_string(),
            last_response_code: outcome.response_code(),
            attempts: attempt,
            received_at,
            created_at: Utc::now(),
        };
        // The store's record first (it is what operators triage), then the queue copy;
        // ack only when both are safe.
        if let Err(e) = self.store.dead_letter(&record).await {
            return consumer::requeue_after(
                &msg,
                &format!("store cannot record the dead letter: {e}"),
                self.infra_backoff,
            )
            .await;
        }
        let dead = self.republish(&msg, attempt, &outcome, Some(reason));
        self.forward(
            &msg,
            Destination::DeadLetter {
                key: self.key.clone(),
            },
            dead,
        )
        .await;
    }

    /// The message to publish again (to retry or dead-letter), carrying the attempt count
    /// and the failure.
    fn republish(
        &self,
        msg: &InboundMessage,
        attempt: u32,
        outcome: &SinkOutcome,
        dead: Option<DeadLetterReason>,
    ) -> OutboundMessage {
        let mut headers: Vec<(String, String)> = msg
            .headers
            .iter()
            .filter(|(k, _)| {
                k != HEADER_ATTEMPT
                    && k != HEADER_ERROR
                    && k != HEADER_OUTCOME
                    && k != HEADER_DEAD_LETTER_REASON
                    && !k.starts_with("x-death")
                    && k != "x-delivery-count"
                    && !k.starts_with("x-first-death")
                    && !k.starts_with("x-last-death")
            })
            .cloned()
            .collect();
        headers.push((HEADER_ATTEMPT.into(), attempt.to_string()));
        headers.push((HEADER_OUTCOME.into(), outcome.status().as_str().into()));
        if let Some(err) = outcome.error() {
            headers.push((HEADER_ERROR.into(), err.chars().take(500).collect()));
        }
        if let Some(reason) = dead {
            headers.push((HEADER_DEAD_LETTER_REASON.into(), reason.as_str().into()));
        }
        OutboundMessage {
            body: msg.body.clone(),
            content_type: msg
                .content_type
                .clone()
                .unwrap_or_else(|| civicbus_core::envelope::STRUCTURED_CONTENT_TYPE.into()),
            headers,
            message_id: msg.message_id.clone(),
        }
    }

    async fn forward(&self, msg: &InboundMessage, to: Destination, out: OutboundMessage) {
        match self.publisher.publish_confirmed(vec![(to, out)]).await {
            Ok(()) => consumer::ack(msg).await,
            Err(e) => {
                consumer::requeue_after(
                    msg,
                    &format!("cannot move the delivery on: {e}"),
                    self.infra_backoff,
                )
                .await
            }
        }
    }
}

/// Whether an attempt status counts as a success.
pub fn is_success(status: AttemptStatus) -> bool {
    matches!(status, AttemptStatus::Delivered | AttemptStatus::Duplicate)
}
