//! Delivery: one worker per subscription sends each event through the subscription's sink,
//! records the attempt, and settles the message. A delivery that already succeeded (same
//! idempotency key) is not sent again. A retryable failure waits durably in RabbitMQ's
//! delay queues for as long as the subscription's retry policy says (or the subscriber's
//! `Retry-After`); a terminal one, or one whose retries are exhausted, is recorded as a
//! dead letter in the store and moved to the subscription's dead-letter queue.
//!
//! While the subscription's circuit is open ([`crate::circuit`]), the sink is not called:
//! the message goes back to the retry queue for the rest of the open period with its
//! attempt count unchanged, and nothing is recorded or dead-lettered.
//!
//! In a subscription with `ordering = "per-subject"`, a delivery that must wait (retry or
//! open circuit) becomes the *head* of its ordering key (`partitionkey`, else `subject`);
//! later deliveries with that key are parked in the store and acked; when the head is
//! delivered or dead-lettered, the first parked delivery is published back to the
//! subscription's queue and becomes the head ([`DeliveryWorker::handle`]). The consume
//! loop hands the worker one delivery per key at a time ([`crate::consumer::run_keyed`]).
//!
//! Test hook: when the environment variable `CIVICBUS_FAILPOINT` is
//! `after-attempt-recorded` (read once, by [`DeliveryWorker::new`]), the process aborts
//! right after a `Delivered` attempt was recorded and before the message is acknowledged,
//! so end-to-end tests can crash the bus between the subscriber's 2xx and the ack.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use civicbus_core::binding::ParseLimits;
use civicbus_core::delivery::{
    HEADER_ATTEMPT, HEADER_DEAD_LETTER_REASON, HEADER_ERROR, HEADER_OUTCOME, HEADER_OUTPUT_INDEX,
    HEADER_RECEIVED_AT, HEADER_SUBSCRIPTION, HEADER_TRACEPARENT, HEADER_TRANSFORMED_BY,
    idempotency_key,
};
use civicbus_core::ports::{
    AttemptStatus, DataValidator, DeadLetter, DeadLetterReason, DeliveryAttempt, DeliveryRequest,
    Destination, EventStore, InboundMessage, OutboundMessage, ParkedDelivery, PortError, Publisher,
    Sink, SinkOutcome, TransformChain, TransformFailure, TransformRecord,
};
use civicbus_core::subscription::{Ordering, ordering_key};
use civicbus_core::{RetryDecision, Subscription, wire};

use crate::circuit::{Admission, Breaker, Clock, HealthPolicy, SystemClock};
use crate::consumer;
use crate::endpoint::EndpointHealth;
use crate::quarantine::{Reason, quarantine_and_ack};

/// Consecutive hand-backs of one message (store or broker failing) after which it waits
/// in the delay queues instead (see `DeliveryWorker::hand_back`).
pub const HAND_BACKS_BEFORE_DELAY: u32 = 5;

