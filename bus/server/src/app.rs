//! Wiring: connect the store and the broker, declare the topology, start the router, the
//! AMQP ingress, one delivery worker per subscription and the HTTP API; stop them in order.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use civicbus_broker::{AmqpSink, Broker, BrokerOptions, Topology};
use civicbus_core::RoutingTable;
use civicbus_core::binding::ParseLimits;
use civicbus_core::ports::{EventStore, InboundMessage, PortError, Publisher, Sink};
use civicbus_core::subscription::{Ordering, SinkSpec};
use civicbus_router::consumer::{self, LoopEnd};
use civicbus_router::{DeliveryWorker, Ingest, IngestLimits, IngressWorker, RouteWorker};
use civicbus_store::SqlStore;
use civicbus_webhook::{WebhookOptions, WebhookSink};
use futures::Stream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::TokenSet;
use crate::config::{Config, Resolved};
use crate::http::{ApiState, Readiness, app};

/// A running bus.
pub struct RunningBus {
    api_addr: SocketAddr,
    shutdown: CancellationToken,
    http: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
    broker: Broker,
    store: Arc<SqlStore>,
}

impl RunningBus {
    /// Where the HTTP API listens.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The store (for the demo and tests).
    pub fn store(&self) -> Arc<SqlStore> {
        self.store.clone()
    }

    /// The broker connection (for the demo and tests).
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Stop intake, let in-flight work finish (or hand it back to RabbitMQ), close.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.http.await;
        for w in self.workers {
            let _ = w.await;
        }
        if let Err(e) = self.broker.close().await {
            tracing::warn!(error = %e, "closing the RabbitMQ connection");
        }
        self.store.close().await;
    }
}

struct Probe {
    broker: Broker,
    store: Arc<SqlStore>,
}

#[async_trait]
impl Readiness for Probe {
    async fn check(&self) -> Result<(), String> {
        if !self.broker.is_connected() {
            return Err("RabbitMQ connection is down; civicbus is reconnecting".into());
        }
        self.store
            .count_events(Some("-readyz-"))
            .await
            .map(|_| ())
            .map_err(|e| format!("store is not answering: {e}"))
    }
}

