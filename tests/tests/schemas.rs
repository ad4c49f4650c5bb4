//! Schema enforcement at ingest, end to end (real RabbitMQ, SQLite store): data that does
//! not match its type's schema is refused with 422 problem+json listing every violation
//! (JSON pointer, keyword) over HTTP, and quarantined with the same details over AMQP;
//! an unknown type is refused with the closest known types unless the tenant accepts
//! unvalidated types; a catalogue directory is reloaded when a file changes.

use std::time::Duration;

use civicbus_core::ports::EventStore;
use civicbus_server::config::UnknownTypes;
use civicbus_tests::{
    Backend, Harness, delete_rabbitmq_user, eventually, permit_event, rabbitmq_user,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

fn errors(body: &Value) -> Vec<(String, String, String)> {
    body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["field"].as_str().unwrap_or_default().to_string(),
                        e["pointer"].as_str().unwrap_or_default().to_string(),
                        e["keyword"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_ingest_refuses_invalid_data_and_unknown_types_with_every_violation() {
    let mut h = Harness::new("schemas-http", Backend::Sqlite)
        .await
        .expect("harness");
    if let Some(t) = h.config.tenants.iter_mut().find(|t| t.id == "minden-hills") {
        t.unknown_types = Some(UnknownTypes::AcceptUnvalidated);
    }
    let bus = h.start().await.expect("bus");

    // Valid: accepted.
    let ok = permit_event("dysart", "s-1", "issued", "BP-2026-0101");
    assert_eq!(bus.publish("dysart", &ok).await.expect("post").0, 202);

    // Two things wrong: the fee is a number (money is a decimal string) and the permit
    // number is missing. Both are listed, with pointers and keywords.
    let mut bad = permit_event("dysart", "s-2", "issued", "BP-2026-0102");
    bad["data"]["Fee"] = json!(2150.0);
    if let Some(d) = bad["data"].as_object_mut() {
        d.remove("PermitNum");
    }
    let (status, body) = bus.publish("dysart", &bad).await.expect("post");
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["type"], "/problems/schema-violation");
    assert_eq!(
        body["schema"],
        "https://civicbus.haliburton.ca/schemas/ca.haliburton.permitting.permit.issued/v1"
    );
    let errs = errors(&body);
    assert!(
        errs.iter()
            .any(|(f, p, k)| f == "data/Fee" && p == "/Fee" && k == "type"),
        "{body}"
    );
    assert!(
        errs.iter()
            .any(|(f, p, k)| f == "data" && p.is_empty() && k == "required"),
        "{body}"
    );

    // In a batch the event's index is named, and nothing of the batch is accepted.
    let batch = json!([
        permit_event("dysart", "s-3", "issued", "BP-2026-0103"),
        { "specversion": "1.0", "id": "s-4", "source": "/dysart/permitting",
          "type": "ca.haliburton.permitting.permit.fee-assessed",
          "datacontenttype": "application/json",
          "data": { "PermitNum": "BP-2026-0104", "Fee": "12.345", "FeeAssessedDate": "2026-11-20" } }
    ]);
    let (status, body) = bus
        .post(
            "dysart",
            "application/cloudevents-batch+json",
            batch.to_string(),
        )
        .await
        .expect("post");
    assert_eq!(status, 422, "{body}");
    assert!(
        errors(&body)
            .iter()
            .any(|(f, _, k)| f == "[1].data/Fee" && k == "pattern"),
        "{body}"
    );
    let store = bus.store();
    assert!(
        store
            .get_event("dysart", "/dysart/permitting", "s-3")
            .await
            .expect("read")
            .is_none(),
        "nothing of a refused batch is accepted"
    );

    // A misspelt type: refused, naming the closest known type.
    let mut typo = permit_event("dysart", "s-5", "issued", "BP-2026-0105");
    typo["type"] = json!("ca.haliburton.permitting.permit.isued");
    let (status, body) = bus.publish("dysart", &typo).await.expect("post");
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["type"], "/problems/unknown-event-type");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("ca.haliburton.permitting.permit.issued")),
        "{body}"
    );
    // A dataschema the catalogue does not hold.
    let mut foreign = permit_event("dysart", "s-6", "issued", "BP-2026-0106");
    foreign["dataschema"] = json!("https://example.org/permit.json");
    let (status, body) = bus.publish("dysart", &foreign).await.expect("post");
    assert_eq!(
        (status, body["type"].as_str()),
        (422, Some("/problems/unknown-dataschema"))
    );

    // A tenant that accepts unvalidated types may publish a type the catalogue lacks,
    // but known types are still validated.
    let mut custom = permit_event("minden-hills", "s-7", "issued", "BP-2026-0107");
    custom["type"] = json!("ca.mindenhills.parks.booking.created");
    custom["data"] = json!({ "anything": true });
    assert_eq!(
        bus.publish("minden-hills", &custom).await.expect("post").0,
        202
    );
    let mut still_checked = permit_event("minden-hills", "s-8", "issued", "BP-2026-0108");
    still_checked["data"]["PIN"] = json!("123");
    assert_eq!(
        bus.publish("minden-hills", &still_checked)
            .await
            .expect("post")
            .0,
        422
    );
    bus.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn amqp_ingress_quarantines_invalid_data_with_the_violations() {
    let user = format!("e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let password = rabbitmq_user(&user).expect("rabbitmq user");
    let mut h = Harness::new("schemas-amqp", Backend::Sqlite)
        .await
        .expect("harness");
    h.amqp_user("dysart", &user);
    let bus = h.start().await.expect("bus");
    let topology = bus.admin.topology().clone();
    let url = civicbus_tests::amqp_url().replace("guest:guest", &format!("{user}:{password}"));
    let system = civicbus_broker::Broker::connect(
        &url,
        topology.clone(),
        civicbus_broker::BrokerOptions::default(),
    )
    .await
    .expect("connects");
    let mut bad = permit_event("dysart", "q-1", "issued", "BP-2026-0201");
    bad["data"]["IssuedDate"] = json!("25/11/2026");
    let ev =
        civicbus_core::binding::parse_structured(bad.to_string().as_bytes(), &Default::default())
            .expect("event");
    system
        .publisher()
        .publish_confirmed_as(
            &user,
            vec![(
                civicbus_core::ports::Destination::Exchange {
                    exchange: topology.ingress_exchange(),
                    routing_key: "dysart.permitting".into(),
                },
                civicbus_core::wire::to_amqp(&ev, vec![]),
            )],
        )
        .await
        .expect("published");
    let store = bus.store();
    let found = eventually(WAIT, || {
        let store = store.clone();
        async move {
            store
                .list_quarantine(Some("dysart"), 10)
                .await
                .is_ok_and(|q| !q.is_empty())
        }
    })
    .await;
    assert!(found, "quarantined");
    let q = store
        .list_quarantine(Some("dysart"), 10)
        .await
        .expect("list");
    assert_eq!(q[0].reason_kind, "schema-violation");
    assert_eq!(q[0].field, "data/IssuedDate");
    assert!(q[0].reason.contains("/IssuedDate"), "{}", q[0].reason);
    assert!(q[0].reason.contains("(pattern)"), "{}", q[0].reason);
    assert_eq!(store.count_events(Some("dysart")).await.expect("count"), 0);
    let _ = system.close().await;
    bus.stop().await;
    delete_rabbitmq_user(&user);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_catalogue_directory_is_reloaded_when_a_file_changes() {
    let dir = tempfile::tempdir().expect("tmp");
    let schema = |required: &[&str]| {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://schemas.mindenhills.example/ca.mindenhills.parks.booking.created/v1",
            "title": "Park booking created",
            "type": "object",
            "required": required,
            "properties": {
                "bookingId": { "title": "Booking", "description": "Booking number.", "type": "string" },
                "site": { "title": "Site", "description": "Park site.", "type": "string" }
            }
        })
    };
    let file = dir
        .path()
        .join("ca.mindenhills.parks.booking.created.v1.json");
    std::fs::write(&file, schema(&["bookingId"]).to_string()).expect("write");
    let mut h = Harness::new("schemas-reload", Backend::Sqlite)
        .await
        .expect("harness");
    h.config.schemas.dirs = vec![dir.path().to_path_buf()];
    h.config.schemas.watch_interval = Duration::from_millis(200);
    let bus = h.start().await.expect("bus");
    let event = |id: &str| {
        json!({ "specversion": "1.0", "id": id, "source": "/minden-hills/parks",
                "type": "ca.mindenhills.parks.booking.created",
                "datacontenttype": "application/json",
                "data": { "bookingId": "PK-7" } })
    };
    assert_eq!(
        bus.publish("minden-hills", &event("r-1"))
            .await
            .expect("post")
            .0,
        202
    );

    // The schema now also requires `site`: within the watch interval, the same data is
    // refused. A broken file is reported and the catalogue in force stays.
    std::fs::write(&file, schema(&["bookingId", "site"]).to_string()).expect("write");
    let refused = eventually(WAIT, || {
        let bus = &bus;
        async move {
            bus.publish("minden-hills", &event("r-2"))
                .await
                .is_ok_and(|(s, _)| s == 422)
        }
    })
    .await;
    assert!(refused, "reloaded on change");
    std::fs::write(&file, "{ broken").expect("write");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, body) = bus
        .publish("minden-hills", &event("r-3"))
        .await
        .expect("post");
    assert_eq!(status, 422, "still the last good catalogue: {body}");
    assert!(
        errors(&body).iter().any(|(_, _, k)| k == "required"),
        "{body}"
    );
    bus.stop().await;
}

#[test]
fn the_test_fixtures_match_the_catalogue() {
    use civicbus_schemas::{Catalogue, Lookup};
    let catalogue = Catalogue::load_with(true, &[]).expect("catalogue");
    let mut events: Vec<Value> = [
        "issued",
        "closed",
        "fee-assessed",
        "status-changed",
        "application-submitted",
    ]
    .iter()
    .map(|a| permit_event("dysart", "f-1", a, "BP-2026-0001"))
    .collect();
    events.push(civicbus_tests::address_event("g-1", "4616020003007000000"));
    for ev in events {
        let ty = ev["type"].as_str().unwrap_or_default();
        let Lookup::Found(schema) = catalogue.lookup(ty, None) else {
            panic!("no schema for {ty}")
        };
        let v = schema.violations(&ev["data"]);
        assert!(v.is_empty(), "{ty}: {v:?}");
    }
}
