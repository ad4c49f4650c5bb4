//! The connection to RabbitMQ: connecting, declaring topology, health, closing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use civicbus_core::ports::PortError;
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

use crate::consumer::BrokerConsumer;
use crate::error::{
    BROKER_URL_ENV, UrlParts, cannot_reach, classify, connect_error, redact_url, short, url_parts,
};
use crate::publisher::{BrokerPublisher, ChannelPool};
use crate::topology::Topology;

/// Limits and timeouts of a [`Broker`]. Every field has a default that runs on one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerOptions {
    /// Most unconfirmed publishes one `publish_confirmed` call keeps in flight on its
    /// channel (sliding window). Default 512, which reaches RabbitMQ's own limit here.
    pub confirm_window: usize,
    /// Consumer prefetch (`basic.qos`) of [`Broker::consume_route`] and
    /// [`Broker::consume_ingress`]. Default 64.
    pub prefetch: u16,
    /// Most confirm channels used for publishing at once; concurrent publish calls beyond
    /// this wait for a channel. Default 16 (measured: 32 tasks publishing one message per
    /// call reach ~1.3k msg/s with 1 channel, ~4.2k with 8, ~5.6k with 16).
    pub publisher_channels: usize,
    /// Time allowed to open the TCP connection and the AMQP handshake. Default 10 s.
    pub connect_timeout: Duration,
    /// Time allowed for each publish and its confirm. Default 30 s (a broker blocked by a
    /// memory or disk alarm stops confirming).
    pub confirm_timeout: Duration,
    /// How long a publish waits for a lost connection to be recovered before it fails as
    /// unavailable. Default 5 s.
    pub recovery_wait: Duration,
    /// Longest pause between reconnection attempts (exponential backoff from 100 ms,
    /// with jitter). Default 30 s.
    pub reconnect_max_delay: Duration,
    /// Most reconnection attempts after the connection is lost; `None` retries forever.
    /// Default `None`.
    pub reconnect_max_attempts: Option<usize>,
    /// Connection name shown by `rabbitmqctl list_connections client_properties`.
    /// Default `civicbus`.
    pub connection_name: String,
    /// Deliveries of one message a subscription queue allows (`x-delivery-limit`) before
    /// RabbitMQ dead-letters it as poison. Retries through the delay queues do not count:
    /// each is a new message. Hand-backs while the store is down count too, but the
    /// delivery worker moves a message handed back 5 times in a row to the delay queues
    /// (a new message), so a store outage of any length does not reach the limit.
    /// Default 100.
    pub delivery_limit: u32,
    /// How long the connection may stay down before the watchdog opens a fresh one
    /// (lapin's recovery can stall). Default 15 s.
    pub reconnect_after: Duration,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        BrokerOptions {
            confirm_window: 512,
            prefetch: 64,
            publisher_channels: 16,
            connect_timeout: Duration::from_secs(10),
            confirm_timeout: Duration::from_secs(30),
            recovery_wait: Duration::from_secs(5),
            reconnect_max_delay: Duration::from_secs(30),
            reconnect_max_attempts: None,
            connection_name: "civicbus".to_string(),
            delivery_limit: 100,
            reconnect_after: Duration::from_secs(15),
        }
    }
}

/// Message and consumer counts of a queue, from a passive declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages ready for delivery (not counting unacknowledged ones).
    pub messages: u32,
    /// Consumers attached.
    pub consumers: u32,
}

/// Exchange types, for [`Broker::declare_exchange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeType {
    /// Routing key patterns (`*`, `#`).
    Topic,
    /// Exact routing key.
    Direct,
    /// Every bound queue.
    Fanout,
    /// Header matching.
    Headers,
}

impl ExchangeType {
    fn kind(self) -> ExchangeKind {
        match self {
            ExchangeType::Topic => ExchangeKind::Topic,
            ExchangeType::Direct => ExchangeKind::Direct,
            ExchangeType::Fanout => ExchangeKind::Fanout,
            ExchangeType::Headers => ExchangeKind::Headers,
        }
    }
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes()))
}

/// Explain a PRECONDITION_FAILED on declaring `queue` (it exists with other arguments).
fn precondition_hint(e: PortError, queue: &str) -> PortError {
    if e.message.contains("PRECONDITION_FAILED") {
        PortError::rejected(format!(
            "{}; queue '{queue}' exists with other arguments (declared by an older civicbus?): \
             let it drain, then delete it (`rabbitmqctl delete_queue {queue}`) and start again",
            e.message
        ))
    } else {
        e
    }
}

