//! Confirmed publishing over a pool of confirm channels.
//!
//! Each `publish_confirmed` call checks out one channel for itself, pipelines its
//! messages with a sliding window of unconfirmed publishes, waits for every confirm and
//! gives the channel back. Exclusive use matters: RabbitMQ reports an unroutable message
//! with a `basic.return` followed by the `basic.ack`, and acks may be coalesced
//! (`multiple`), so on a shared channel a return could be attributed to another caller's
//! message — that caller would see a success for a message that went nowhere. A
//! refused publish (missing exchange, wrong `user_id`) also closes the channel, which
//! must not fail other callers' publishes.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use civicbus_core::ports::{Destination, OutboundMessage, PortError, PortErrorKind, Publisher};
use lapin::message::BasicReturnMessage;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation, PublisherConfirm};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, timeout};

use crate::broker::Shared;
use crate::error::{classify, short};
use crate::headers::to_field_table;

/// Persistent delivery mode.
const PERSISTENT: u8 = 2;

/// Idle confirm channels and a limit on how many are in use.
pub(crate) struct ChannelPool {
    idle: Mutex<Vec<Channel>>,
    permits: Arc<Semaphore>,
    size: usize,
}

impl ChannelPool {
    pub(crate) fn new(size: usize) -> Self {
        ChannelPool {
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Channel>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait for every checked-out channel to come back, then stop lending and close the
    /// idle ones. Returns false on timeout.
    pub(crate) async fn drain(&self, limit: Duration) -> bool {
        let n = u32::try_from(self.size).unwrap_or(u32::MAX);
        let drained = matches!(
            timeout(limit, self.permits.acquire_many(n)).await,
            Ok(Ok(_))
        );
        self.permits.close();
        let idle = std::mem::take(&mut *self.lock());
        for ch in idle {
            if ch.status().connected() {
                let _ = ch.close(200, "OK".into()).await;
            }
        }
        drained
    }
}

/// A channel checked out of the pool; goes back on drop only if `clean`.
struct Lease {
    shared: Arc<Shared>,
    channel: Option<Channel>,
    clean: bool,
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    fn channel(&self) -> Result<&Channel, PortError> {
        self.channel
            .as_ref()
            .ok_or_else(|| PortError::unavailable("publisher channel already released"))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(channel) = self.channel.take() else {
            return;
        };
        if self.clean && channel.status().connected() && !self.shared.closing.load(Ordering::SeqCst)
        {
            self.shared.pool.lock().push(channel);
        } else {
            dispose(channel);
        }
    }
}

/// Let go of a channel nobody will use again.
fn dispose(channel: Channel) {
    if channel.status().reconnecting() {
        // Dropping it now would leave lapin to re-open it after recovery with nobody
        // using it: wait for the recovery, then close it.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(120);
                while channel.status().reconnecting() && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                if channel.status().connected() {
                    let _ = channel.close(200, "OK".into()).await;
                }
            });
        }
    }
    // Otherwise dropping the last handle closes an open channel (lapin auto-close).
}

async fn checkout(shared: &Arc<Shared>) -> Result<Lease, PortError> {
    if shared.closing.load(Ordering::SeqCst) {
        return Err(shared.closed_error());
    }
    let permit = shared
        .pool
        .permits
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| shared.closed_error())?;
    shared.ensure_connected().await?;
    loop {
        let candidate = shared.pool.lock().pop();
        let Some(channel) = candidate else { break };
        if channel.status().reconnecting() {
            let deadline = Instant::now() + shared.options.recovery_wait;
            while channel.status().reconnecting() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        if channel.status().connected() {
            return Ok(Lease {
                shared: shared.clone(),
                channel: Some(channel),
                clean: false,
                _permit: permit,
            });
        }
        dispose(channel);
    }
    let channel = open_confirm_channel(shared).await?;
    Ok(Lease {
        shared: shared.clone(),
        channel: Some(channel),
        clean: false,
        _permit: permit,
    })
}

/// Attempts at opening a publisher channel while the connection is up.
const CHANNEL_OPEN_ATTEMPTS: u32 = 3;

