//! Consumers: a stream of [`InboundMessage`]s from one queue, on a channel of its own.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use civicbus_core::ports::{Acker, InboundMessage, PortError};
use futures::{Stream, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};

use crate::broker::Shared;
use crate::error::{classify, short};
use crate::headers::{delivery_count, from_field_table};

type InnerStream = Pin<Box<dyn Stream<Item = Result<InboundMessage, PortError>> + Send>>;

/// Messages from one queue, as a [`Stream`] of [`InboundMessage`]s.
///
/// Each message must be settled with its [`Acker`]; at most `prefetch` are unsettled at
/// once. A lost connection is recovered transparently (messages not yet acknowledged
/// are redelivered, their ackers fail as unavailable). The stream yields an error and
/// ends if the consumer cannot continue (e.g. the queue was deleted); it ends without
/// error when the broker is closed. Dropping it cancels the consumer.
pub struct BrokerConsumer {
    queue: String,
    tag: String,
    channel: Channel,
    inner: InnerStream,
}

impl std::fmt::Debug for BrokerConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConsumer")
            .field("queue", &self.queue)
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

struct State {
    /// Changes when the watchdog replaces the connection.
    replaced: tokio::sync::watch::Receiver<u64>,
    shared: Arc<Shared>,
    consumer: Consumer,
    channel: Channel,
    queue: String,
    done: bool,
}

impl BrokerConsumer {
    pub(crate) async fn start(
        shared: Arc<Shared>,
        queue: &str,
        consumer_tag: &str,
        prefetch: u16,
    ) -> Result<BrokerConsumer, PortError> {
        let what = format!("consuming queue '{queue}'");
        let queue_name = short(queue, "queue name")?;
        let tag = short(consumer_tag, "consumer tag")?;
        // Watch for a replaced connection from before the channel is opened: a consumer
        // opened on a connection the watchdog has just given up on would wait for ever.
        let mut replaced = shared.generation.subscribe();
        shared.ensure_connected().await?;
        let conn = shared.conn();
        let setup = async {
            let channel = conn
                .create_channel()
                .await
                .map_err(|e| classify(&e, &what))?;
            channel
                .basic_qos(prefetch.max(1), BasicQosOptions { global: false })
                .await
                .map_err(|e| classify(&e, &what))?;
            let consumer = channel
                .basic_consume(
                    queue_name,
                    tag,
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| classify(&e, &what))?;
            Ok::<_, PortError>((channel, consumer))
        };
        let stale = || {
            PortError::unavailable(format!(
                "the RabbitMQ connection was replaced while {what}; consume it again"
            ))
        };
        let (channel, consumer) = tokio::select! {
            r = tokio::time::timeout(shared.options.connect_timeout, setup) => match r {
                Ok(r) => r?,
                Err(_) => {
                    return Err(PortError::unavailable(format!(
                        "{what}: RabbitMQ did not answer within {:?}; retry later",
                        shared.options.connect_timeout
                    )));
                }
            },
            _ = replaced.changed() => return Err(stale()),
        };
        if replaced.has_changed().unwrap_or(true) {
            return Err(stale());
        }
        let tag = consumer.tag().as_str().to_string();
        let state = State {
            replaced,
            shared,
            consumer,
            channel: channel.clone(),
            queue: queue.to_string(),
            done: false,
        };
        let inner = futures::stream::unfold(state, next_message).boxed();
        Ok(BrokerConsumer {
            queue: queue.to_string(),
            tag,
            channel,
            inner,
        })
    }

    /// The queue consumed.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The consumer tag (chosen by the broker if none was given).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Stop receiving messages. Messages already received can still be settled; those
    /// received but not yet taken from the stream are redelivered by RabbitMQ.
    pub async fn cancel(self) -> Result<(), PortError> {
        let what = format!("cancelling the consumer of queue '{}'", self.queue);
        let tag = short(&self.tag, "consumer tag")?;
        if self.channel.status().connected() {
            self.channel
                .basic_cancel(tag, BasicCancelOptions::default())
                .await
                .map_err(|e| classify(&e, &what))?;
        }
        Ok(())
    }
}

