//! Transforms end to end (real RabbitMQ, PostgreSQL, HTTP subscribers, real WebAssembly
//! components in the wasmtime sandbox): the example plugin `permit-to-record` maps an
//! issued permit to a records declaration that the records system receives, signed, with
//! its lineage (`causationid`, the plugin's digest in the store and the audit). Runaway
//! plugins — a loop that never ends, memory that grows without bound, unbounded recursion,
//! a panic, output that breaks its schema — dead-letter their event with the cause while
//! the bus keeps serving and another subscription's deliveries continue.

use std::time::Duration;

use civicbus_core::ports::{DeadLetterQuery, DeadLetterReason, EventStore};
use civicbus_server::auth::generate_secret;
use civicbus_server::config::{PluginConfig, WebhookMode};
use civicbus_tests::{
    Backend, Harness, WebhookSimulator, eventually, exact, example_plugins, guest_plugins,
    permit_event,
};

const WAIT: Duration = Duration::from_secs(30);

fn plugin(name: &str, path: std::path::PathBuf, config: &str) -> PluginConfig {
    PluginConfig {
        name: name.into(),
        path,
        digest: None,
        config: Some(config.parse::<toml::Table>().expect("plugin config")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_permit_becomes_a_records_declaration_with_its_lineage() {
    let plugins = example_plugins().expect("example plugins build");
    let secret = generate_secret();
    let records = WebhookSimulator::start("records", vec![secret.clone()])
        .await
        .expect("sim");
    let mut h = Harness::new("transform", Backend::Postgres)
        .await
        .expect("harness");
    h.config.plugins.push(plugin(
        "permit-to-record",
        plugins.join("permit-to-record.wasm"),
        r#"documentUrl = "https://permits.example.ca/{municipality}/{PermitNum}/document""#,
    ));
    h.webhook(
        "dysart",
        "records",
        vec![exact("type", "ca.haliburton.permitting.permit.issued")],
        records.url(),
        vec![secret],
        WebhookMode::Structured,
    );
    if let Some(s) = h.config.subscriptions.last_mut() {
        s.transforms = vec!["permit-to-record".into()];
    }
    let bus = h.start().await.expect("bus");
    let event = permit_event("dysart", "t-1", "issued", "BP-2026-0301");
    assert_eq!(bus.publish("dysart", &event).await.expect("post").0, 202);

    assert!(
        eventually(WAIT, || {
            let n = records.distinct_count();
            async move { n == 1 }
        })
        .await,
        "the declaration is delivered"
    );
    let got = records
        .received()
        .into_iter()
        .find(|r| r.accepted)
        .and_then(|r| r.event)
        .expect("event");
    assert_eq!(got.ty, "ca.haliburton.records.record.declared");
    assert_eq!(got.tenant(), Some("dysart"));
    assert_eq!(
        got.attribute("causationid").as_deref(),
        Some("t-1"),
        "lineage kept"
    );
    assert!(
        got.attribute("dataref")
            .is_some_and(|d| d.contains("BP-2026-0301"))
    );

    let store = bus.store();
    let runs = store
        .transform_runs("dysart", "/dysart/permitting", "t-1")
        .await
        .expect("runs");
    assert_eq!(runs.len(), 1);
    assert!(
        runs[0].plugins[0].starts_with("permit-to-record@sha256:"),
        "{:?}",
        runs[0].plugins
    );
    assert_eq!(runs[0].outputs[0].1, got.id);
    let log = store.audit_entries(0, 1_000).await.expect("audit");
    assert!(
        log.iter()
            .any(|e| e.action == "transformed" && e.detail.contains("permit-to-record@sha256:"))
    );
    bus.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runaway_plugins_are_contained_and_the_bus_keeps_serving() {
    let guests = guest_plugins().expect("guest plugins build");
    let secret = generate_secret();
    let sink = WebhookSimulator::start("sink", vec![secret.clone()])
        .await
        .expect("sim");
    let other = WebhookSimulator::start("other", vec![secret.clone()])
        .await
        .expect("sim");
    let mut h = Harness::new("contain", Backend::Sqlite)
        .await
        .expect("harness");
    h.config.transforms.timeout = Duration::from_millis(500);
    h.config.transforms.memory_bytes = 16 << 20;
    let cases = [
        ("loop", "loop_forever.wasm"),
        ("memory", "grow_memory_forever.wasm"),
        ("recurse", "recurse_forever.wasm"),
        ("panic", "panic.wasm"),
        ("invalid", "invalid_output.wasm"),
        ("huge", "huge_output.wasm"),
    ];
    for (name, file) in cases {
        // `huge` is named by its path (no [[plugins]] entry, no configuration).
        let by_path = guests.join(file).to_string_lossy().into_owned();
        if name != "huge" {
            h.config.plugins.push(plugin(name, guests.join(file), ""));
        }
        h.webhook(
            "dysart",
            name,
            vec![exact("id", &format!("c-{name}"))],
            sink.url(),
            vec![secret.clone()],
            WebhookMode::Binary,
        );
        if let Some(s) = h.config.subscriptions.last_mut() {
            s.transforms = vec![if name == "huge" { by_path } else { name.into() }];
        }
    }
    // Another subscription, without transforms, receives everything.
    h.webhook(
        "dysart",
        "other",
        vec![],
        other.url(),
        vec![secret],
        WebhookMode::Binary,
    );
    let bus = h.start().await.expect("bus");
    for (name, _) in cases {
        // The test guests take their cue from the event: `invalid` breaks the output the
        // subject names; `huge` emits `count` events of `bytes` bytes.
        let subject = if name == "invalid" {
            "json".to_string()
        } else {
            format!("BP-{name}")
        };
        let mut ev = permit_event("dysart", &format!("c-{name}"), "issued", &subject);
        if name == "huge" {
            ev["data"]["count"] = serde_json::json!(1000);
            ev["data"]["bytes"] = serde_json::json!(64);
        }
        assert_eq!(bus.publish("dysart", &ev).await.expect("post").0, 202);
    }
    let store = bus.store();
    let all_dead = eventually(Duration::from_secs(60), || {
        let store = store.clone();
        async move {
            store
                .list_dead_letters(&DeadLetterQuery::default())
                .await
                .is_ok_and(|d| d.len() == cases.len())
        }
    })
    .await;
    let dead = store
        .list_dead_letters(&DeadLetterQuery::default())
        .await
        .expect("dead letters");
    assert!(all_dead, "every runaway input dead-lettered: {dead:#?}");
    for (name, _) in cases {
        let d = dead
            .iter()
            .find(|d| d.subscription == format!("dysart.{name}"))
            .unwrap_or_else(|| panic!("{name} dead-lettered"));
        assert_eq!(
            d.reason,
            DeadLetterReason::TransformFailed,
            "{name}: {}",
            d.error
        );
        // A runaway loop meets the fuel or the time limit, whichever comes first; a Rust
        // guest's own stack (in linear memory) may overflow before the wasm stack does.
        let want: &[&str] = match name {
            "loop" => &["(timeout)", "(out-of-fuel)"],
            "memory" => &["(out-of-memory)"],
            "recurse" => &["(stack-overflow)", "stack overflowed"],
            "panic" => &["(panic)"],
            "invalid" => &["(invalid-output)"],
            _ => &["(output-limit)"],
        };
        assert!(
            want.iter().any(|w| d.error.contains(w)),
            "{name}: {}",
            d.error
        );
    }
    assert_eq!(
        sink.request_count(),
        0,
        "nothing from a runaway plugin is delivered"
    );
    // The other subscription got every event, and the bus still serves.
    assert!(
        eventually(WAIT, || {
            let n = other.distinct_count();
            async move { n == cases.len() }
        })
        .await,
        "other deliveries continue"
    );
    let late = permit_event("dysart", "c-late", "issued", "BP-late");
    assert_eq!(bus.publish("dysart", &late).await.expect("post").0, 202);
    assert!(
        eventually(WAIT, || {
            let n = other.distinct_count();
            async move { n == cases.len() + 1 }
        })
        .await
    );
    bus.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_output_that_breaks_its_schema_dead_letters_the_input() {
    let plugins = example_plugins().expect("example plugins build");
    let secret = generate_secret();
    let sink = WebhookSimulator::start("finance", vec![secret.clone()])
        .await
        .expect("sim");
    let mut h = Harness::new("transform-schema", Backend::Sqlite)
        .await
        .expect("harness");
    // split-batch turns each item of `items` into a permit.status-changed event.
    h.config.plugins.push(plugin(
        "split",
        plugins.join("split-batch.wasm"),
        r#"type = "ca.haliburton.permitting.permit.status-changed"
itemsField = "items"
subjectPointer = "/PermitNum""#,
    ));
    h.webhook(
        "dysart",
        "finance",
        vec![exact("type", "ca.haliburton.permitting.permit.issued")],
        sink.url(),
        vec![secret],
        WebhookMode::Binary,
    );
    if let Some(s) = h.config.subscriptions.last_mut() {
        s.transforms = vec!["split".into()];
    }
    let bus = h.start().await.expect("bus");
    let good = serde_json::json!({
        "PermitNum": "BP-1", "StatusCurrentMapped": "Permit Issued", "StatusDate": "2026-11-25"
    });
    // The second item has no StatusDate: its output breaks the status-changed schema.
    let bad = serde_json::json!({ "PermitNum": "BP-2", "StatusCurrentMapped": "Permit Issued" });
    let mut batch = permit_event("dysart", "s-1", "issued", "BP-2026-0401");
    batch["data"]["items"] = serde_json::json!([good.clone(), bad]);
    let mut fine = permit_event("dysart", "s-2", "issued", "BP-2026-0402");
    fine["data"]["items"] = serde_json::json!([good]);
    assert_eq!(bus.publish("dysart", &batch).await.expect("post").0, 202);
    assert_eq!(bus.publish("dysart", &fine).await.expect("post").0, 202);

    let store = bus.store();
    let dead = eventually(WAIT, || {
        let store = store.clone();
        async move {
            store
                .list_dead_letters(&DeadLetterQuery::default())
                .await
                .is_ok_and(|d| d.len() == 1)
        }
    })
    .await;
    assert!(dead, "the input with a bad output is dead-lettered");
    let d = &store
        .list_dead_letters(&DeadLetterQuery::default())
        .await
        .expect("dead letters")[0];
    assert_eq!(d.event.id, "s-1");
    assert_eq!(d.reason, DeadLetterReason::TransformFailed);
    assert!(
        d.error.contains("(schema-violation)")
            && d.error.contains("output [1]")
            && d.error.contains("StatusDate"),
        "{}",
        d.error
    );
    // The other event's output is delivered; nothing of the refused one is.
    assert!(
        eventually(WAIT, || {
            let n = sink.distinct_count();
            async move { n == 1 }
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.distinct_count(), 1);
    let got = sink
        .received()
        .into_iter()
        .find_map(|r| r.event)
        .expect("event");
    assert_eq!(got.attribute("causationid").as_deref(), Some("s-2"));
    bus.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_changed_plugin_file_is_reloaded_and_a_broken_one_keeps_the_old_version() {
    let guests = guest_plugins().expect("guest plugins build");
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("plugin.wasm");
    std::fs::copy(guests.join("echo.wasm"), &file).expect("copy");
    let secret = generate_secret();
    let sink = WebhookSimulator::start("sink", vec![secret.clone()])
        .await
        .expect("sim");
    let mut h = Harness::new("reload", Backend::Sqlite)
        .await
        .expect("harness");
    h.config.transforms.watch_interval = Duration::from_millis(200);
    h.config.plugins.push(plugin("live", file.clone(), ""));
    h.webhook(
        "dysart",
        "live",
        vec![],
        sink.url(),
        vec![secret],
        WebhookMode::Binary,
    );
    if let Some(s) = h.config.subscriptions.last_mut() {
        s.transforms = vec!["live".into()];
    }
    let bus = h.start().await.expect("bus");
    let store = bus.store();
    let run_of = |id: &'static str| {
        let store = store.clone();
        async move {
            store
                .transform_runs("dysart", "/dysart/permitting", id)
                .await
                .ok()
                .and_then(|r| r.into_iter().next())
        }
    };

    // Version 1 (echo): the event comes out as `<id>-echo`.
    let ev = permit_event("dysart", "r-1", "issued", "BP-2026-0501");
    assert_eq!(bus.publish("dysart", &ev).await.expect("post").0, 202);
    assert!(
        eventually(WAIT, || {
            let n = sink.distinct_count();
            async move { n == 1 }
        })
        .await
    );
    let v1 = run_of("r-1").await.expect("run recorded").plugins[0].clone();

    // Version 2 (a filter) replaces the file: later events are filtered out, by the new
    // digest.
    std::fs::copy(guests.join("filter.wasm"), &file).expect("copy");
    let attempt = std::sync::atomic::AtomicU32::new(0);
    let reloaded = eventually(WAIT, || {
        let bus = &bus;
        let store = store.clone();
        let n = attempt.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move {
            // A fresh id each time: a transform run is recorded once per event.
            let id = format!("r-2-{n}");
            let ev = permit_event("dysart", &id, "issued", "BP-2026-0502");
            let _ = bus.publish("dysart", &ev).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            store
                .transform_runs("dysart", "/dysart/permitting", &id)
                .await
                .ok()
                .and_then(|r| r.into_iter().next())
                .is_some_and(|r| r.outputs.is_empty())
        }
    })
    .await;
    assert!(reloaded, "the new version serves");
    let last = format!(
        "r-2-{}",
        attempt.load(std::sync::atomic::Ordering::Relaxed) - 1
    );
    let v2 = store
        .transform_runs("dysart", "/dysart/permitting", &last)
        .await
        .expect("runs")[0]
        .plugins[0]
        .clone();
    assert_ne!(v1, v2, "the digest of the new file is recorded");
    assert!(v2.starts_with("live@sha256:"));

    // A broken file: the filter keeps serving.
    let delivered_before = sink.distinct_count();
    std::fs::write(&file, b"not a component").expect("write");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ev = permit_event("dysart", "r-3", "issued", "BP-2026-0503");
    assert_eq!(bus.publish("dysart", &ev).await.expect("post").0, 202);
    assert!(
        eventually(WAIT, || {
            let run_of = &run_of;
            async move { run_of("r-3").await.is_some() }
        })
        .await
    );
    let v3 = run_of("r-3").await.expect("run");
    assert_eq!(v3.plugins[0], v2, "the previous version still serves");
    assert!(v3.outputs.is_empty());
    assert_eq!(
        sink.distinct_count(),
        delivered_before,
        "nothing more delivered"
    );
    bus.stop().await;
}