/// Start the bus described by `config` (already checked) and `resolved`.
pub async fn start(config: &Config, resolved: Resolved) -> anyhow::Result<RunningBus> {
    // Plugins first: one that cannot load stops the start before anything is connected
    // or declared.
    let plugins = crate::transforms::load(config)?;
    let store = Arc::new(
        SqlStore::connect(&config.store.url)
            .await
            .context("cannot open the store")?,
    );
    let topology = Topology::new(config.broker.prefix.clone());
    let options = BrokerOptions {
        prefetch: config.broker.prefetch,
        confirm_window: usize::from(config.broker.confirm_window),
        ..BrokerOptions::default()
    };
    let broker = Broker::connect(&config.broker.url, topology, options)
        .await
        .context("cannot connect to RabbitMQ")?;
    broker
        .declare_base()
        .await
        .context("cannot declare the RabbitMQ topology")?;
    for sub in &resolved.subscriptions {
        broker
            .declare_subscription(&sub.key())
            .await
            .with_context(|| format!("cannot declare the queues of subscription {}", sub.key()))?;
    }

    let publisher: Arc<dyn Publisher> = Arc::new(broker.publisher());
    let store_port: Arc<dyn EventStore> = store.clone();
    let parse = ParseLimits {
        max_json_depth: config.limits.max_json_depth,
        max_batch_events: config.limits.max_batch_events,
    };
    let mut ingest = Ingest::new(
        publisher.clone(),
        IngestLimits {
            parse,
            max_event_bytes: config.limits.max_event_bytes,
        },
    );
    let enforcer = crate::schemas::enforcer(config).map_err(|e| {
        anyhow::anyhow!(
            "the schema catalogue has errors (fix them, or check with `civicbus config check`):\n  {}",
            e.0.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n  ")
        )
    })?;
    if let Some(enforcer) = &enforcer {
        tracing::info!(
            schemas = enforcer.registry().current().len(),
            "schema catalogue loaded; event data is validated at ingest"
        );
        ingest = ingest.with_validator(enforcer.clone());
    }
    let ingest = Arc::new(ingest);
    let table = Arc::new(RoutingTable::new(
        resolved.subscriptions.clone(),
        resolved.shares.clone(),
    ));
    let shutdown = CancellationToken::new();
    let mut workers = Vec::new();
    if let Some(plugins) = &plugins {
        workers.push(crate::transforms::spawn_reloader(
            plugins.clone(),
            config.transforms.watch_interval,
            shutdown.clone(),
        ));
    }
    if let Some(enforcer) = &enforcer {
        workers.push(crate::schemas::spawn_reloader(
            enforcer.registry().clone(),
            config.schemas.watch_interval,
            shutdown.clone(),
        ));
    }

    // Router.
    let route = Arc::new(RouteWorker::new(
        table.clone(),
        store_port.clone(),
        publisher.clone(),
        parse,
    ));
    let prefetch = config.broker.prefetch;
    let any_ordered = resolved
        .subscriptions
        .iter()
        .any(|s| s.ordering == Ordering::PerSubject);
    {
        let b = broker.clone();
        workers.push(supervise(
            "router".into(),
            shutdown.clone(),
            usize::from(prefetch),
            // Keep each ordering key's events in acceptance order on the way to the
            // subscription queues, if any subscription orders per subject.
            any_ordered,
            move || {
                let b = b.clone();
                async move { b.consume_route().await }
            },
            move |m| {
                let w = route.clone();
                async move { w.handle(m).await }
            },
        ));
    }

    // AMQP ingress.
    let ingress = Arc::new(IngressWorker::new(
        ingest.clone(),
        store_port.clone(),
        resolved.amqp_users.clone(),
    ));
    {
        let b = broker.clone();
        workers.push(supervise(
            "ingress".into(),
            shutdown.clone(),
            usize::from(prefetch),
            any_ordered,
            move || {
                let b = b.clone();
                async move { b.consume_ingress().await }
            },
            move |m| {
                let w = ingress.clone();
                async move { w.handle(m).await }
            },
        ));
    }

    // Deliveries.
    let webhook: Arc<dyn Sink> = Arc::new(
        WebhookSink::new(WebhookOptions::default())
            .map_err(|e| anyhow::anyhow!("cannot build the webhook client: {e}"))?,
    );
    let amqp: Arc<dyn Sink> = Arc::new(AmqpSink::new(broker.clone()));
    for sub in &resolved.subscriptions {
        let sink = match sub.sink {
            SinkSpec::Webhook(_) => webhook.clone(),
            SinkSpec::Amqp(_) => amqp.clone(),
        };
        let key = sub.key();
        let concurrency = sub.concurrency.max(1);
        let mut worker = DeliveryWorker::new(
            sub.clone(),
            sink,
            store_port.clone(),
            publisher.clone(),
            parse,
        )
        .with_health(resolved.health_of(&key));
        let transforms = resolved.transforms_of(&key);
        if let (Some(plugins), false) = (&plugins, transforms.is_empty()) {
            worker = worker.with_transforms(Arc::new(crate::transforms::HostChain::new(
                plugins.clone(),
                transforms,
            )));
            if let Some(enforcer) = &enforcer {
                worker = worker.with_validator(enforcer.clone());
            }
        }
        let worker = Arc::new(worker);
        let b = broker.clone();
        workers.push(supervise(
            format!("delivery {key}"),
            shutdown.clone(),
            usize::from(concurrency),
            sub.ordering == Ordering::PerSubject,
            move || {
                let b = b.clone();
                let key = key.clone();
                async move { b.consume_subscription(&key, concurrency).await }
            },
            move |m| {
                let w = worker.clone();
                async move { w.handle(m).await }
            },
        ));
    }

    // HTTP API.
    let state = ApiState {
        ingest,
        tokens: Arc::new(TokenSet::new(&resolved.tokens)),
        store: store_port,
        readiness: Arc::new(Probe {
            broker: broker.clone(),
            store: store.clone(),
        }),
        max_body_bytes: config.api.max_body_bytes,
        request_timeout: config.api.request_timeout,
        retry_after_seconds: config.api.retry_after_seconds,
    };
    let listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}: is another civicbus running? set api.listen or CIVICBUS_API_LISTEN",
                config.api.listen
            )
        })?;
    let api_addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let router = app(state);
    let stop_http = shutdown.clone();
    let http = tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(stop_http.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });

    Ok(RunningBus {
        api_addr,
        shutdown,
        http,
        workers,
        broker,
        store,
    })
}

/// Run a consumer loop, re-opening the consumer with backoff when the broker drops it,
/// until shutdown.
///
/// With `ordered`, messages with the same ordering key (`partitionkey`, else `subject`)
/// are handled one at a time in arrival order ([`consumer::run_keyed`]).
fn supervise<M, MF, S, H, HF>(
    name: String,
    shutdown: CancellationToken,
    concurrency: usize,
    ordered: bool,
    make_stream: M,
    handler: H,
) -> JoinHandle<()>
where
    M: Fn() -> MF + Send + Sync + 'static,
    MF: Future<Output = Result<S, PortError>> + Send,
    S: Stream<Item = Result<InboundMessage, PortError>> + Send + 'static,
    H: Fn(InboundMessage) -> HF + Send + Sync + 'static,
    HF: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            match make_stream().await {
                Ok(stream) => {
                    let stream = Box::pin(stream);
                    let key = |m: &InboundMessage| {
                        if ordered {
                            civicbus_router::deliver::ordering_key_of(m)
                        } else {
                            None
                        }
                    };
                    match consumer::run_keyed(stream, concurrency, shutdown.clone(), key, &handler)
                        .await
                    {
                        LoopEnd::Shutdown => break,
                        LoopEnd::StreamEnded => {
                            tracing::warn!(worker = %name, "consumer ended; reopening");
                        }
                        LoopEnd::Failed(e) => {
                            tracing::warn!(worker = %name, error = %e, "consumer failed; reopening");
                        }
                    }
                    backoff = Duration::from_millis(200);
                }
                Err(e) => {
                    tracing::warn!(worker = %name, error = %e, retry_in = ?backoff, "cannot start consumer");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    })
}