/// Open a channel in confirm mode. Right after RabbitMQ closed a channel (a publish it
/// refused), lapin may reuse the channel id before RabbitMQ has finished closing it, and
/// the open fails with `CHANNEL_ERROR - expected 'channel.open'`; while the connection
/// is up such a failure is retried after a short pause.
async fn open_confirm_channel(shared: &Arc<Shared>) -> Result<Channel, PortError> {
    let mut attempt = 1;
    loop {
        let opened = async {
            let channel = shared
                .conn()
                .create_channel()
                .await
                .map_err(|e| classify(&e, "opening a RabbitMQ publisher channel"))?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| classify(&e, "enabling publisher confirms"))?;
            Ok::<_, PortError>(channel)
        };
        // A connection stuck in recovery may never answer; the watchdog replaces it, and
        // the next attempt uses the new one.
        let opened = match tokio::time::timeout(shared.options.connect_timeout, opened).await {
            Ok(r) => r,
            Err(_) => Err(PortError::unavailable(format!(
                "opening a RabbitMQ publisher channel: no answer within {:?}; retry later",
                shared.options.connect_timeout
            ))),
        };
        match opened {
            Ok(channel) => return Ok(channel),
            Err(e) if attempt < CHANNEL_OPEN_ATTEMPTS && shared.conn().status().connected() => {
                tracing::debug!(error = %e, attempt, "opening a publisher channel failed; trying again");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One message ready to go on the wire.
struct Prepared {
    exchange: ShortString,
    routing_key: ShortString,
    properties: BasicProperties,
    body: Bytes,
}

fn prepare(
    shared: &Shared,
    destination: &Destination,
    message: &OutboundMessage,
    user_id: Option<&ShortString>,
) -> Result<Prepared, PortError> {
    let t = &shared.topology;
    let (exchange, routing_key) = match destination {
        Destination::Events { routing_key } => (t.events_exchange(), routing_key.clone()),
        Destination::Subscription { key } => (String::new(), t.subscription_queue(key)),
        Destination::Retry { key, .. } => (t.delay_exchange(), t.subscription_queue(key)),
        Destination::DeadLetter { key } => (String::new(), t.dead_letter_queue(key)),
        Destination::Exchange {
            exchange,
            routing_key,
        } => (exchange.clone(), routing_key.clone()),
    };
    let mut properties = BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_content_type(short(&message.content_type, "content type")?);
    if let Destination::Retry { delay, .. } = destination {
        // The level queue is chosen by header; the wait is the message's own TTL.
        let level = crate::topology::Topology::delay_level(*delay);
        let mut headers = message.headers.clone();
        headers.retain(|(k, _)| k != crate::topology::DELAY_LEVEL_HEADER);
        headers.push((
            crate::topology::DELAY_LEVEL_HEADER.to_string(),
            level.to_string(),
        ));
        let ms = delay.as_millis().max(1);
        properties = properties
            .with_headers(to_field_table(&headers)?)
            .with_expiration(short(&ms.to_string(), "expiration")?);
    } else if !message.headers.is_empty() {
        properties = properties.with_headers(to_field_table(&message.headers)?);
    }
    if let Some(id) = &message.message_id {
        properties = properties.with_message_id(short(id, "message id")?);
    }
    if let Some(user) = user_id {
        properties = properties.with_user_id(user.clone());
    }
    Ok(Prepared {
        exchange: short(&exchange, "exchange name")?,
        routing_key: short(&routing_key, "routing key")?,
        properties,
        body: message.body.clone(),
    })
}

fn describe(exchange: &str, routing_key: &str) -> String {
    if exchange.is_empty() {
        format!("queue '{routing_key}' (default exchange)")
    } else {
        format!("exchange '{exchange}' with routing key '{routing_key}'")
    }
}

fn unroutable(ret: &BasicReturnMessage) -> PortError {
    PortError::rejected(format!(
        "RabbitMQ could not route a message to {}: {} {} (no queue is bound for it; declare \
         the queue or the binding)",
        describe(
            ret.delivery.exchange.as_str(),
            ret.delivery.routing_key.as_str()
        ),
        ret.reply_code,
        ret.reply_text
    ))
}

/// Publishes persistent messages with confirms over the broker's channel pool. Cheap to
/// clone; safe to use from many tasks at once.
#[derive(Clone)]
pub struct BrokerPublisher {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for BrokerPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerPublisher")
            .field("endpoint", &self.shared.parts.endpoint)
            .finish_non_exhaustive()
    }
}

/// The outcome of one call on one channel.
struct Outcome {
    error: Option<PortError>,
    /// Every publish was settled and the channel is still usable.
    clean: bool,
}

impl Outcome {
    fn record(&mut self, err: PortError) {
        // A rejection says more than "the channel is gone" (which usually follows it).
        match &self.error {
            None => self.error = Some(err),
            Some(prev)
                if prev.kind == PortErrorKind::Unavailable
                    && err.kind == PortErrorKind::Rejected =>
            {
                self.error = Some(err)
            }
            Some(_) => {}
        }
    }
}

impl From<crate::Broker> for BrokerPublisher {
    fn from(broker: crate::Broker) -> Self {
        broker.publisher()
    }
}

impl From<&crate::Broker> for BrokerPublisher {
    fn from(broker: &crate::Broker) -> Self {
        broker.publisher()
    }
}

impl BrokerPublisher {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        BrokerPublisher { shared }
    }

    /// Like [`Publisher::publish_confirmed`], with the AMQP `user_id` property set on every
    /// message. RabbitMQ refuses (rejected error) a `user_id` other than the connection's
    /// user name, so a consumer can trust it.
    pub async fn publish_confirmed_as(
        &self,
        user_id: &str,
        messages: Vec<(Destination, OutboundMessage)>,
    ) -> Result<(), PortError> {
        let user = short(user_id, "user id")?;
        self.publish(messages, Some(&user)).await
    }

    async fn publish(
        &self,
        messages: Vec<(Destination, OutboundMessage)>,
        user_id: Option<&ShortString>,
    ) -> Result<(), PortError> {
        if messages.is_empty() {
            return Ok(());
        }
        // Validate everything before sending anything.
        let prepared = messages
            .iter()
            .map(|(d, m)| prepare(&self.shared, d, m, user_id))
            .collect::<Result<Vec<_>, _>>()?;
        let mut lease = checkout(&self.shared).await?;
        let outcome = self.publish_on(lease.channel()?, &prepared).await;
        lease.clean = outcome.clean;
        drop(lease);
        outcome.error.map_or(Ok(()), Err)
    }

    async fn publish_on(&self, channel: &Channel, prepared: &[Prepared]) -> Outcome {
        let window = self.shared.options.confirm_window.max(1);
        let limit = self.shared.options.confirm_timeout;
        let mut outcome = Outcome {
            error: None,
            clean: true,
        };
        let mut pending: VecDeque<(usize, PublisherConfirm)> =
            VecDeque::with_capacity(window.min(prepared.len()));
        for (i, p) in prepared.iter().enumerate() {
            if pending.len() >= window
                && let Some((j, confirm)) = pending.pop_front()
            {
                self.settle(&prepared[j], confirm, limit, &mut outcome)
                    .await;
            }
            if outcome.error.is_some() {
                break;
            }
            let publish = channel.basic_publish(
                p.exchange.clone(),
                p.routing_key.clone(),
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                &p.body,
                p.properties.clone(),
            );
            match timeout(limit, publish).await {
                Ok(Ok(confirm)) => pending.push_back((i, confirm)),
                Ok(Err(e)) => {
                    outcome.clean = false;
                    outcome.record(classify(
                        &e,
                        &format!(
                            "publishing to {}",
                            describe(p.exchange.as_str(), p.routing_key.as_str())
                        ),
                    ));
                    break;
                }
                Err(_) => {
                    outcome.clean = false;
                    outcome.record(PortError::unavailable(format!(
                        "publishing to {}: RabbitMQ did not accept the message within {limit:?} \
                         (is it blocked by a memory or disk alarm?)",
                        describe(p.exchange.as_str(), p.routing_key.as_str())
                    )));
                    break;
                }
            }
        }
        // Settle everything still in flight, so the channel is clean for the next caller
        // and a rejection is reported even if a later publish failed.
        while let Some((j, confirm)) = pending.pop_front() {
            self.settle(&prepared[j], confirm, limit, &mut outcome)
                .await;
        }
        outcome
    }

    async fn settle(
        &self,
        p: &Prepared,
        confirm: PublisherConfirm,
        limit: Duration,
        outcome: &mut Outcome,
    ) {
        match timeout(limit, confirm).await {
            Ok(Ok(Confirmation::Ack(None))) => {}
            Ok(Ok(Confirmation::Ack(Some(ret)) | Confirmation::Nack(Some(ret)))) => {
                outcome.record(unroutable(&ret));
            }
            Ok(Ok(Confirmation::Nack(None))) => outcome.record(PortError::rejected(format!(
                "RabbitMQ refused (nacked) a message to {}: the queue may be full or have \
                 lost its quorum",
                describe(p.exchange.as_str(), p.routing_key.as_str())
            ))),
            Ok(Ok(Confirmation::NotRequested)) => {
                outcome.clean = false;
                outcome.record(PortError::unavailable(
                    "publisher confirms are not enabled on this channel",
                ));
            }
            Ok(Err(e)) => {
                outcome.clean = false;
                outcome.record(classify(
                    &e,
                    &format!(
                        "publishing to {}",
                        describe(p.exchange.as_str(), p.routing_key.as_str())
                    ),
                ));
            }
            Err(_) => {
                outcome.clean = false;
                outcome.record(PortError::unavailable(format!(
                    "publishing to {}: RabbitMQ did not confirm within {limit:?} (is it \
                     blocked by a memory or disk alarm?)",
                    describe(p.exchange.as_str(), p.routing_key.as_str())
                )));
            }
        }
    }
}

#[async_trait]
impl Publisher for BrokerPublisher {
    async fn publish_confirmed(
        &self,
        messages: Vec<(Destination, OutboundMessage)>,
    ) -> Result<(), PortError> {
        self.publish(messages, None).await
    }
}
