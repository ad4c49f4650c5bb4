//! The transform stage as a specification: a subscription with a transform chain maps
//! each event first. Outputs (tenant re-stamped, checked against their schemas) go back
//! on the subscription's queue marked with the plugins that made them and are then
//! delivered like any event; the lineage is recorded; zero outputs filter the event out;
//! a retryable failure waits per the retry policy; any other failure, or an output that
//! breaks its schema, dead-letters the input with the cause.

mod common;

use std::sync::{Arc, Mutex};

use civicbus_core::delivery::{
    HEADER_ATTEMPT, HEADER_OUTPUT_INDEX, HEADER_SUBSCRIPTION, HEADER_TRANSFORMED_BY,
};
use civicbus_core::ports::{
    DataValidator, DeadLetterReason, Destination, PortError, SchemaRejection, SchemaRejectionKind,
    SinkOutcome, TransformChain, TransformFailure,
};
use civicbus_core::{CloudEvent, Data, ExtensionValue};
use civicbus_router::DeliveryWorker;
use common::{
    AckLog, MemoryStore, NO_BACKOFF, REQUEUED, RecordingPublisher, ScriptedSink, Settled, header,
    inbound, inbound_event, subscription, tenant_event,
};
use serde_json::json;

const KEY: &str = "county.records";
const PLUGIN: &str = "permit-to-record@sha256:0123";

/// A chain answering from a script.
struct FakeChain {
    answer: Mutex<Vec<Result<Vec<CloudEvent>, TransformFailure>>>,
    seen: Mutex<Vec<String>>,
}

impl FakeChain {
    fn new(answers: Vec<Result<Vec<CloudEvent>, TransformFailure>>) -> Arc<Self> {
        Arc::new(FakeChain {
            answer: Mutex::new(answers),
            seen: Mutex::new(Vec::new()),
        })
    }
}

impl TransformChain for FakeChain {
    fn plugins(&self) -> Vec<String> {
        vec![PLUGIN.into()]
    }
    fn apply(&self, event: &CloudEvent) -> Result<Vec<CloudEvent>, TransformFailure> {
        self.seen.lock().expect("lock").push(event.id.clone());
        let mut a = self.answer.lock().expect("lock");
        if a.is_empty() {
            Ok(vec![])
        } else {
            a.remove(0)
        }
    }
}

/// Refuses outputs of one type.
struct RefuseType(&'static str);

impl DataValidator for RefuseType {
    fn check(&self, _: &str, event: &CloudEvent) -> Result<(), SchemaRejection> {
        if event.ty == self.0 {
            return Err(SchemaRejection {
                kind: SchemaRejectionKind::Invalid,
                schema: None,
                message: "`data` does not match".into(),
                violations: vec![],
            });
        }
        Ok(())
    }
}

fn record(id: &str) -> CloudEvent {
    let mut ev = CloudEvent::new(
        id,
        "/civicbus/transforms/permit-to-record",
        "ca.haliburton.records.record.declared",
    )
    .expect("event");
    ev.data = Some(Data::Json(json!({ "cmis:objectId": id })));
    // A plugin cannot choose the tenant.
    ev.extensions
        .insert("tenant".into(), ExtensionValue::String("county".into()));
    ev
}

fn failure(retryable: bool) -> TransformFailure {
    TransformFailure {
        retryable,
        plugin: PLUGIN.into(),
        kind: if retryable {
            "retryable"
        } else {
            "out-of-fuel"
        }
        .into(),
        message: "the plugin ran out of fuel after 50000000 units".into(),
    }
}

struct Fixture {
    chain: Arc<FakeChain>,
    sink: Arc<ScriptedSink>,
    publisher: Arc<RecordingPublisher>,
    store: Arc<MemoryStore>,
    log: AckLog,
    worker: DeliveryWorker,
}

fn fixture(answers: Vec<Result<Vec<CloudEvent>, TransformFailure>>) -> Fixture {
    let chain = FakeChain::new(answers);
    let sink = ScriptedSink::new(vec![SinkOutcome::Delivered { status: Some(200) }]);
    let publisher = RecordingPublisher::new();
    let store = MemoryStore::new();
    let worker = DeliveryWorker::new(
        subscription("county", "records", vec![]),
        sink.clone(),
        store.clone(),
        publisher.clone(),
        Default::default(),
    )
    .with_infra_backoff(NO_BACKOFF)
    .with_transforms(chain.clone())
    .with_validator(Arc::new(RefuseType("ca.haliburton.bad")));
    Fixture {
        chain,
        sink,
        publisher,
        store,
        log: AckLog::new(),
        worker,
    }
}

fn permit() -> CloudEvent {
    tenant_event(
        "dysart",
        "dys-9003",
        "ca.haliburton.permitting.permit.issued",
    )
}

fn input(log: &AckLog) -> civicbus_core::ports::InboundMessage {
    inbound_event(
        &permit(),
        &[
            (HEADER_SUBSCRIPTION, KEY),
            (HEADER_OUTPUT_INDEX, "0"),
            (HEADER_ATTEMPT, "1"),
        ],
        log,
        "input",
    )
}

#[tokio::test]
async fn outputs_are_enqueued_marked_recorded_and_then_delivered() {
    let f = fixture(vec![Ok(vec![record("dys-9003:0"), record("dys-9003:1")])]);
    f.worker.handle(input(&f.log)).await;
    assert!(
        f.sink.sent().is_empty(),
        "the input itself is not delivered"
    );
    let published = f.publisher.published();
    assert_eq!(published.len(), 2);
    for (i, (to, msg)) in published.iter().enumerate() {
        assert_eq!(*to, Destination::Subscription { key: KEY.into() });
        assert_eq!(
            header(msg, HEADER_OUTPUT_INDEX),
            Some((i + 1).to_string().as_str())
        );
        assert_eq!(header(msg, HEADER_TRANSFORMED_BY), Some(PLUGIN));
        assert_eq!(header(msg, HEADER_ATTEMPT), Some("1"));
        assert_eq!(
            header(msg, "cloudEvents_tenant"),
            Some("dysart"),
            "the input's tenant"
        );
    }
    assert_eq!(f.log.settled(), [Settled::Ack]);
    let runs = f.store.transform_runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].plugins, [PLUGIN]);
    assert_eq!(runs[0].input_id, "dys-9003");
    assert_eq!(runs[0].outputs.len(), 2);

    // The outputs come back through the queue: delivered, not transformed again.
    for (i, (_, msg)) in published.into_iter().enumerate() {
        f.worker
            .handle(inbound(msg, &f.log, &format!("out-{i}")))
            .await;
    }
    let sent: Vec<String> = f.sink.sent().iter().map(|s| s.event_id.clone()).collect();
    assert_eq!(sent, ["dys-9003:0", "dys-9003:1"]);
    assert_eq!(f.chain.seen.lock().expect("lock").len(), 1);
    let keys: Vec<String> = f
        .sink
        .sent()
        .iter()
        .map(|s| s.idempotency_key.clone())
        .collect();
    assert_ne!(keys[0], keys[1], "each output has its own webhook-id");
}

