//! Tests against the real local RabbitMQ (`CIVICBUS_BROKER_URL`, default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`). Each test uses its own name prefix and
//! deletes what it declared. A missing RabbitMQ fails these tests; it never skips them.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use civicbus_broker::{
    AmqpSink, Broker, BrokerConsumer, BrokerOptions, ExchangeType, IDEMPOTENCY_HEADER,
    TRACEPARENT_HEADER, Topology,
};
use civicbus_core::binding::ParseLimits;
use civicbus_core::ports::{
    DeliveryRequest, Destination, InboundMessage, OutboundMessage, PortErrorKind, Publisher, Sink,
    SinkOutcome,
};
use civicbus_core::subscription::AmqpSinkSpec;
use civicbus_core::{CloudEvent, Data, SinkSpec, Subscription, wire};
use futures::StreamExt;
use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties};

const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const WAIT: Duration = Duration::from_secs(15);

fn url() -> String {
    std::env::var("CIVICBUS_BROKER_URL").unwrap_or_else(|_| DEFAULT_URL.to_string())
}

fn unique_prefix() -> String {
    format!("t{}.", uuid::Uuid::new_v4().simple())
}

/// Every subscription key the tests declare (the panic guard deletes them all).
const KEYS: [&str; 7] = [
    "dysart.records",
    "dysart.wire",
    "dysart.headers",
    "dysart.nack",
    "dysart.mixed",
    "dysart.retry",
    "dysart.recover",
];

/// Deletes a test's queues and exchanges if the test panics before its own teardown.
struct Guard {
    prefix: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let prefix = self.prefix.clone();
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let topology = Topology::new(prefix.clone());
                let Ok(b) = Broker::connect(&url(), topology, BrokerOptions::default()).await
                else {
                    return;
                };
                let keys: Vec<String> = KEYS.iter().map(|k| k.to_string()).collect();
                let _ = b.teardown(&keys).await;
                let _ = b.delete_queue(&format!("{prefix}gis.inbound.q")).await;
                let _ = b.delete_exchange(&format!("{prefix}gis.inbound")).await;
                let _ = b.close().await;
            });
        });
        let _ = cleanup.join();
    }
}

/// A broker on a fresh prefix with the base topology declared.
async fn setup_with(options: BrokerOptions) -> (Broker, Guard) {
    let prefix = unique_prefix();
    let broker = Broker::connect(&url(), Topology::new(prefix.clone()), options)
        .await
        .expect(
            "RabbitMQ must be running for these tests (start it with `rabbitmq-server -detached`)",
        );
    let guard = Guard { prefix };
    broker.declare_base().await.expect("declare base topology");
    (broker, guard)
}

async fn setup() -> (Broker, Guard) {
    setup_with(BrokerOptions::default()).await
}

async fn teardown(broker: &Broker, keys: &[&str]) {
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    if let Err(e) = broker.teardown(&keys).await {
        eprintln!("teardown (best effort): {e}");
    }
    let _ = broker.close().await;
}

fn message(body: &str, id: &str) -> OutboundMessage {
    OutboundMessage {
        body: Bytes::from(body.to_string()),
        content_type: "application/json".into(),
        headers: vec![("x-test".into(), id.into())],
        message_id: Some(id.into()),
    }
}

async fn next(consumer: &mut BrokerConsumer) -> InboundMessage {
    tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("a message within the wait")
        .expect("stream not ended")
        .expect("message, not error")
}

async fn raw_connection() -> Connection {
    Connection::connect(&url(), ConnectionProperties::default())
        .await
        .expect("raw lapin connection")
}

