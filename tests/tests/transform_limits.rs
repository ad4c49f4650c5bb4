//! Containment at the edges, in a process of its own (so resident memory is this test's):
//! a plugin importing a forbidden interface stops the bus from starting, naming the
//! import; a plugin that grows memory without bound, called 40 times, is stopped at the
//! limit each time and the process's resident memory does not grow with the calls.

use std::time::Duration;

use civicbus_core::ports::{DeadLetterQuery, EventStore};
use civicbus_server::config::{PluginConfig, WebhookMode};
use civicbus_tests::{Backend, Harness, eventually, guest_plugins, permit_event};

fn plugin(name: &str, path: std::path::PathBuf) -> PluginConfig {
    PluginConfig {
        name: name.into(),
        path,
        digest: None,
        config: None,
    }
}

/// Resident memory of this process, in bytes (Linux).
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forbidden_import_stops_the_bus_from_starting_and_memory_hogs_stay_bounded() {
    let guests = guest_plugins().expect("guest plugins build");

    // A plugin that imports wasi:sockets: the bus refuses to start, naming the import.
    let mut h = Harness::new("forbidden", Backend::Sqlite)
        .await
        .expect("harness");
    h.config
        .plugins
        .push(plugin("net", guests.join("wasi_sockets.wasm")));
    h.webhook(
        "dysart",
        "net",
        vec![],
        "http://127.0.0.1:9/x".into(),
        vec![],
        WebhookMode::Binary,
    );
    if let Some(s) = h.config.subscriptions.last_mut() {
        s.transforms = vec!["net".into()];
    }
    let err = match h.start().await {
        Ok(bus) => {
            bus.stop().await;
            panic!("a plugin importing wasi:sockets must not load")
        }
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("wasi:sockets"), "{err}");

    // A plugin that grows memory without bound, 40 times over: each call stops at the
    // limit, and the process's resident memory does not grow with the number of calls.
    let mut h = Harness::new("hog", Backend::Sqlite).await.expect("harness");
    h.config.transforms.memory_bytes = 32 << 20;
    h.config
        .plugins
        .push(plugin("hog", guests.join("grow_memory_forever.wasm")));
    h.webhook(
        "dysart",
        "hog",
        vec![],
        "http://127.0.0.1:9/x".into(),
        vec![],
        WebhookMode::Binary,
    );
    if let Some(s) = h.config.subscriptions.last_mut() {
        s.transforms = vec!["hog".into()];
    }
    let bus = h.start().await.expect("bus");
    let store = bus.store();
    let run = |from: usize, to: usize| {
        let bus = &bus;
        let store = store.clone();
        async move {
            for i in from..to {
                let ev = permit_event("dysart", &format!("m-{i}"), "issued", "BP-2026-0601");
                assert_eq!(bus.publish("dysart", &ev).await.expect("post").0, 202);
            }
            eventually(Duration::from_secs(60), || {
                let store = store.clone();
                async move {
                    store
                        .list_dead_letters(&DeadLetterQuery {
                            limit: 1000,
                            ..DeadLetterQuery::default()
                        })
                        .await
                        .is_ok_and(|d| d.len() == to)
                }
            })
            .await
        }
    };
    assert!(run(0, 10).await, "first ten contained");
    let after_10 = rss();
    assert!(run(10, 40).await, "thirty more contained");
    let after_40 = rss();
    eprintln!(
        "resident memory: {} MiB after 10 runaway calls, {} MiB after 40",
        after_10 >> 20,
        after_40 >> 20
    );
    assert!(
        after_40 < after_10 + (64 << 20),
        "memory grows with runaway calls: {after_10} → {after_40} bytes"
    );
    bus.stop().await;
}