/// Connection properties: lapin's automatic recovery with exponential backoff.
fn connection_properties(options: &BrokerOptions) -> ConnectionProperties {
    let max_delay = options.reconnect_max_delay;
    let attempts = options.reconnect_max_attempts;
    ConnectionProperties::default()
        .with_connection_name(LongString::from(options.connection_name.as_bytes()))
        .enable_auto_recover()
        .configure_backoff(move |b| {
            let b = b
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(max_delay)
                .with_factor(2.0)
                .with_jitter();
            match attempts {
                Some(n) => b.with_max_times(n),
                None => b.without_max_times(),
            }
        })
}

/// Replaces the connection when lapin's own recovery does not bring it back within
/// `reconnect_after` (seen after RabbitMQ reset connections on `stop_app`: lapin stayed
/// "reconnecting" forever). The fresh connection serves new channels; pooled channels of
/// the old one are discarded as they fail, and consumers end, so their supervisors reopen
/// them on the new connection. Queues are durable, so nothing needs re-declaring.
async fn watchdog(shared: std::sync::Weak<Shared>) {
    let mut down_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(s) = shared.upgrade() else { return };
        if s.closing.load(Ordering::SeqCst) {
            return;
        }
        let conn = s.conn();
        if conn.status().connected() {
            down_since = None;
            continue;
        }
        let since = *down_since.get_or_insert_with(Instant::now);
        if since.elapsed() < s.options.reconnect_after {
            continue;
        }
        let Ok(uri) = s.url.parse::<lapin::uri::AMQPUri>() else {
            return;
        };
        let fresh = timeout(
            s.options.connect_timeout,
            Connection::connect_uri(uri, connection_properties(&s.options)),
        )
        .await;
        match fresh {
            Ok(Ok(new)) => {
                if let Ok(mut slot) = s.connection.write() {
                    *slot = Arc::new(new);
                }
                s.generation.send_modify(|g| *g += 1);
                down_since = None;
                tracing::warn!(endpoint = %s.parts.endpoint, "RabbitMQ connection replaced after recovery stalled");
                tokio::spawn(async move {
                    let _ =
                        timeout(Duration::from_secs(5), conn.close(320, "replaced".into())).await;
                });
            }
            Ok(Err(e)) => {
                tracing::debug!(endpoint = %s.parts.endpoint, error = %e, "RabbitMQ still unreachable");
            }
            Err(_) => {}
        }
    }
}

fn quorum_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long_string("quorum"));
    args
}

/// State shared by the broker, its publishers and consumers.
pub(crate) struct Shared {
    /// The current connection; replaced by the watchdog when lapin's own recovery gets
    /// stuck (see [`watchdog`]).
    pub(crate) connection: std::sync::RwLock<Arc<Connection>>,
    /// The URL, kept to open a fresh connection (never logged).
    url: String,
    /// Bumped each time the watchdog replaces the connection; consumers watch it.
    pub(crate) generation: tokio::sync::watch::Sender<u64>,
    pub(crate) topology: Topology,
    pub(crate) options: BrokerOptions,
    pub(crate) pool: ChannelPool,
    pub(crate) closing: AtomicBool,
    pub(crate) parts: UrlParts,
}

impl Shared {
    /// The current connection.
    pub(crate) fn conn(&self) -> Arc<Connection> {
        self.connection
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Wait (up to `recovery_wait`) until the connection is open.
    pub(crate) async fn ensure_connected(&self) -> Result<(), PortError> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(self.closed_error());
        }
        let conn = self.conn();
        let status = conn.status();
        if status.connected() {
            return Ok(());
        }
        let deadline = Instant::now() + self.options.recovery_wait;
        while status.reconnecting() || status.connecting() {
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
            if status.connected() {
                return Ok(());
            }
        }
        if status.connected() {
            return Ok(());
        }
        Err(PortError::unavailable(format!(
            "the connection to RabbitMQ at {} is lost{}; retry later",
            self.parts.endpoint,
            if status.reconnecting() {
                " (reconnecting)"
            } else {
                " and will not be recovered: restart civicbus"
            }
        )))
    }

    pub(crate) fn closed_error(&self) -> PortError {
        PortError::unavailable(format!(
            "the connection to RabbitMQ at {} was closed (civicbus is shutting down)",
            self.parts.endpoint
        ))
    }

    /// A fresh channel for one administrative operation (dropped afterwards, which
    /// closes it: a failed declare closes its channel anyway).
    pub(crate) async fn temp_channel(&self) -> Result<Channel, PortError> {
        self.ensure_connected().await?;
        self.conn()
            .create_channel()
            .await
            .map_err(|e| classify(&e, "opening a RabbitMQ channel"))
    }
}

