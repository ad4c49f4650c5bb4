//! The consume loop shared by every worker: bounded concurrency, stop on shutdown,
//! in-flight messages finish before the loop returns.

use std::future::Future;
use std::time::Duration;

use civicbus_core::ports::{InboundMessage, PortError};
use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

/// How long a worker holds a message before handing it back when the store or broker
/// is failing, so an outage does not turn into a hot redelivery loop.
pub const INFRA_BACKOFF: Duration = Duration::from_secs(1);

/// Why a consume loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoopEnd {
    /// Shutdown was requested.
    Shutdown,
    /// The broker ended the stream (consumer cancelled or connection lost).
    StreamEnded,
    /// The stream reported an error.
    Failed(PortError),
}

/// Feed messages from `stream` to `handler`, at most `concurrency` at a time, until
/// `shutdown` fires or the stream ends. Handlers settle (ack/nack) their own messages.
pub async fn run<S, H, F>(
    stream: S,
    concurrency: usize,
    shutdown: CancellationToken,
    handler: H,
) -> LoopEnd
where
    S: Stream<Item = Result<InboundMessage, PortError>> + Send,
    H: Fn(InboundMessage) -> F + Send + Sync,
    F: Future<Output = ()> + Send,
{
    let failure = std::sync::Mutex::new(None);
    let stopped = shutdown.clone();
    stream
        .take_until(stopped.cancelled_owned())
        .take_while(|item| {
            let keep = match item {
                Ok(_) => true,
                Err(e) => {
                    if let Ok(mut f) = failure.lock() {
                        *f = Some(e.clone());
                    }
                    false
                }
            };
            std::future::ready(keep)
        })
        .for_each_concurrent(concurrency.max(1), |item| {
            let fut = item.ok().map(&handler);
            async move {
                if let Some(fut) = fut {
                    fut.await;
                }
            }
        })
        .await;
    if shutdown.is_cancelled() {
        return LoopEnd::Shutdown;
    }
    match failure.lock().ok().and_then(|mut f| f.take()) {
        Some(e) => LoopEnd::Failed(e),
        None => LoopEnd::StreamEnded,
    }
}

/// Hand a message back to the broker after [`INFRA_BACKOFF`], logging why.
pub async fn requeue_later(msg: &InboundMessage, why: &str) {
    requeue_after(msg, why, INFRA_BACKOFF).await;
}

/// Hand a message back to the broker after `backoff`, logging why.
pub async fn requeue_after(msg: &InboundMessage, why: &str, backoff: Duration) {
    tracing::warn!(
        reason = why,
        "handing message back to RabbitMQ for redelivery"
    );
    tokio::time::sleep(backoff).await;
    if let Err(e) = msg.acker.nack(true).await {
        tracing::warn!(error = %e, "could not nack; RabbitMQ will redeliver when the channel closes");
    }
}

/// Acknowledge, logging a failure (the broker then redelivers: at-least-once).
pub async fn ack(msg: &InboundMessage) {
    if let Err(e) = msg.acker.ack().await {
        tracing::warn!(error = %e, "could not ack; the message will be redelivered");
    }
}
