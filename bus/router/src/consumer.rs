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
    run_keyed(stream, concurrency, shutdown, |_| None, handler).await
}

/// Like [`run`], but messages for which `key` gives the same key are handled one at a
/// time, in the order the stream delivered them (each waits for the one before it with
/// its key to be settled); messages with different keys, or none, run concurrently.
pub async fn run_keyed<S, K, H, F>(
    stream: S,
    concurrency: usize,
    shutdown: CancellationToken,
    key: K,
    handler: H,
) -> LoopEnd
where
    S: Stream<Item = Result<InboundMessage, PortError>> + Send,
    K: Fn(&InboundMessage) -> Option<String> + Send + Sync,
    H: Fn(InboundMessage) -> F + Send + Sync,
    F: Future<Output = ()> + Send,
{
    let gates = KeyGates::default();
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
            // Called in stream order: the gate is taken here, before any handler runs.
            let gate = item.as_ref().ok().and_then(&key).map(|k| gates.enter(k));
            let fut = item.ok().map(&handler);
            let gates = &gates;
            async move {
                let Some(fut) = fut else { return };
                match gate {
                    Some(gate) => {
                        gate.wait().await;
                        fut.await;
                        gates.leave(gate);
                    }
                    None => fut.await,
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

/// The per-key order of [`run_keyed`]: for each key, the last message that entered and a
/// signal that fires when it is settled.
#[derive(Default)]
struct KeyGates {
    inner: std::sync::Mutex<KeyGatesInner>,
}

#[derive(Default)]
struct KeyGatesInner {
    next: u64,
    last: std::collections::HashMap<String, (u64, Done)>,
}

type Done = futures::future::Shared<tokio::sync::oneshot::Receiver<()>>;

/// One message's place in its key's line.
struct Gate {
    key: String,
    id: u64,
    before: Option<Done>,
    done: tokio::sync::oneshot::Sender<()>,
}

impl Gate {
    /// Wait until the message before this one with the same key is settled.
    async fn wait(&self) {
        if let Some(before) = self.before.clone() {
            // An error means the one before was dropped (its loop ended): also done.
            let _ = before.await;
        }
    }
}

impl KeyGates {
    fn lock(&self) -> std::sync::MutexGuard<'_, KeyGatesInner> {
        // The map stays consistent even if a holder panicked.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn enter(&self, key: String) -> Gate {
        use futures::FutureExt as _;
        let (done, rx) = tokio::sync::oneshot::channel();
        let mut g = self.lock();
        g.next += 1;
        let id = g.next;
        let before = g
            .last
            .insert(key.clone(), (id, rx.shared()))
            .map(|(_, d)| d);
        Gate {
            key,
            id,
            before,
            done,
        }
    }

    fn leave(&self, gate: Gate) {
        let _ = gate.done.send(());
        let mut g = self.lock();
        if g.last.get(&gate.key).is_some_and(|(id, _)| *id == gate.id) {
            g.last.remove(&gate.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use civicbus_core::ports::Acker;

    struct NoAck;

    #[async_trait]
    impl Acker for NoAck {
        async fn ack(&self) -> Result<(), PortError> {
            Ok(())
        }
        async fn nack(&self, _: bool) -> Result<(), PortError> {
            Ok(())
        }
    }

    fn msg(key: &str, n: u32) -> Result<InboundMessage, PortError> {
        Ok(InboundMessage {
            body: bytes::Bytes::new(),
            content_type: None,
            headers: vec![("k".into(), key.into()), ("n".into(), n.to_string())],
            user_id: None,
            message_id: None,
            delivery_count: 0,
            redelivered: false,
            acker: Box::new(NoAck),
        })
    }

    #[tokio::test]
    async fn same_key_in_order_other_keys_concurrently() {
        // a1 is slow; a2 and a3 must wait for it, b1 and b2 must not.
        let items = vec![
            msg("a", 1),
            msg("b", 1),
            msg("a", 2),
            msg("b", 2),
            msg("a", 3),
        ];
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler = |m: InboundMessage| {
            let log = log.clone();
            async move {
                let k = m.header("k").unwrap_or_default().to_string();
                let n: u32 = m.header("n").and_then(|n| n.parse().ok()).unwrap_or(0);
                if k == "a" && n == 1 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                log.lock().expect("log").push(format!("{k}{n}"));
            }
        };
        let end = run_keyed(
            futures::stream::iter(items),
            8,
            CancellationToken::new(),
            |m: &InboundMessage| m.header("k").map(str::to_string),
            handler,
        )
        .await;
        assert_eq!(end, LoopEnd::StreamEnded);
        let log = log.lock().expect("log").clone();
        let pos = |s: &str| log.iter().position(|x| x == s).expect("handled");
        assert!(pos("a1") < pos("a2") && pos("a2") < pos("a3"), "{log:?}");
        assert!(pos("b2") < pos("a1"), "b is not held back by a: {log:?}");
    }
}