/// A connection to RabbitMQ with automatic recovery, the topology of one deployment, a
/// pool of confirm channels for publishing, and consumers. Cheap to clone.
///
/// When the connection is lost, lapin reconnects with exponential backoff and re-opens
/// channels, QoS and consumers; publishes and acks in flight fail as
/// [`PortErrorKind::Unavailable`](civicbus_core::ports::PortErrorKind::Unavailable) and
/// the broker redelivers unacknowledged messages.
#[derive(Clone)]
pub struct Broker {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("endpoint", &self.shared.parts.endpoint)
            .field("topology", &self.shared.topology)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// Connect to RabbitMQ at `url` (`amqp://user:password@host:port/vhost`).
    ///
    /// Fails fast, with a message naming `host:port` and never the password, when the
    /// broker cannot be reached or refuses the credentials. Must be called inside a tokio
    /// runtime.
    pub async fn connect(
        url: &str,
        topology: Topology,
        options: BrokerOptions,
    ) -> Result<Broker, PortError> {
        let redacted = redact_url(url);
        let parts = url_parts(url);
        let uri: lapin::uri::AMQPUri = url.parse().map_err(|_| {
            // Not echoed: a malformed URL may hold a password we cannot find.
            PortError::rejected(format!(
                "the broker URL is not valid: expected \
                 amqp://user:password@host:port/vhost (vhost `/` is written %2f); check \
                 {BROKER_URL_ENV}"
            ))
        })?;

        // lapin retries refused TCP connections with its reconnect backoff, which would
        // make a missing broker look like a hang: check reachability once first.
        match timeout(options.connect_timeout, TcpStream::connect(&parts.endpoint)).await {
            Err(_) => {
                return Err(cannot_reach(
                    &parts.endpoint,
                    &format!("no answer within {:?}", options.connect_timeout),
                ));
            }
            Ok(Err(e)) => return Err(cannot_reach(&parts.endpoint, &e.to_string())),
            Ok(Ok(stream)) => drop(stream),
        }

        let properties = connection_properties(&options);
        let connection = match timeout(
            options.connect_timeout,
            Connection::connect_uri(uri, properties),
        )
        .await
        {
            Err(_) => {
                return Err(cannot_reach(
                    &parts.endpoint,
                    &format!("no AMQP handshake within {:?}", options.connect_timeout),
                ));
            }
            Ok(Err(e)) => return Err(connect_error(&e, &parts, &redacted)),
            Ok(Ok(c)) => c,
        };
        tracing::info!(endpoint = %parts.endpoint, prefix = %topology.prefix(), "connected to RabbitMQ");
        let pool = ChannelPool::new(options.publisher_channels.max(1));
        let shared = Arc::new(Shared {
            connection: std::sync::RwLock::new(Arc::new(connection)),
            url: url.to_string(),
            generation: tokio::sync::watch::channel(0).0,
            topology,
            options,
            pool,
            closing: AtomicBool::new(false),
            parts,
        });
        tokio::spawn(watchdog(Arc::downgrade(&shared)));
        Ok(Broker { shared })
    }

    /// The names this broker uses.
    pub fn topology(&self) -> &Topology {
        &self.shared.topology
    }

    /// The options it was connected with.
    pub fn options(&self) -> &BrokerOptions {
        &self.shared.options
    }

    /// `host:port` of the broker (safe to show).
    pub fn endpoint(&self) -> &str {
        &self.shared.parts.endpoint
    }

    /// Whether the connection is open right now (false while reconnecting or closed).
    pub fn is_connected(&self) -> bool {
        !self.shared.closing.load(Ordering::SeqCst) && self.shared.conn().status().connected()
    }

    /// A publisher sharing this connection's channel pool. Cheap to clone.
    pub fn publisher(&self) -> BrokerPublisher {
        BrokerPublisher::new(self.shared.clone())
    }

    /// Declare the ingress and events exchanges, the ingress and route queues and their
    /// bindings, and the delay exchange with its level queues. Idempotent.
    pub async fn declare_base(&self) -> Result<(), PortError> {
        let t = &self.shared.topology;
        self.declare_exchange(&t.ingress_exchange(), ExchangeType::Topic)
            .await?;
        self.declare_exchange(&t.events_exchange(), ExchangeType::Topic)
            .await?;
        self.declare_quorum_queue(&t.ingress_queue()).await?;
        self.declare_quorum_queue(&t.route_queue()).await?;
        self.bind_queue(&t.ingress_queue(), &t.ingress_exchange(), "#")
            .await?;
        self.bind_queue(&t.route_queue(), &t.events_exchange(), "#")
            .await?;
        self.declare_delays().await
    }