#[tokio::test]
async fn topology_declares_twice_and_queues_are_quorum() {
    let (broker, _guard) = setup().await;
    broker.declare_base().await.expect("second declare_base");
    let key = "dysart.records";
    broker
        .declare_subscription(key)
        .await
        .expect("declare subscription");
    broker
        .declare_subscription(key)
        .await
        .expect("declare subscription again");
    let t = broker.topology().clone();
    for q in [
        t.ingress_queue(),
        t.route_queue(),
        t.subscription_queue(key),
        t.dead_letter_queue(key),
        t.delay_queue(0),
        t.delay_queue(17),
    ] {
        let stats = broker.queue_stats(&q).await.expect("queue exists");
        assert_eq!(stats.messages, 0, "{q}");
        assert_eq!(stats.consumers, 0, "{q}");
    }

    // A queue that exists with other arguments is refused with advice.
    let stale = t.subscription_queue("dysart.stale");
    broker
        .declare_quorum_queue(&stale)
        .await
        .expect("plain queue");
    let err = broker
        .declare_subscription("dysart.stale")
        .await
        .expect_err("other arguments refused");
    assert_eq!(err.kind, PortErrorKind::Rejected);
    assert!(err.message.contains("rabbitmqctl delete_queue"), "{err}");
    let _ = broker.delete_queue(&stale).await;
    let _ = broker
        .delete_queue(&t.dead_letter_queue("dysart.stale"))
        .await;

    // Every queue is a quorum queue.
    let out = std::process::Command::new("rabbitmqctl")
        .args(["list_queues", "-q", "--no-table-headers", "name", "type"])
        .output()
        .expect("rabbitmqctl runs");
    let listing = String::from_utf8_lossy(&out.stdout);
    let ours: Vec<&str> = listing
        .lines()
        .filter(|l| l.starts_with(t.prefix()))
        .collect();
    // ingress, route, delivery, dead-letter, and the 18 delay levels.
    assert_eq!(ours.len(), 22, "{listing}");
    for line in ours {
        assert!(line.trim_end().ends_with("quorum"), "{line}");
    }

    // A missing queue is a clear rejection.
    let err = broker
        .queue_stats(&t.subscription_queue("nobody.here"))
        .await
        .expect_err("missing queue");
    assert_eq!(err.kind, PortErrorKind::Rejected);
    assert!(err.message.contains("NOT_FOUND"), "{err}");

    teardown(&broker, &[key]).await;
}

#[tokio::test]
async fn publish_to_events_lands_in_route_queue_intact() {
    let (broker, _guard) = setup().await;
    let publisher = broker.publisher();
    let out = OutboundMessage {
        body: Bytes::from_static(b"{\"hello\":\"world\"}"),
        content_type: "application/cloudevents+json".into(),
        headers: vec![
            ("cloudEvents_id".into(), "P-1".into()),
            (
                "cloudEvents_type".into(),
                "ca.haliburton.permit.issued".into(),
            ),
            (
                "traceparent".into(),
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            ),
            ("x-unicode".into(), "Minden Hills — café".into()),
        ],
        message_id: Some("P-1".into()),
    };
    publisher
        .publish_confirmed(vec![(
            Destination::Events {
                routing_key: "dysart.ca.haliburton.permit.issued".into(),
            },
            out.clone(),
        )])
        .await
        .expect("confirmed");

    let mut route = broker.consume_route().await.expect("consume route");
    let msg = next(&mut route).await;
    assert_eq!(msg.body, out.body);
    assert_eq!(
        msg.content_type.as_deref(),
        Some("application/cloudevents+json")
    );
    assert_eq!(msg.message_id.as_deref(), Some("P-1"));
    assert!(!msg.redelivered);
    assert_eq!(msg.delivery_count, 0);
    for (k, v) in &out.headers {
        assert_eq!(msg.header(k), Some(v.as_str()), "header {k}");
    }
    msg.acker.ack().await.expect("ack");

    // On the wire: persistent, headers are AMQP long strings.
    let key = "dysart.wire";
    broker.declare_subscription(key).await.expect("declare");
    publisher
        .publish_confirmed(vec![(
            Destination::Subscription { key: key.into() },
            out.clone(),
        )])
        .await
        .expect("confirmed");
    let conn = raw_connection().await;
    let ch = conn.create_channel().await.expect("channel");
    let got = ch
        .basic_get(
            broker.topology().subscription_queue(key).into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .expect("basic_get")
        .expect("a message");
    let props = &got.delivery.properties;
    assert_eq!(*props.delivery_mode(), Some(2));
    let headers = props.headers().as_ref().expect("headers");
    assert_eq!(
        headers.inner().get("cloudEvents_id"),
        Some(&AMQPValue::LongString("P-1".into()))
    );
    let _ = conn.close(200, "OK".into()).await;

    teardown(&broker, &[key]).await;
}

#[tokio::test]
async fn two_thousand_pipelined_messages_all_confirmed_and_consumed() {
    let (broker, _guard) = setup().await;
    let n = 2000;
    let batch: Vec<_> = (0..n)
        .map(|i| {
            (
                Destination::Events {
                    routing_key: "dysart.ca.haliburton.finance.payment.received".into(),
                },
                message(
                    &format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(1000)),
                    &format!("m-{i}"),
                ),
            )
        })
        .collect();
    let started = Instant::now();
    broker
        .publisher()
        .publish_confirmed(batch)
        .await
        .expect("all confirmed");
    let elapsed = started.elapsed();
    println!(
        "published {n} persistent ~1 KiB messages with confirms in {elapsed:?} ({:.0} msg/s)",
        f64::from(n) / elapsed.as_secs_f64()
    );
    let stats = broker
        .queue_stats(&broker.topology().route_queue())
        .await
        .expect("stats");
    assert_eq!(stats.messages, n);

    let mut route = broker.consume_route().await.expect("consume");
    let mut seen = HashSet::new();
    while seen.len() < n as usize {
        let msg = next(&mut route).await;
        seen.insert(msg.message_id.clone().expect("message id"));
        msg.acker.ack().await.expect("ack");
    }
    assert_eq!(seen.len(), n as usize);
    assert!(seen.contains("m-0") && seen.contains("m-1999"));

    teardown(&broker, &[]).await;
}