/// Delivers the messages of one subscription's queue.
pub struct DeliveryWorker {
    subscription: Subscription,
    key: String,
    sink: Arc<dyn Sink>,
    store: Arc<dyn EventStore>,
    publisher: Arc<dyn Publisher>,
    limits: ParseLimits,
    infra_backoff: Duration,
    /// Consecutive store/broker failures, for the growing hold before a hand-back.
    infra_failures: std::sync::atomic::AtomicU32,
    breaker: Arc<Breaker>,
    endpoint: Arc<EndpointHealth>,
    clock: Arc<dyn Clock>,
    /// The subscription's transform chain, if any.
    transforms: Option<Arc<dyn TransformChain>>,
    /// Checks transform outputs against their schemas.
    validator: Option<Arc<dyn DataValidator>>,
    /// Test hook `CIVICBUS_FAILPOINT=after-attempt-recorded` (see the module docs).
    abort_after_recorded: bool,
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
        let endpoint = Arc::new(EndpointHealth::new(&subscription, &HealthPolicy::default()));
        DeliveryWorker {
            subscription,
            key,
            sink,
            store,
            publisher,
            limits,
            infra_backoff: consumer::INFRA_BACKOFF,
            infra_failures: std::sync::atomic::AtomicU32::new(0),
            breaker: Arc::new(Breaker::new(HealthPolicy::default())),
            endpoint,
            clock: Arc::new(SystemClock),
            transforms: None,
            validator: None,
            abort_after_recorded: std::env::var("CIVICBUS_FAILPOINT")
                .is_ok_and(|v| v == "after-attempt-recorded"),
        }
    }

    /// How long to hold a message before handing it back when RabbitMQ or the store is
    /// failing (default [`consumer::INFRA_BACKOFF`]).
    pub fn with_infra_backoff(mut self, backoff: Duration) -> Self {
        self.infra_backoff = backoff;
        self
    }

    /// The endpoint-health policy (circuit breaker and auto-disable) of this
    /// subscription (default [`HealthPolicy::default`]). Starts with a closed breaker.
    pub fn with_health(mut self, policy: HealthPolicy) -> Self {
        self.breaker = Arc::new(Breaker::new(policy));
        self.endpoint = Arc::new(EndpointHealth::new(&self.subscription, &policy));
        self
    }

    /// The clock the breaker runs on (default the system's monotonic clock); tests
    /// inject one they can move.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Map each event through `chain` before delivery (see [`Self::handle`]).
    pub fn with_transforms(mut self, chain: Arc<dyn TransformChain>) -> Self {
        self.transforms = Some(chain);
        self
    }

    /// Check every transform output against its schema before it is delivered.
    pub fn with_validator(mut self, validator: Arc<dyn DataValidator>) -> Self {
        self.validator = Some(validator);
        self
    }

    /// The subscription's circuit breaker.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
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
                    self.hold(),
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

        // A subscription with transforms maps each event first; the outputs come back
        // through this queue, marked, and are delivered like any event.
        if let Some(chain) = self.transforms.clone()
            && msg.header(HEADER_TRANSFORMED_BY).is_none()
        {
            return self
                .transform(msg, event, chain, attempt, &key, received_at)
                .await;
        }

        let delivered = self.store.is_delivered(&key).await;
        if delivered.is_ok() {
            self.store_ok();
        }
        let order = self.ordering_key(&event);
        match delivered {
            Ok(true) => {
                tracing::debug!(webhook_id = %key, subscription = %self.key, "already delivered; not sending again");
                // If it headed its ordering key (the process stopped before letting the
                // next one go), let the next one go now.
                if let Some(k) = &order
                    && let Err(e) = self.release_if_head(k, &key).await
                {
                    return self
                        .hand_back(
                            &msg,
                            &format!("cannot release the next delivery of its ordering key: {e}"),
                        )
                        .await;
                }
                return consumer::ack(&msg).await;
            }
            Ok(false) => {}
            Err(e) => {
                return self
                    .hand_back(&msg, &format!("store cannot check idempotency: {e}"))
                    .await;
            }
        }

        // Per-subject ordering: wait behind the head of the key, or be it.
        let turn = match &order {
            None => None,
            Some(k) => match self.take_turn(&msg, k, &key, attempt).await {
                Ok(Some(turn)) => Some(turn),
                Ok(None) => return,
                Err(e) => {
                    return self
                        .hand_back(&msg, &format!("store cannot order the delivery: {e}"))
                        .await;
                }
            },
        };

        match self
            .endpoint
            .disabled(
                self.store.as_ref(),
                self.publisher.as_ref(),
                self.clock.now(),
            )
            .await
        {
            Ok(None) => {}
            Ok(Some(d)) => {
                // Not attempted: the delivery is kept as a dead letter to replay once an
                // operator has enabled the endpoint.
                let error = format!(
                    "not attempted: the endpoint was disabled at {} ({}: {}); enable it with \
                     `civicbus endpoints enable {}`, then replay this dead letter",
                    d.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    d.reason.as_str(),
                    d.error,
                    self.key
                );
                let failure = Failure {
                    status: None,
                    error: Some(error),
                    response_code: None,
                };
                return self
                    .dead_letter(
                        &msg,
                        event,
                        &key,
                        attempt.saturating_sub(1),
                        received_at,
                        DeadLetterReason::EndpointDisabled,
                        failure,
                        turn.as_ref(),
                    )
                    .await;
            }
            Err(e) => {
                return self
                    .hand_back(
                        &msg,
                        &format!("store cannot say whether the endpoint is enabled: {e}"),
                    )
                    .await;
            }
        }

        let probe = match self.breaker.admit(self.clock.now()) {
            Admission::Deliver { probe } => probe,
            Admission::Wait(left) => {
                // The endpoint is down: do not call it. The message waits out the rest of
                // the open period in the retry queue; no attempt is made, recorded or
                // counted, so an outage neither uses up the retry policy nor
                // dead-letters anything.
                let delay = left.max(civicbus_core::retry::MIN_BACKOFF);
                tracing::debug!(webhook_id = %key, subscription = %self.key, retry_in = ?delay, "endpoint circuit open; parking the delivery");
                if let Err(e) = self.lead(turn.as_ref(), &key).await {
                    return self.hand_back(&msg, &e).await;
                }
                let parked = self.same_attempt(&msg, attempt);
                return self
                    .forward(
                        &msg,
                        Destination::Retry {
                            key: self.key.clone(),
                            delay,
                        },
                        parked,
                    )
                    .await;
            }
        };
        if probe {
            tracing::info!(webhook_id = %key, subscription = %self.key, "endpoint circuit half-open; probing");
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
        self.observe(&outcome, probe);
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
            return self
                .hand_back(&msg, &format!("store cannot record the attempt: {e}"))
                .await;
        }
        let reason = match &outcome {
            SinkOutcome::Delivered { .. } => {
                tracing::debug!(webhook_id = %key, subscription = %self.key, attempt, "delivered");
                if self.abort_after_recorded {
                    tracing::error!(webhook_id = %key, "failpoint after-attempt-recorded: aborting before the ack");
                    std::process::abort();
                }
                self.endpoint.answered(self.store.as_ref()).await;
                if let Some(t) = turn.as_ref().filter(|t| t.head)
                    && let Err(e) = self.release(&t.key, &key).await
                {
                    // Redelivered, it is seen as delivered and releases then.
                    return self
                        .hand_back(
                            &msg,
                            &format!("cannot release the next delivery of its ordering key: {e}"),
                        )
                        .await;
                }
                return consumer::ack(&msg).await;
            }
            SinkOutcome::Retryable {
                reason,
                retry_after,
                ..
            } => {
                if let Some(d) = self
                    .endpoint
                    .failed(
                        self.store.as_ref(),
                        self.publisher.as_ref(),
                        &outcome,
                        self.clock.now(),
                    )
                    .await
                {
                    let mut failure = Failure::of(&outcome);
                    failure.error = Some(format!(
                        "{}; the endpoint is now disabled ({})",
                        failure.error.as_deref().unwrap_or("failed"),
                        d.error
                    ));
                    return self
                        .dead_letter(
                            &msg,
                            event,
                            &key,
                            attempt,
                            received_at,
                            DeadLetterReason::EndpointDisabled,
                            failure,
                            turn.as_ref(),
                        )
                        .await;
                }
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
                        if let Err(e) = self.lead(turn.as_ref(), &key).await {
                            return self.hand_back(&msg, &e).await;
                        }
                        return self
                            .retry_later(
                                &msg,
                                attempt.saturating_add(1),
                                &Failure::of(&outcome),
                                delay,
                            )
                            .await;
                    }
                    RetryDecision::GiveUp(why) => why,
                }
            }
            SinkOutcome::Terminal { .. } => {
                self.endpoint.answered(self.store.as_ref()).await;
                DeadLetterReason::Terminal
            }
            SinkOutcome::Gone { .. } => {
                self.endpoint
                    .gone(
                        self.store.as_ref(),
                        self.publisher.as_ref(),
                        &outcome,
                        self.clock.now(),
                    )
                    .await;
                DeadLetterReason::Gone
            }
        };
        self.dead_letter(
            &msg,
            event,
            &key,
            attempt,
            received_at,
            reason,
            Failure::of(&outcome),
            turn.as_ref(),
        )
        .await;
    }

    /// The transform stage: run the chain on a blocking thread; validate every output
    /// against its schema; record the lineage (audited); publish the outputs (confirmed)
    /// to the subscription's queue with their index and the plugins that made them; then
    /// ack. A retryable failure waits per the retry policy; any other failure, or an
    /// output that breaks its schema, dead-letters the input with the cause.
    async fn transform(
        &self,
        msg: InboundMessage,
        event: civicbus_core::CloudEvent,
        chain: Arc<dyn TransformChain>,
        attempt: u32,
        key: &str,
        received_at: Option<chrono::DateTime<Utc>>,
    ) {
        let plugins = chain.plugins();
        let input = event.clone();
        let runner = chain.clone();
        let result = match tokio::task::spawn_blocking(move || runner.apply(&input)).await {
            Ok(r) => r,
            Err(e) => Err(TransformFailure {
                retryable: false,
                plugin: plugins.join(","),
                kind: "panic".into(),
                message: format!("the transform thread failed: {e}"),
            }),
        };
        let tenant = event.tenant().unwrap_or_default().to_string();
        let mut outputs = match result {
            Ok(outputs) => outputs,
            Err(f) => {
                return self
                    .transform_failed(msg, event, f, attempt, key, received_at)
                    .await;
            }
        };
        for (i, out) in outputs.iter_mut().enumerate() {
            // The tenant is civicbus's to say: the input's, whatever the plugin wrote.
            out.set_tenant(&tenant);
            if let Some(v) = &self.validator
                && let Err(rejection) = v.check(&tenant, out)
            {
                let f = TransformFailure {
                    retryable: false,
                    plugin: plugins.join(","),
                    kind: "schema-violation".into(),
                    message: format!("output [{i}] (type `{}`): {rejection}", out.ty),
                };
                return self
                    .transform_failed(msg, event, f, attempt, key, received_at)
                    .await;
            }
        }
        let received = received_at.unwrap_or_else(Utc::now);
        let by = plugins.join(",");
        let messages: Vec<(Destination, OutboundMessage)> = outputs
            .iter()
            .enumerate()
            .map(|(i, out)| {
                let mut headers = vec![
                    (HEADER_SUBSCRIPTION.to_string(), self.key.clone()),
                    (HEADER_OUTPUT_INDEX.to_string(), (i + 1).to_string()),
                    (HEADER_ATTEMPT.to_string(), "1".to_string()),
                    (
                        HEADER_RECEIVED_AT.to_string(),
                        received.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    ),
                    (HEADER_TRANSFORMED_BY.to_string(), by.clone()),
                ];
                if let Some(tp) = msg.header(HEADER_TRACEPARENT) {
                    headers.push((HEADER_TRACEPARENT.to_string(), tp.to_string()));
                }
                (
                    Destination::Subscription {
                        key: self.key.clone(),
                    },
                    wire::to_amqp(out, headers),
                )
            })
            .collect();
        // The lineage first, so that no output is delivered before it is on record; a
        // re-run after a failure below records nothing new (idempotent on the input).
        let record = TransformRecord {
            subscription: self.key.clone(),
            tenant: self.subscription.tenant.clone(),
            input_tenant: tenant,
            input_source: event.source.clone(),
            input_id: event.id.clone(),
            plugins,
            outputs: outputs
                .iter()
                .map(|o| (o.source.clone(), o.id.clone(), o.ty.clone()))
                .collect(),
            at: Utc::now(),
        };
        if let Err(e) = self.store.record_transform(&record).await {
            return self
                .hand_back(&msg, &format!("store cannot record the transform: {e}"))
                .await;
        }
        if !messages.is_empty()
            && let Err(e) = self.publisher.publish_confirmed(messages).await
        {
            // Redelivered, the event is transformed again: the same outputs (same ids),
            // which the delivery stage will not send twice.
            return self
                .hand_back(
                    &msg,
                    &format!("cannot enqueue the transform's outputs: {e}"),
                )
                .await;
        }
        tracing::debug!(webhook_id = %key, subscription = %self.key, outputs = outputs.len(), "transformed");
        consumer::ack(&msg).await
    }

    /// A transform failed: wait and retry if the plugin said so and the policy allows,
    /// else dead-letter the input with the cause.
    async fn transform_failed(
        &self,
        msg: InboundMessage,
        event: civicbus_core::CloudEvent,
        f: TransformFailure,
        attempt: u32,
        key: &str,
        received_at: Option<chrono::DateTime<Utc>>,
    ) {
        let failure = Failure {
            status: Some(if f.retryable {
                AttemptStatus::Retryable
            } else {
                AttemptStatus::Terminal
            }),
            error: Some(f.to_string()),
            response_code: None,
        };
        let reason = if f.retryable {
            let age = received_at
                .and_then(|t| (Utc::now() - t).to_std().ok())
                .unwrap_or_default();
            match self.subscription.retry.decide(key, attempt, age, None) {
                RetryDecision::RetryAfter(delay) => {
                    tracing::info!(webhook_id = %key, subscription = %self.key, attempt, retry_in = ?delay, error = %f, "transform failed; will retry");
                    return self
                        .retry_later(&msg, attempt.saturating_add(1), &failure, delay)
                        .await;
                }
                RetryDecision::GiveUp(why) => why,
            }
        } else {
            DeadLetterReason::TransformFailed
        };
        self.dead_letter(
            &msg,
            event,
            key,
            attempt,
            received_at,
            reason,
            failure,
            None,
        )
        .await;
    }

    /// Send `msg` back through the delay queues for `delay`, as attempt `next_attempt`
    /// after `failure`; ack once the copy is confirmed.
    async fn retry_later(
        &self,
        msg: &InboundMessage,
        next_attempt: u32,
        failure: &Failure,
        delay: Duration,
    ) {
        let next = self.republish(msg, next_attempt, failure, None);
        let to = Destination::Retry {
            key: self.key.clone(),
            delay,
        };
        self.forward(msg, to, next).await
    }

    /// Keep a delivery that failed for good: the store's record first (it is what
    /// operators triage), then the copy on the subscription's dead-letter queue; ack
    /// only when both are safe.
    #[allow(clippy::too_many_arguments)]
    async fn dead_letter(
        &self,
        msg: &InboundMessage,
        event: civicbus_core::CloudEvent,
        key: &str,
        attempts: u32,
        received_at: Option<chrono::DateTime<Utc>>,
        reason: DeadLetterReason,
        failure: Failure,
        turn: Option<&Turn>,
    ) {
        tracing::warn!(
            webhook_id = %key,
            subscription = %self.key,
            attempts,
            reason = reason.as_str(),
            error = failure.error.as_deref().unwrap_or(""),
            "delivery failed for good; dead-lettered"
        );
        let record = DeadLetter {
            id: uuid::Uuid::now_v7().to_string(),
            tenant: self.subscription.tenant.clone(),
            subscription: self.key.clone(),
            idempotency_key: key.to_string(),
            event_tenant: event.tenant().unwrap_or_default().to_string(),
            event,
            reason,
            error: failure.error.clone().unwrap_or_default(),
            last_response_code: failure.response_code,
            attempts,
            received_at,
            created_at: Utc::now(),
        };
        if let Err(e) = self.store.dead_letter(&record).await {
            return self
                .hand_back(msg, &format!("store cannot record the dead letter: {e}"))
                .await;
        }
        // Settled for good: the next delivery of its ordering key may go.
        if let Some(t) = turn.filter(|t| t.head)
            && let Err(e) = self.release(&t.key, key).await
        {
            return self
                .hand_back(
                    msg,
                    &format!("cannot release the next delivery of its ordering key: {e}"),
                )
                .await;
        }
        let dead = self.republish(msg, attempts, &failure, Some(reason));
        self.forward(
            msg,
            Destination::DeadLetter {
                key: self.key.clone(),
            },
            dead,
        )
        .await;
    }

    /// Hand a message back because the store or broker is failing. Held for
    /// [`Self::hold`] first, so an outage is not a hot loop. A message handed back
    /// [`HAND_BACKS_BEFORE_DELAY`] times in a row is instead moved to the delay queues
    /// for that long (attempt count unchanged) and acked: hand-backs count towards the
    /// queue's delivery limit, and a long store outage must not turn healthy deliveries
    /// into poison messages. If RabbitMQ refuses that too, it is handed back as usual.
    async fn hand_back(&self, msg: &InboundMessage, why: &str) {
        let hold = self.hold();
        if msg.delivery_count.saturating_add(1) >= HAND_BACKS_BEFORE_DELAY {
            let copy = outbound(msg, carried_headers(msg, &[]));
            let to = Destination::Retry {
                key: self.key.clone(),
                delay: hold.max(civicbus_core::retry::MIN_BACKOFF),
            };
            match self.publisher.publish_confirmed(vec![(to, copy)]).await {
                Ok(()) => {
                    tracing::warn!(reason = why, subscription = %self.key, wait = ?hold, "moving the delivery to the delay queues while the store or broker is failing");
                    return consumer::ack(msg).await;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot move the delivery to the delay queues either");
                }
            }
            return consumer::requeue_after(msg, why, hold).await;
        }
        consumer::requeue_after(msg, why, hold).await
    }

    /// How long to hold a message before handing it back while the store or broker is
    /// failing: the infra backoff, doubling with each consecutive failure up to 32×
    /// (32 s by default), so a long store outage neither spins nor burns through the
    /// queue's delivery limit quickly.
    fn hold(&self) -> Duration {
        use std::sync::atomic::Ordering;
        let n = self.infra_failures.fetch_add(1, Ordering::Relaxed).min(5);
        self.infra_backoff.saturating_mul(1 << n)
    }

    /// The store answered: the next failure starts the hold from the beginning.
    fn store_ok(&self) {
        self.infra_failures
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// Report a delivery's outcome to the breaker, logging state changes.
    fn observe(&self, outcome: &SinkOutcome, probe: bool) {
        match outcome {
            SinkOutcome::Retryable { reason, .. } => {
                if let Some(open_for) = self.breaker.on_failure(self.clock.now(), probe) {
                    tracing::warn!(subscription = %self.key, open_for = ?open_for, reason = %reason, "endpoint failing; circuit open, deliveries wait");
                }
            }
            // Any answer that is not a retryable failure shows the endpoint is alive.
            _ => {
                if self.breaker.on_success() {
                    tracing::info!(subscription = %self.key, "endpoint answered again; circuit closed");
                }
            }
        }
    }

    /// The ordering key of `event` if this subscription orders per subject.
    fn ordering_key(&self, event: &civicbus_core::CloudEvent) -> Option<String> {
        match self.subscription.ordering {
            Ordering::Unordered => None,
            Ordering::PerSubject => ordering_key(event),
        }
    }

    /// Whether this delivery may go now in its ordering key `k`: `Some(turn)` if so
    /// (`turn.head` if it is the key's head, coming back from a wait); `None` if it was
    /// settled here — parked in the store behind the key's head and acked, or, a head
    /// dead-lettered before it could release the next one, released and acked.
    async fn take_turn(
        &self,
        msg: &InboundMessage,
        k: &str,
        key: &str,
        attempt: u32,
    ) -> Result<Option<Turn>, PortError> {
        match self.store.ordering_head(&self.key, k).await? {
            None => Ok(Some(Turn {
                key: k.to_string(),
                head: false,
            })),
            Some(head) if head == key => {
                if self.store.is_dead_lettered(key).await? {
                    self.release(k, key).await?;
                    consumer::ack(msg).await;
                    return Ok(None);
                }
                Ok(Some(Turn {
                    key: k.to_string(),
                    head: true,
                }))
            }
            Some(head) => {
                tracing::debug!(webhook_id = %key, subscription = %self.key, ordering_key = %k, behind = %head, "parked behind its ordering key's head");
                let parked = ParkedDelivery {
                    subscription: self.key.clone(),
                    ordering_key: k.to_string(),
                    idempotency_key: key.to_string(),
                    message: self.same_attempt(msg, attempt),
                    parked_at: Utc::now(),
                };
                self.store.park(&parked).await?;
                consumer::ack(msg).await;
                Ok(None)
            }
        }
    }

    /// This delivery is about to wait (retry or open circuit): make it the head of its
    /// ordering key, so that later deliveries with the key wait behind it.
    async fn lead(&self, turn: Option<&Turn>, key: &str) -> Result<(), String> {
        match turn {
            Some(t) if !t.head => self
                .store
                .set_ordering_head(&self.key, &t.key, key)
                .await
                .map_err(|e| format!("store cannot hold back its ordering key: {e}")),
            _ => Ok(()),
        }
    }

    /// If `key` heads ordering key `k`, release the next delivery.
    async fn release_if_head(&self, k: &str, key: &str) -> Result<(), PortError> {
        match self.store.ordering_head(&self.key, k).await? {
            Some(head) if head == key => self.release(k, key).await,
            _ => Ok(()),
        }
    }

    /// The head `head` of ordering key `k` is settled: publish the first delivery parked
    /// behind it to the subscription's queue and make it the head, or, if none waits,
    /// end the key's wait. Publish before moving the head: if the process stops in
    /// between, the old head's redelivery releases again, and the duplicate is parked
    /// again (ignored) or found delivered.
    async fn release(&self, k: &str, head: &str) -> Result<(), PortError> {
        self.store.unpark(head).await?;
        match self.store.next_parked(&self.key, k).await? {
            None => self.store.clear_ordering_head(&self.key, k, head).await,
            Some(next) => {
                tracing::debug!(subscription = %self.key, ordering_key = %k, next = %next.idempotency_key, "releasing the next delivery of the ordering key");
                self.publisher
                    .publish_confirmed(vec![(
                        Destination::Subscription {
                            key: self.key.clone(),
                        },
                        next.message.clone(),
                    )])
                    .await?;
                self.store
                    .set_ordering_head(&self.key, k, &next.idempotency_key)
                    .await
            }
        }
    }

    /// The message as it is, to wait (parked in the store or while the circuit is open):
    /// the same headers (attempt count, last outcome and error unchanged), without
    /// RabbitMQ's dead-lettering history.
    fn same_attempt(&self, msg: &InboundMessage, attempt: u32) -> OutboundMessage {
        let mut headers = carried_headers(msg, &[HEADER_ATTEMPT]);
        headers.push((HEADER_ATTEMPT.into(), attempt.to_string()));
        outbound(msg, headers)
    }

    /// The message to publish again (to retry or dead-letter), carrying the attempt count
    /// and the failure.
    fn republish(
        &self,
        msg: &InboundMessage,
        attempt: u32,
        failure: &Failure,
        dead: Option<DeadLetterReason>,
    ) -> OutboundMessage {
        let mut headers = carried_headers(
            msg,
            &[
                HEADER_ATTEMPT,
                HEADER_ERROR,
                HEADER_OUTCOME,
                HEADER_DEAD_LETTER_REASON,
            ],
        );
        headers.push((HEADER_ATTEMPT.into(), attempt.to_string()));
        if let Some(status) = failure.status {
            headers.push((HEADER_OUTCOME.into(), status.as_str().into()));
        }
        if let Some(err) = &failure.error {
            headers.push((HEADER_ERROR.into(), err.chars().take(500).collect()));
        }
        if let Some(reason) = dead {
            headers.push((HEADER_DEAD_LETTER_REASON.into(), reason.as_str().into()));
        }
        outbound(msg, headers)
    }

    async fn forward(&self, msg: &InboundMessage, to: Destination, out: OutboundMessage) {
        match self.publisher.publish_confirmed(vec![(to, out)]).await {
            Ok(()) => consumer::ack(msg).await,
            Err(e) => {
                self.hand_back(msg, &format!("cannot move the delivery on: {e}"))
                    .await
            }
        }
    }
}