    /// Declare the queues of subscription `key` (`<tenant>.<id>`): its delivery queue and
    /// its dead-letter queue. The delivery queue has a delivery limit
    /// ([`BrokerOptions::delivery_limit`]): a poison message that keeps crashing its
    /// consumer is dead-lettered (at least once) to the dead-letter queue instead of
    /// looping forever. Idempotent.
    pub async fn declare_subscription(&self, key: &str) -> Result<(), PortError> {
        let t = &self.shared.topology;
        let delivery = t.subscription_queue(key);
        let dead = t.dead_letter_queue(key);
        self.declare_quorum_queue(&dead).await?;
        let mut args = quorum_args();
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(self.shared.options.delivery_limit)),
        );
        args.insert("x-dead-letter-exchange".into(), long_string(""));
        args.insert("x-dead-letter-routing-key".into(), long_string(&dead));
        args.insert(
            "x-dead-letter-strategy".into(),
            long_string("at-least-once"),
        );
        args.insert("x-overflow".into(), long_string("reject-publish"));
        self.declare_queue_with(&delivery, args)
            .await
            .map_err(|e| precondition_hint(e, &delivery))
    }

    /// Declare the delay exchange and its level queues (shared by every subscription):
    /// see [`Topology`]. Idempotent.
    pub async fn declare_delays(&self) -> Result<(), PortError> {
        let t = self.shared.topology.clone();
        let exchange = t.delay_exchange();
        self.declare_exchange(&exchange, ExchangeType::Headers)
            .await?;
        for level in 0..crate::topology::DELAY_LEVELS {
            let queue = t.delay_queue(level);
            let mut args = quorum_args();
            args.insert("x-dead-letter-exchange".into(), long_string(""));
            args.insert(
                "x-dead-letter-strategy".into(),
                long_string("at-least-once"),
            );
            args.insert("x-overflow".into(), long_string("reject-publish"));
            self.declare_queue_with(&queue, args)
                .await
                .map_err(|e| precondition_hint(e, &queue))?;
            let mut bind = FieldTable::default();
            bind.insert("x-match".into(), long_string("all"));
            bind.insert(
                crate::topology::DELAY_LEVEL_HEADER.into(),
                long_string(&level.to_string()),
            );
            self.bind_queue_with(&queue, &exchange, "", bind).await?;
        }
        Ok(())
    }

    /// Declare a durable exchange. Idempotent; fails as rejected if it exists with
    /// another type.
    pub async fn declare_exchange(&self, name: &str, kind: ExchangeType) -> Result<(), PortError> {
        let what = format!("declaring exchange '{name}'");
        let exchange = short(name, "exchange name")?;
        let ch = self.shared.temp_channel().await?;
        ch.exchange_declare(
            exchange,
            kind.kind(),
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| classify(&e, &what))
    }

    /// Declare a durable quorum queue (`x-queue-type=quorum`). Idempotent; fails as
    /// rejected if it exists with other arguments.
    pub async fn declare_quorum_queue(&self, name: &str) -> Result<(), PortError> {
        self.declare_queue_with(name, quorum_args()).await
    }

    async fn declare_queue_with(&self, name: &str, args: FieldTable) -> Result<(), PortError> {
        let what = format!("declaring queue '{name}'");
        let queue = short(name, "queue name")?;
        let ch = self.shared.temp_channel().await?;
        ch.queue_declare(queue, QueueDeclareOptions::durable(), args)
            .await
            .map(|_| ())
            .map_err(|e| classify(&e, &what))
    }

    /// Bind `queue` to `exchange` with `routing_key`. Idempotent.
    pub async fn bind_queue(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
    ) -> Result<(), PortError> {
        self.bind_queue_with(queue, exchange, routing_key, FieldTable::default())
            .await
    }

    async fn bind_queue_with(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        args: FieldTable,
    ) -> Result<(), PortError> {
        let what = format!("binding queue '{queue}' to exchange '{exchange}' with '{routing_key}'");
        let (q, x, k) = (
            short(queue, "queue name")?,
            short(exchange, "exchange name")?,
            short(routing_key, "routing key")?,
        );
        let ch = self.shared.temp_channel().await?;
        ch.queue_bind(q, x, k, QueueBindOptions::default(), args)
            .await
            .map_err(|e| classify(&e, &what))
    }

    /// Message and consumer counts of a queue (passive declare: creates nothing). A
    /// missing queue is a rejected error.
    pub async fn queue_stats(&self, name: &str) -> Result<QueueStats, PortError> {
        let what = format!("inspecting queue '{name}'");
        let queue = short(name, "queue name")?;
        let ch = self.shared.temp_channel().await?;
        let q = ch
            .queue_declare(
                queue,
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| classify(&e, &what))?;
        Ok(QueueStats {
            messages: q.message_count(),
            consumers: q.consumer_count(),
        })
    }

    /// Delete a queue and the messages in it; returns how many messages it held. A
    /// missing queue is not an error.
    pub async fn delete_queue(&self, name: &str) -> Result<u32, PortError> {
        let what = format!("deleting queue '{name}'");
        let queue = short(name, "queue name")?;
        let ch = self.shared.temp_channel().await?;
        ch.queue_delete(queue, QueueDeleteOptions::default())
            .await
            .map_err(|e| classify(&e, &what))
    }

    /// Delete an exchange. A missing exchange is not an error.
    pub async fn delete_exchange(&self, name: &str) -> Result<(), PortError> {
        let what = format!("deleting exchange '{name}'");
        let exchange = short(name, "exchange name")?;
        let ch = self.shared.temp_channel().await?;
        ch.exchange_delete(exchange, ExchangeDeleteOptions::default())
            .await
            .map_err(|e| classify(&e, &what))
    }

    /// Delete everything of this topology: the base queues and exchanges and the delivery
    /// queues of `subscription_keys`, with their messages. Meant for tests and tools;
    /// best-effort: tries every object and returns the first error.
    pub async fn teardown(&self, subscription_keys: &[String]) -> Result<(), PortError> {
        let t = self.shared.topology.clone();
        let mut first: Option<PortError> = None;
        let mut queues = vec![t.ingress_queue(), t.route_queue()];
        for k in subscription_keys {
            queues.push(t.subscription_queue(k));
            queues.push(t.dead_letter_queue(k));
        }
        for level in 0..crate::topology::DELAY_LEVELS {
            queues.push(t.delay_queue(level));
        }
        for q in queues {
            if let Err(e) = self.delete_queue(&q).await {
                first.get_or_insert(e);
            }
        }
        for x in [
            t.ingress_exchange(),
            t.events_exchange(),
            t.delay_exchange(),
        ] {
            if let Err(e) = self.delete_exchange(&x).await {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Consume `queue` on a channel of its own with `prefetch` unacknowledged messages at
    /// most. An empty `consumer_tag` lets the broker choose one.
    pub async fn consume(
        &self,
        queue: &str,
        consumer_tag: &str,
        prefetch: u16,
    ) -> Result<BrokerConsumer, PortError> {
        BrokerConsumer::start(self.shared.clone(), queue, consumer_tag, prefetch).await
    }

    /// Consume the route queue with the configured prefetch.
    pub async fn consume_route(&self) -> Result<BrokerConsumer, PortError> {
        let q = self.shared.topology.route_queue();
        self.consume(&q, "", self.shared.options.prefetch).await
    }

    /// Consume the ingress queue with the configured prefetch.
    pub async fn consume_ingress(&self) -> Result<BrokerConsumer, PortError> {
        let q = self.shared.topology.ingress_queue();
        self.consume(&q, "", self.shared.options.prefetch).await
    }

    /// Consume the delivery queue of subscription `key`.
    pub async fn consume_subscription(
        &self,
        key: &str,
        prefetch: u16,
    ) -> Result<BrokerConsumer, PortError> {
        let q = self.shared.topology.subscription_queue(key);
        self.consume(&q, "", prefetch).await
    }

    /// Close gracefully: refuse new publishes, wait (up to `confirm_timeout`) for
    /// publishes in flight to be confirmed, then close the connection. Consumers end;
    /// messages they did not acknowledge are redelivered by RabbitMQ. Idempotent.
    ///
    /// Cancel consumers first ([`BrokerConsumer::cancel`]) and let their handlers finish
    /// to avoid redeliveries.
    pub async fn close(&self) -> Result<(), PortError> {
        if self.shared.closing.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let drained = self
            .shared
            .pool
            .drain(self.shared.options.confirm_timeout)
            .await;
        if !drained {
            tracing::warn!("closing RabbitMQ connection with publishes still unconfirmed");
        }
        let conn = self.shared.conn();
        if conn.status().connected() {
            conn.close(200, "civicbus shutting down".into())
                .await
                .map_err(|e| classify(&e, "closing the RabbitMQ connection"))?;
        }
        tracing::info!(endpoint = %self.shared.parts.endpoint, "RabbitMQ connection closed");
        Ok(())
    }
}