#[tokio::test]
async fn concurrent_publishers_share_the_pool() {
    let (broker, _guard) = setup_with(BrokerOptions {
        publisher_channels: 4,
        ..BrokerOptions::default()
    })
    .await;
    let tasks = 16;
    let per_task = 100;
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let publisher = broker.publisher();
        handles.push(tokio::spawn(async move {
            for i in 0..per_task {
                publisher
                    .publish_confirmed(vec![(
                        Destination::Events {
                            routing_key: "dysart.ca.haliburton.gis.parcel.updated".into(),
                        },
                        message("{}", &format!("t{t}-{i}")),
                    )])
                    .await?;
            }
            Ok::<_, civicbus_core::ports::PortError>(())
        }));
    }
    for h in handles {
        h.await.expect("task").expect("published");
    }
    let total = tasks * per_task;
    let elapsed = started.elapsed();
    println!(
        "{tasks} tasks published {total} single-message confirmed calls in {elapsed:?} ({:.0} msg/s)",
        f64::from(total) / elapsed.as_secs_f64()
    );
    let mut route = broker.consume_route().await.expect("consume");
    let mut seen = HashSet::new();
    while seen.len() < total as usize {
        let msg = next(&mut route).await;
        seen.insert(msg.message_id.clone().expect("id"));
        msg.acker.ack().await.expect("ack");
    }
    teardown(&broker, &[]).await;
}

