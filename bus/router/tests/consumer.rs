//! The consume loop as a specification: never more than N handlers at once, shutdown
//! lets in-flight handlers finish, and the loop says why it ended.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use civicbus_core::ports::{InboundMessage, PortError};
use civicbus_router::consumer::{self, LoopEnd};
use common::{AckLog, Settled, inbound_raw};
use futures::channel::mpsc;
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

fn message(log: &AckLog, label: &str) -> InboundMessage {
    inbound_raw(b"{}", None, &[], log, label)
}

fn messages(log: &AckLog, n: usize) -> Vec<Result<InboundMessage, PortError>> {
    (0..n).map(|i| Ok(message(log, &format!("m{i}")))).collect()
}

/// How many handlers run now, and the most that ever ran at once.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Gauge {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn never_runs_more_than_n_handlers_at_once() {
    for limit in [1usize, 3, 8] {
        let log = AckLog::new();
        let gauge = Arc::new(Gauge::default());
        let stream = futures::stream::iter(messages(&log, 20));
        let end = consumer::run(stream, limit, CancellationToken::new(), |msg| {
            let gauge = gauge.clone();
            async move {
                gauge.enter();
                // Stay in flight across several polls so others could start meanwhile.
                for _ in 0..5 {
                    tokio::task::yield_now().await;
                }
                gauge.leave();
                consumer::ack(&msg).await;
            }
        })
        .await;
        assert_eq!(end, LoopEnd::StreamEnded, "limit {limit}");
        assert_eq!(
            gauge.peak.load(Ordering::SeqCst),
            limit,
            "limit {limit}: reached, never exceeded"
        );
        assert_eq!(log.settled(), vec![Settled::Ack; 20], "limit {limit}");
    }
}

#[tokio::test]
async fn a_concurrency_of_zero_still_makes_progress_one_at_a_time() {
    let log = AckLog::new();
    let gauge = Arc::new(Gauge::default());
    let stream = futures::stream::iter(messages(&log, 4));
    let end = consumer::run(stream, 0, CancellationToken::new(), |msg| {
        let gauge = gauge.clone();
        async move {
            gauge.enter();
            tokio::task::yield_now().await;
            gauge.leave();
            consumer::ack(&msg).await;
        }
    })
    .await;
    assert_eq!(end, LoopEnd::StreamEnded);
    assert_eq!(gauge.peak.load(Ordering::SeqCst), 1);
    assert_eq!(log.settled().len(), 4);
}

#[tokio::test]
async fn shutdown_stops_taking_messages_and_lets_in_flight_ones_finish() {
    let log = AckLog::new();
    let (tx, rx) = mpsc::unbounded::<Result<InboundMessage, PortError>>();
    tx.unbounded_send(Ok(message(&log, "in-flight")))
        .expect("send");
    let shutdown = CancellationToken::new();
    let release = Arc::new(Notify::new());
    let (started_tx, started_rx) = oneshot::channel::<()>();
    let started_tx = std::sync::Mutex::new(Some(started_tx));
    let handled = Arc::new(AtomicUsize::new(0));

    let run = {
        let shutdown = shutdown.clone();
        let release = release.clone();
        let handled = handled.clone();
        tokio::spawn(async move {
            consumer::run(rx, 4, shutdown, move |msg| {
                let release = release.clone();
                let handled = handled.clone();
                let started = started_tx.lock().expect("lock").take();
                async move {
                    handled.fetch_add(1, Ordering::SeqCst);
                    if let Some(s) = started {
                        let _ = s.send(());
                    }
                    release.notified().await;
                    consumer::ack(&msg).await;
                }
            })
            .await
        })
    };

    started_rx.await.expect("the handler started");
    shutdown.cancel();
    // Messages arriving after shutdown are left to RabbitMQ (redelivered when the
    // channel closes), not handled.
    tx.unbounded_send(Ok(message(&log, "after-shutdown")))
        .expect("send");
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        !run.is_finished(),
        "the loop waits for the in-flight handler"
    );
    assert!(log.entries().is_empty(), "nothing settled yet");

    release.notify_one();
    let end = run.await.expect("the loop does not panic");
    assert_eq!(end, LoopEnd::Shutdown);
    assert_eq!(log.entries(), [("in-flight".to_string(), Settled::Ack)]);
    assert_eq!(handled.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn shutdown_ends_a_loop_waiting_for_messages() {
    let (_tx, rx) = mpsc::unbounded::<Result<InboundMessage, PortError>>();
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    let end = consumer::run(rx, 2, shutdown, |_msg| async {}).await;
    assert_eq!(end, LoopEnd::Shutdown);
}

#[tokio::test]
async fn reports_why_the_stream_ended() {
    let lost = PortError::unavailable("connection to RabbitMQ lost");
    // (case, stream, expected end, messages handled)
    type Items = Vec<Result<InboundMessage, PortError>>;
    type Script = fn(&AckLog, &PortError) -> Items;
    let cases: Vec<(&str, Script, LoopEnd, Vec<&str>)> = vec![
        (
            "the broker cancelled the consumer",
            |log, _| vec![Ok(message(log, "a")), Ok(message(log, "b"))],
            LoopEnd::StreamEnded,
            vec!["a", "b"],
        ),
        (
            "an empty stream",
            |_, _| vec![],
            LoopEnd::StreamEnded,
            vec![],
        ),
        (
            "the stream failed",
            |log, e| {
                vec![
                    Ok(message(log, "a")),
                    Err(e.clone()),
                    Ok(message(log, "after-error")),
                ]
            },
            LoopEnd::Failed(lost.clone()),
            vec!["a"],
        ),
    ];
    for (name, items, want, handled) in cases {
        let log = AckLog::new();
        let stream = futures::stream::iter(items(&log, &lost));
        let end = consumer::run(stream, 2, CancellationToken::new(), |msg| async move {
            consumer::ack(&msg).await;
        })
        .await;
        assert_eq!(end, want, "{name}");
        assert_eq!(log.labels(), handled, "{name}");
    }
}