#[tokio::test]
async fn zero_outputs_filter_the_event_out() {
    let f = fixture(vec![Ok(vec![])]);
    f.worker.handle(input(&f.log)).await;
    assert!(f.publisher.published().is_empty());
    assert!(f.sink.sent().is_empty());
    assert_eq!(f.log.settled(), [Settled::Ack]);
    assert_eq!(
        f.store.transform_runs()[0].outputs.len(),
        0,
        "recorded as filtered"
    );
}

#[tokio::test]
async fn a_terminal_failure_dead_letters_the_input_with_the_cause() {
    let f = fixture(vec![Err(failure(false))]);
    f.worker.handle(input(&f.log)).await;
    let dead = f.store.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, DeadLetterReason::TransformFailed);
    assert!(
        dead[0].error.contains(PLUGIN) && dead[0].error.contains("out-of-fuel"),
        "{}",
        dead[0].error
    );
    let published = f.publisher.published();
    assert!(matches!(published[0].0, Destination::DeadLetter { .. }));
    assert_eq!(f.log.settled(), [Settled::Ack]);
}

#[tokio::test]
async fn a_retryable_failure_waits_per_the_policy() {
    let f = fixture(vec![Err(failure(true))]);
    f.worker.handle(input(&f.log)).await;
    let published = f.publisher.published();
    assert_eq!(published.len(), 1);
    assert!(
        matches!(published[0].0, Destination::Retry { .. }),
        "{:?}",
        published[0].0
    );
    assert_eq!(header(&published[0].1, HEADER_ATTEMPT), Some("2"));
    assert!(f.store.dead_letters().is_empty());
}

#[tokio::test]
async fn an_output_that_breaks_its_schema_is_never_delivered() {
    let mut bad = record("dys-9003:1");
    bad.ty = "ca.haliburton.bad".into();
    let f = fixture(vec![Ok(vec![record("dys-9003:0"), bad])]);
    f.worker.handle(input(&f.log)).await;
    let dead = f.store.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, DeadLetterReason::TransformFailed);
    assert!(
        dead[0].error.contains("schema-violation") && dead[0].error.contains("output [1]"),
        "{}",
        dead[0].error
    );
    assert!(
        f.publisher
            .published()
            .iter()
            .all(|(to, _)| !matches!(to, Destination::Subscription { .. })),
        "no output enqueued"
    );
}

#[tokio::test]
async fn outputs_not_confirmed_hand_the_input_back_and_a_rerun_records_nothing_new() {
    let f = fixture(vec![
        Ok(vec![record("dys-9003:0")]),
        Ok(vec![record("dys-9003:0")]),
    ]);
    f.publisher
        .fail_next(1, PortError::unavailable("RabbitMQ is down"));
    f.worker.handle(input(&f.log)).await;
    assert_eq!(f.log.settled(), [REQUEUED]);
    assert_eq!(
        f.store.transform_runs().len(),
        1,
        "on record before any output goes out"
    );
    // Redelivered: transformed again, the outputs go out, the record stays one.
    f.worker.handle(input(&f.log)).await;
    assert_eq!(f.log.settled(), [REQUEUED, Settled::Ack]);
    assert_eq!(f.store.transform_runs().len(), 1);
    assert_eq!(f.publisher.published().len(), 1);
}