#[tokio::test]
async fn consumer_converts_headers_of_every_type() {
    let (broker, _guard) = setup().await;
    let key = "dysart.headers";
    broker.declare_subscription(key).await.expect("declare");
    let queue = broker.topology().subscription_queue(key);

    let mut nested = FieldTable::default();
    nested.insert("n".into(), AMQPValue::LongInt(1));
    nested.insert("s".into(), AMQPValue::LongString("x".into()));
    let mut h = FieldTable::default();
    h.insert("long".into(), AMQPValue::LongString("café".into()));
    // No ShortString: RabbitMQ has no short-string field type (`s` is a short int there).
    h.insert(
        "bad-utf8".into(),
        AMQPValue::LongString(LongString::from(&b"a\xffb"[..])),
    );
    h.insert("bool".into(), AMQPValue::Boolean(true));
    h.insert("i8".into(), AMQPValue::ShortShortInt(-8));
    h.insert("u8".into(), AMQPValue::ShortShortUInt(8));
    h.insert("i16".into(), AMQPValue::ShortInt(-16));
    h.insert("u16".into(), AMQPValue::ShortUInt(16));
    h.insert("i32".into(), AMQPValue::LongInt(-32));
    h.insert("u32".into(), AMQPValue::LongUInt(32));
    h.insert("i64".into(), AMQPValue::LongLongInt(-64));
    h.insert("f32".into(), AMQPValue::Float(1.5));
    h.insert("f64".into(), AMQPValue::Double(2.25));
    h.insert(
        "decimal".into(),
        AMQPValue::DecimalValue(DecimalValue {
            scale: 2,
            value: 12345,
        }),
    );
    h.insert("ts".into(), AMQPValue::Timestamp(1_700_000_000));
    h.insert(
        "bytes".into(),
        AMQPValue::ByteArray(ByteArray::from(&b"raw"[..])),
    );
    h.insert("table".into(), AMQPValue::FieldTable(nested.clone()));
    h.insert(
        "array".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![
            AMQPValue::LongInt(1),
            AMQPValue::LongString("two".into()),
            AMQPValue::FieldTable(nested),
        ])),
    );
    h.insert("void".into(), AMQPValue::Void);

    let conn = raw_connection().await;
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let confirm = ch
        .basic_publish(
            "".into(),
            queue.clone().into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            b"typed",
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_headers(h),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(confirm.is_ack());
    let _ = conn.close(200, "OK".into()).await;

    let mut sub = broker.consume_subscription(key, 4).await.expect("consume");
    let msg = next(&mut sub).await;
    let expect = [
        ("long", "café"),
        ("bad-utf8", "a\u{fffd}b"),
        ("bool", "true"),
        ("i8", "-8"),
        ("u8", "8"),
        ("i16", "-16"),
        ("u16", "16"),
        ("i32", "-32"),
        ("u32", "32"),
        ("i64", "-64"),
        ("f32", "1.5"),
        ("f64", "2.25"),
        ("decimal", "123.45"),
        ("ts", "2023-11-14T22:13:20Z"),
        ("bytes", "raw"),
        ("table", r#"{"n":1,"s":"x"}"#),
        ("array", r#"[1,"two",{"n":1,"s":"x"}]"#),
        ("void", ""),
    ];
    for (k, v) in expect {
        assert_eq!(msg.header(k), Some(v), "header {k}: {:?}", msg.headers);
    }
    assert_eq!(msg.content_type, None);
    assert_eq!(msg.message_id, None);
    msg.acker.ack().await.expect("ack");
    teardown(&broker, &[key]).await;
}

#[tokio::test]
async fn nack_requeue_redelivers_with_count() {
    let (broker, _guard) = setup().await;
    let key = "dysart.nack";
    broker.declare_subscription(key).await.expect("declare");
    broker
        .publisher()
        .publish_confirmed(vec![(
            Destination::Subscription { key: key.into() },
            message("{}", "again"),
        )])
        .await
        .expect("confirmed");
    let mut sub = broker.consume_subscription(key, 1).await.expect("consume");
    let first = next(&mut sub).await;
    assert!(!first.redelivered);
    assert_eq!(first.delivery_count, 0);
    first.acker.nack(true).await.expect("nack");
    let second = next(&mut sub).await;
    assert_eq!(second.message_id.as_deref(), Some("again"));
    assert!(second.redelivered);
    assert_eq!(second.delivery_count, 1);
    assert_eq!(second.header("x-delivery-count"), Some("1"));
    second.acker.nack(true).await.expect("nack");
    let third = next(&mut sub).await;
    assert!(third.redelivered);
    assert_eq!(third.delivery_count, 2);
    third.acker.ack().await.expect("ack");
    // Settling twice is refused, not a hang or a channel error.
    let err = third.acker.ack().await.expect_err("second ack");
    assert_eq!(err.kind, PortErrorKind::Rejected);
    teardown(&broker, &[key]).await;
}

#[tokio::test]
async fn missing_exchange_and_unroutable_are_rejected_not_hangs() {
    let (broker, _guard) = setup().await;
    let publisher = broker.publisher();
    let missing = format!("{}no-such-exchange", broker.topology().prefix());
    let started = Instant::now();
    let err = publisher
        .publish_confirmed(vec![(
            Destination::Exchange {
                exchange: missing.clone(),
                routing_key: "x".into(),
            },
            message("{}", "lost"),
        )])
        .await
        .expect_err("missing exchange");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(err.kind, PortErrorKind::Rejected, "{err}");
    assert!(
        err.message.contains("NOT_FOUND") && err.message.contains(&missing),
        "{err}"
    );

    // Several messages pipelined to a missing exchange: still one clear rejection.
    let many = (0..20)
        .map(|i| {
            (
                Destination::Exchange {
                    exchange: missing.clone(),
                    routing_key: "x".into(),
                },
                message("{}", &format!("lost-{i}")),
            )
        })
        .collect();
    let err = publisher
        .publish_confirmed(many)
        .await
        .expect_err("missing");
    assert_eq!(err.kind, PortErrorKind::Rejected, "{err}");

    // A subscription queue nobody declared: unroutable → rejected. Right after a
    // refused publish, opening the next channel can race RabbitMQ's close of the old one
    // ("CHANNEL_ERROR - expected 'channel.open'"): that transient error is Unavailable
    // (retry), so try a few times.
    let mut err = None;
    for _ in 0..5 {
        let e = publisher
            .publish_confirmed(vec![(
                Destination::Subscription {
                    key: "nobody.declared".into(),
                },
                message("{}", "nowhere"),
            )])
            .await
            .expect_err("unroutable");
        let transient = e.kind == PortErrorKind::Unavailable;
        err = Some(e);
        if !transient {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let err = err.expect("tried");
    assert_eq!(err.kind, PortErrorKind::Rejected, "{err}");
    assert!(err.message.contains("NO_ROUTE"), "{err}");

    // One unroutable message among routable ones fails the whole call.
    let key = "dysart.mixed";
    broker.declare_subscription(key).await.expect("declare");
    let err = publisher
        .publish_confirmed(vec![
            (
                Destination::Subscription { key: key.into() },
                message("{}", "a"),
            ),
            (
                Destination::Subscription {
                    key: "nobody.declared".into(),
                },
                message("{}", "b"),
            ),
            (
                Destination::Subscription { key: key.into() },
                message("{}", "c"),
            ),
        ])
        .await
        .expect_err("one unroutable");
    assert_eq!(err.kind, PortErrorKind::Rejected, "{err}");

    // Names RabbitMQ cannot carry are refused before anything is sent.
    let err = publisher
        .publish_confirmed(vec![(
            Destination::Events {
                routing_key: "k".repeat(300),
            },
            message("{}", "long"),
        )])
        .await
        .expect_err("too long");
    assert_eq!(err.kind, PortErrorKind::Rejected);

    // The pool recovered: publishing still works.
    publisher
        .publish_confirmed(vec![(
            Destination::Events {
                routing_key: "dysart.after".into(),
            },
            message("{}", "fine"),
        )])
        .await
        .expect("publish after failures");
    teardown(&broker, &[key]).await;
}

#[tokio::test]
async fn retries_come_back_after_their_delay_and_dead_letters_stay() {
    let (broker, _guard) = setup().await;
    let key = "dysart.retry";
    broker.declare_subscription(key).await.expect("declare");
    let publisher = broker.publisher();
    publisher
        .publish_confirmed(vec![
            (
                Destination::Retry {
                    key: key.into(),
                    delay: Duration::from_millis(300),
                },
                message("{}", "later"),
            ),
            (
                Destination::DeadLetter { key: key.into() },
                message("{}", "dead"),
            ),
        ])
        .await
        .expect("confirmed");
    let t = broker.topology().clone();
    let mut sub = broker.consume_subscription(key, 4).await.expect("consume");
    let started = Instant::now();
    let msg = next(&mut sub).await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(
        msg.header("civicbus-delay-level").is_some(),
        "routed through a delay level"
    );
    assert_eq!(msg.message_id.as_deref(), Some("later"));
    assert_eq!(msg.header("x-test"), Some("later"));
    msg.acker.ack().await.expect("ack");
    let dead = broker
        .queue_stats(&t.dead_letter_queue(key))
        .await
        .expect("stats");
    assert_eq!(dead.messages, 1);
    let level = broker.queue_stats(&t.delay_queue(0)).await.expect("stats");
    assert_eq!(level.messages, 0);
    teardown(&broker, &[key]).await;
}

fn event(id: &str) -> CloudEvent {
    let mut ev = CloudEvent::new(
        id,
        "/dysart/permitting",
        "ca.haliburton.permitting.permit.issued",
    )
    .expect("valid event");
    ev.subject = Some("BP-2024-0042".into());
    ev.set_tenant("dysart");
    ev.data = Some(Data::Json(
        serde_json::json!({"permit_num": "BP-2024-0042"}),
    ));
    ev.datacontenttype = Some("application/json".into());
    ev
}

fn amqp_subscription(exchange: &str, routing_key: Option<&str>) -> Subscription {
    Subscription {
        id: "gis-feed".into(),
        tenant: "county".into(),
        filters: vec![],
        sink: SinkSpec::Amqp(AmqpSinkSpec {
            exchange: exchange.into(),
            routing_key: routing_key.map(str::to_string),
        }),
        concurrency: 1,
        retry: civicbus_core::RetryPolicy::default(),
        ordering: civicbus_core::subscription::Ordering::Unordered,
    }
}

#[tokio::test]
async fn amqp_sink_delivers_to_a_bound_queue() {
    let (broker, _guard) = setup().await;
    let prefix = broker.topology().prefix().to_string();
    let exchange = format!("{prefix}gis.inbound");
    let queue = format!("{prefix}gis.inbound.q");
    broker
        .declare_exchange(&exchange, ExchangeType::Topic)
        .await
        .expect("exchange");
    broker.declare_quorum_queue(&queue).await.expect("queue");
    broker
        .bind_queue(&queue, &exchange, "ca.haliburton.permitting.#")
        .await
        .expect("bind");

    let sink = AmqpSink::new(&broker);
    let ev = event("P-77");
    let sub = amqp_subscription(&exchange, None);
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let outcome = sink
        .deliver(DeliveryRequest {
            event: &ev,
            subscription: &sub,
            idempotency_key: "msg_abc",
            attempt: 1,
            traceparent: Some(traceparent),
        })
        .await;
    assert_eq!(outcome, SinkOutcome::Delivered { status: None });

    let mut c = broker
        .consume(&queue, "sink-test", 1)
        .await
        .expect("consume");
    assert_eq!(c.tag(), "sink-test");
    let msg = next(&mut c).await;
    assert_eq!(msg.header(IDEMPOTENCY_HEADER), Some("msg_abc"));
    assert_eq!(msg.header(TRACEPARENT_HEADER), Some(traceparent));
    assert_eq!(msg.header("cloudEvents_id"), Some("P-77"));
    assert_eq!(msg.header("cloudEvents_tenant"), Some("dysart"));
    assert_eq!(msg.message_id.as_deref(), Some("P-77"));
    let back = wire::from_amqp(&msg, &ParseLimits::default()).expect("parses");
    assert_eq!(back, ev);
    msg.acker.ack().await.expect("ack");
    c.cancel().await.expect("cancel");

    // A routing key nothing is bound for: terminal (unroutable).
    let sub = amqp_subscription(&exchange, Some("unbound.key"));
    let outcome = sink
        .deliver(DeliveryRequest {
            event: &ev,
            subscription: &sub,
            idempotency_key: "msg_abd",
            attempt: 1,
            traceparent: None,
        })
        .await;
    assert!(
        matches!(outcome, SinkOutcome::Terminal { .. }),
        "{outcome:?}"
    );

    // A missing exchange: terminal with the broker's reason.
    let sub = amqp_subscription(&format!("{prefix}missing"), None);
    let outcome = sink
        .deliver(DeliveryRequest {
            event: &ev,
            subscription: &sub,
            idempotency_key: "msg_abe",
            attempt: 1,
            traceparent: None,
        })
        .await;
    match outcome {
        SinkOutcome::Terminal { reason, .. } => assert!(reason.contains("NOT_FOUND"), "{reason}"),
        other => panic!("expected terminal, got {other:?}"),
    }

    broker.delete_queue(&queue).await.expect("delete queue");
    broker
        .delete_exchange(&exchange)
        .await
        .expect("delete exchange");
    teardown(&broker, &[]).await;
}

#[tokio::test]
async fn user_id_set_by_publisher_is_visible_and_checked() {
    let (broker, _guard) = setup().await;
    let publisher = broker.publisher();
    // The connection's user is `guest` (the default URL); RabbitMQ checks user_id.
    let user = "guest";
    publisher
        .publish_confirmed_as(
            user,
            vec![(
                Destination::Exchange {
                    exchange: broker.topology().ingress_exchange(),
                    routing_key: "ca.haliburton.permitting.permit.issued".into(),
                },
                message("{}", "from-guest"),
            )],
        )
        .await
        .expect("confirmed");
    let mut ingress = broker.consume_ingress().await.expect("consume");
    let msg = next(&mut ingress).await;
    assert_eq!(msg.user_id.as_deref(), Some(user));
    msg.acker.ack().await.expect("ack");

    // Claiming to be someone else is refused by RabbitMQ.
    let err = publisher
        .publish_confirmed_as(
            "mallory",
            vec![(
                Destination::Exchange {
                    exchange: broker.topology().ingress_exchange(),
                    routing_key: "x".into(),
                },
                message("{}", "spoofed"),
            )],
        )
        .await
        .expect_err("spoofed user id");
    assert_eq!(err.kind, PortErrorKind::Rejected, "{err}");
    assert!(err.message.contains("PRECONDITION_FAILED"), "{err}");
    teardown(&broker, &[]).await;
}

#[tokio::test]
async fn connection_errors_are_clear_and_never_show_the_password() {
    let started = Instant::now();
    let err = Broker::connect(
        "amqp://guest:s3cret-pw@127.0.0.1:5999/%2f",
        Topology::new(unique_prefix()),
        BrokerOptions::default(),
    )
    .await
    .expect_err("nothing listens on 5999");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(err.kind, PortErrorKind::Unavailable);
    assert!(
        err.message
            .contains("cannot reach RabbitMQ at 127.0.0.1:5999"),
        "{err}"
    );
    assert!(err.message.contains("rabbitmq-server -detached"), "{err}");
    assert!(err.message.contains("CIVICBUS_BROKER_URL"), "{err}");
    assert!(!err.message.contains("s3cret-pw"), "{err}");

    let err = Broker::connect(
        "amqp://guest:s3cret-pw@127.0.0.1:5672/%2f",
        Topology::new(unique_prefix()),
        BrokerOptions::default(),
    )
    .await
    .expect_err("wrong password");
    assert_eq!(err.kind, PortErrorKind::Rejected);
    assert!(err.message.contains("ACCESS_REFUSED"), "{err}");
    assert!(err.message.contains("guest:***@"), "{err}");
    assert!(!err.message.contains("s3cret-pw"), "{err}");

    let err = Broker::connect(
        "not a url s3cret-pw",
        Topology::new(unique_prefix()),
        BrokerOptions::default(),
    )
    .await
    .expect_err("bad url");
    assert_eq!(err.kind, PortErrorKind::Rejected);
    assert!(!err.message.contains("s3cret-pw"), "{err}");
}

/// The pid of our connection, found by its unique connection name.
fn connection_pid(name: &str) -> Option<String> {
    let out = std::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "-q",
            "--no-table-headers",
            "pid",
            "client_properties",
        ])
        .output()
        .expect("rabbitmqctl runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains(name))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string)
}

#[tokio::test]
async fn recovers_after_the_broker_closes_the_connection() {
    let name = format!("civicbus-test-{}", uuid::Uuid::new_v4().simple());
    let (broker, _guard) = setup_with(BrokerOptions {
        connection_name: name.clone(),
        ..BrokerOptions::default()
    })
    .await;
    let key = "dysart.recover";
    broker.declare_subscription(key).await.expect("declare");
    let publisher = broker.publisher();
    let mut sub = broker.consume_subscription(key, 4).await.expect("consume");
    publisher
        .publish_confirmed(vec![(
            Destination::Subscription { key: key.into() },
            message("{}", "before"),
        )])
        .await
        .expect("publish before");
    let before = next(&mut sub).await;
    before.acker.ack().await.expect("ack");
    assert!(broker.is_connected());

    let pid = connection_pid(&name).expect("our connection is listed");
    let status = std::process::Command::new("rabbitmqctl")
        .args(["close_connection", &pid, "civicbus recovery test"])
        .status()
        .expect("rabbitmqctl runs");
    assert!(status.success());

    // Publishing waits for the recovery (recovery_wait) instead of failing at once.
    let deadline = Instant::now() + WAIT;
    loop {
        match publisher
            .publish_confirmed(vec![(
                Destination::Subscription { key: key.into() },
                message("{}", "after"),
            )])
            .await
        {
            Ok(()) => break,
            Err(e) => {
                assert_eq!(e.kind, PortErrorKind::Unavailable, "{e}");
                assert!(Instant::now() < deadline, "not recovered: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert!(broker.is_connected());
    // The consumer was recovered too.
    let after = next(&mut sub).await;
    assert_eq!(after.message_id.as_deref(), Some("after"));
    after.acker.ack().await.expect("ack after recovery");
    drop(sub);
    teardown(&broker, &[key]).await;
}

#[tokio::test]
async fn close_is_graceful_and_final() {
    let (broker, _guard) = setup().await;
    let publisher = broker.publisher();
    publisher
        .publish_confirmed(vec![(
            Destination::Events {
                routing_key: "dysart.x".into(),
            },
            message("{}", "one"),
        )])
        .await
        .expect("publish");
    let mut route = broker.consume_route().await.expect("consume");
    let msg = next(&mut route).await;
    msg.acker.ack().await.expect("ack");
    broker.teardown(&[]).await.expect("teardown");
    broker.close().await.expect("close");
    broker.close().await.expect("close twice");
    assert!(!broker.is_connected());
    let err = publisher
        .publish_confirmed(vec![(
            Destination::Events {
                routing_key: "dysart.x".into(),
            },
            message("{}", "two"),
        )])
        .await
        .expect_err("closed");
    assert_eq!(err.kind, PortErrorKind::Unavailable);
    // The consumer ends quietly.
    let end = tokio::time::timeout(WAIT, route.next())
        .await
        .expect("ends");
    assert!(end.is_none(), "{end:?}");
}

/// Throughput of many concurrent single-message publishes for several pool sizes.
/// Run by hand: `cargo test -p civicbus-broker --test rabbitmq measure -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, run by hand"]
async fn measure_publish_concurrency() {
    for channels in [1usize, 2, 4, 8, 16, 32] {
        let (broker, _guard) = setup_with(BrokerOptions {
            publisher_channels: channels,
            ..BrokerOptions::default()
        })
        .await;
        let tasks = 32;
        let per_task = 100;
        let started = Instant::now();
        let mut handles = Vec::new();
        for t in 0..tasks {
            let publisher = broker.publisher();
            handles.push(tokio::spawn(async move {
                for i in 0..per_task {
                    publisher
                        .publish_confirmed(vec![(
                            Destination::Events {
                                routing_key: "dysart.m".into(),
                            },
                            message(&"x".repeat(1000), &format!("t{t}-{i}")),
                        )])
                        .await?;
                }
                Ok::<_, civicbus_core::ports::PortError>(())
            }));
        }
        for h in handles {
            h.await.expect("task").expect("published");
        }
        let total = tasks * per_task;
        let elapsed = started.elapsed();
        println!(
            "pool {channels:>2}: {tasks} tasks x {per_task} single-message calls: {:.0} msg/s",
            f64::from(total) / elapsed.as_secs_f64()
        );
        teardown(&broker, &[]).await;
    }
}