impl Stream for BrokerConsumer {
    type Item = Result<InboundMessage, PortError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

async fn next_message(mut state: State) -> Option<(Result<InboundMessage, PortError>, State)> {
    if state.done {
        return None;
    }
    loop {
        let next = tokio::select! {
            next = state.consumer.next() => next,
            _ = state.replaced.changed() => {
                // The watchdog replaced the connection: this consumer's channel will not
                // come back. End with an error so the caller consumes again.
                state.done = true;
                let e = PortError::unavailable(format!(
                    "the RabbitMQ connection was replaced; consume queue '{}' again",
                    state.queue
                ));
                return Some((Err(e), state));
            }
        };
        match next {
            Some(Ok(delivery)) => {
                let message = convert(delivery, &state.channel);
                return Some((Ok(message), state));
            }
            Some(Err(err)) => {
                if state.shared.closing.load(Ordering::SeqCst) {
                    return None;
                }
                tracing::warn!(queue = %state.queue, error = %err, "consumer interrupted");
                let recovered = tokio::select! {
                    r = state.channel.wait_for_recovery(err) => r,
                    _ = state.replaced.changed() => {
                        state.done = true;
                        let e = PortError::unavailable(format!(
                            "the RabbitMQ connection was replaced; consume queue '{}' again",
                            state.queue
                        ));
                        return Some((Err(e), state));
                    }
                };
                match recovered {
                    Ok(()) => {
                        tracing::info!(queue = %state.queue, "consumer recovered");
                        continue;
                    }
                    Err(err) => {
                        state.done = true;
                        let e = classify(&err, &format!("consuming queue '{}'", state.queue));
                        return Some((Err(e), state));
                    }
                }
            }
            None => {
                if state.shared.closing.load(Ordering::SeqCst) {
                    return None;
                }
                state.done = true;
                let e = PortError::unavailable(format!(
                    "RabbitMQ cancelled the consumer of queue '{}' (was the queue deleted?); \
                     consume it again",
                    state.queue
                ));
                return Some((Err(e), state));
            }
        }
    }
}

fn convert(delivery: Delivery, channel: &Channel) -> InboundMessage {
    let props = &delivery.properties;
    let headers = props
        .headers()
        .as_ref()
        .map(from_field_table)
        .unwrap_or_default();
    let delivery_count = delivery_count(props.headers().as_ref());
    let text = |s: &Option<lapin::types::ShortString>| s.as_ref().map(|s| s.as_str().to_string());
    InboundMessage {
        content_type: text(props.content_type()),
        user_id: text(props.user_id()),
        message_id: text(props.message_id()),
        headers,
        redelivered: delivery.redelivered,
        delivery_count,
        acker: Box::new(BrokerAcker {
            acker: delivery.acker,
            _channel: channel.clone(),
        }),
        body: Bytes::from(delivery.data),
    }
}

/// Settles one delivery. Holds its channel open until settled, so dropping the consumer
/// stream does not make pending acknowledgements fail.
struct BrokerAcker {
    acker: lapin::Acker,
    _channel: Channel,
}

impl BrokerAcker {
    fn unusable(&self, what: &str) -> PortError {
        if self.acker.poisoned() {
            PortError::unavailable(format!(
                "cannot {what} the message: its channel was closed; RabbitMQ will redeliver it"
            ))
        } else {
            PortError::rejected(format!(
                "cannot {what} the message: it was already acknowledged or rejected"
            ))
        }
    }
}

/// How long an ack or nack may wait. On a connection whose recovery stalled, lapin can
/// hold the frame for ever; a worker waiting on it would never take the next message, and
/// so never notice that the watchdog replaced the connection. RabbitMQ redelivers what
/// was not acknowledged once the old channel is gone.
pub const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl BrokerAcker {
    fn timed_out(&self, what: &str) -> PortError {
        PortError::unavailable(format!(
            "RabbitMQ did not take the {what} within {SETTLE_TIMEOUT:?} (connection lost or recovering); it will redeliver the message"
        ))
    }
}

#[async_trait]
impl Acker for BrokerAcker {
    async fn ack(&self) -> Result<(), PortError> {
        match tokio::time::timeout(SETTLE_TIMEOUT, self.acker.ack(BasicAckOptions::default())).await
        {
            Err(_) => Err(self.timed_out("acknowledgement")),
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(self.unusable("acknowledge")),
            Ok(Err(e)) => Err(classify(&e, "acknowledging a message")),
        }
    }

    async fn nack(&self, requeue: bool) -> Result<(), PortError> {
        let nack = self.acker.nack(BasicNackOptions {
            multiple: false,
            requeue,
        });
        match tokio::time::timeout(SETTLE_TIMEOUT, nack).await {
            Err(_) => Err(self.timed_out("rejection")),
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(self.unusable("reject")),
            Ok(Err(e)) => Err(classify(&e, "rejecting a message")),
        }
    }
}