/// A delivery's place in its ordering key.
#[derive(Debug, Clone)]
struct Turn {
    /// The ordering key.
    key: String,
    /// Whether the delivery is the key's head (others wait behind it).
    head: bool,
}

/// The ordering key of a message, from its CloudEvents headers (`partitionkey`, else
/// `subject`, with any prefix the AMQP binding accepts; civicbus itself writes
/// `cloudEvents_`), for handling the messages of one key one at a time
/// ([`consumer::run_keyed`]). `None` for a structured-mode message without such headers.
pub fn ordering_key_of(msg: &InboundMessage) -> Option<String> {
    const PREFIXES: [&str; 4] = [wire::AMQP_HEADER_PREFIX, "cloudEvents:", "ce-", "ce_"];
    let attr = |name: &str| {
        PREFIXES.iter().find_map(|p| {
            msg.headers
                .iter()
                .find(|(k, _)| {
                    k.len() == p.len() + name.len()
                        && k.starts_with(p)
                        && k[p.len()..].eq_ignore_ascii_case(name)
                })
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        })
    };
    attr("partitionkey").or_else(|| attr("subject"))
}

/// The last failure of a delivery, as recorded with a retry or dead letter.
#[derive(Debug, Clone, Default)]
struct Failure {
    /// The outcome of the last attempt (`None`: not attempted).
    status: Option<AttemptStatus>,
    /// Why, in words.
    error: Option<String>,
    /// HTTP status of the last attempt.
    response_code: Option<u16>,
}

impl Failure {
    fn of(outcome: &SinkOutcome) -> Self {
        Failure {
            status: Some(outcome.status()),
            error: outcome.error().map(str::to_string),
            response_code: outcome.response_code(),
        }
    }
}

/// The headers of `msg` worth carrying to a re-published copy: all but RabbitMQ's
/// dead-lettering history and delivery count, and but the `replaced` ones.
fn carried_headers(msg: &InboundMessage, replaced: &[&str]) -> Vec<(String, String)> {
    msg.headers
        .iter()
        .filter(|(k, _)| {
            !replaced.contains(&k.as_str())
                && !k.starts_with("x-death")
                && k != "x-delivery-count"
                && !k.starts_with("x-first-death")
                && !k.starts_with("x-last-death")
        })
        .cloned()
        .collect()
}

/// A copy of `msg` (body, content type, message id) with `headers`.
fn outbound(msg: &InboundMessage, headers: Vec<(String, String)>) -> OutboundMessage {
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

/// Whether an attempt status counts as a success.
pub fn is_success(status: AttemptStatus) -> bool {
    matches!(status, AttemptStatus::Delivered | AttemptStatus::Duplicate)
}
