//! Misbehaving plugins are stopped within a bounded time with the right reason, their
//! instance is discarded, and the next call (on a fresh instance) succeeds.

use std::time::{Duration, Instant};

use civicbus_transform_host::{HostConfig, Limits, TransformError, TrapKind};
use serde_json::json;

use crate::common::{config, event, host_with, load, test_limits};

/// Call guest `name` misbehaving, expect `kind` within `bound`, then a good call.
fn contained(limits: Limits, name: &str, kind: TrapKind, bound: Duration) -> String {
    let host = host_with(config(limits));
    let plugin = load(&host, name);
    let started = Instant::now();
    let result = plugin.transform(&event("bad-1", None, json!({})));
    let elapsed = started.elapsed();
    let message = match result {
        Err(TransformError::Trap { kind: got, message }) => {
            assert_eq!(got, kind, "{name}: {message}");
            message
        }
        other => panic!("{name}: expected a {kind:?} trap, got {other:?}"),
    };
    assert!(
        elapsed < bound,
        "{name}: stopped after {elapsed:?}, bound {bound:?}"
    );
    let stats = plugin.stats();
    assert_eq!(stats.instances_trapped, 1, "{name}: {stats:?}");
    let next = plugin.transform(&event("good-1", Some("behave"), json!({"ok": true})));
    assert_eq!(
        next.map(|v| v.len()),
        Ok(1),
        "{name}: the next call must succeed"
    );
    assert_eq!(
        plugin.stats().instances_created,
        2,
        "{name}: a fresh instance serves it"
    );
    message
}

#[test]
fn a_runaway_loop_runs_out_of_fuel() {
    let limits = Limits {
        fuel: Some(50_000_000),
        timeout: Duration::from_secs(30),
        ..test_limits()
    };
    let message = contained(
        limits,
        "loop-forever",
        TrapKind::OutOfFuel,
        Duration::from_secs(10),
    );
    assert!(message.contains("50000000 fuel"), "{message}");
}

#[test]
fn a_runaway_loop_hits_the_deadline_without_fuel() {
    let limits = Limits {
        fuel: None,
        timeout: Duration::from_millis(200),
        ..test_limits()
    };
    let message = contained(
        limits,
        "loop-forever",
        TrapKind::Timeout,
        Duration::from_secs(3),
    );
    assert!(message.contains("200ms"), "{message}");
}

#[test]
fn growing_memory_forever_hits_the_memory_limit() {
    let limits = Limits {
        memory_bytes: 8 << 20,
        ..test_limits()
    };
    let message = contained(
        limits,
        "grow-memory-forever",
        TrapKind::OutOfMemory,
        Duration::from_secs(10),
    );
    assert!(message.contains("the limit is 8388608"), "{message}");
}

#[test]
fn unbounded_recursion_overflows_the_stack() {
    let limits = Limits {
        stack_bytes: 256 << 10,
        ..test_limits()
    };
    contained(
        limits,
        "recurse-forever",
        TrapKind::StackOverflow,
        Duration::from_secs(10),
    );
}

#[test]
fn a_panic_is_reported_with_its_message() {
    let message = contained(
        test_limits(),
        "panic",
        TrapKind::Panic,
        Duration::from_secs(10),
    );
    assert!(message.contains("boom: cannot handle bad-1"), "{message}");
}

#[test]
fn sleeping_is_refused_at_once() {
    let message = contained(
        test_limits(),
        "sleep",
        TrapKind::Other,
        Duration::from_secs(5),
    );
    assert!(message.contains("may not wait"), "{message}");
}

#[test]
fn a_trapped_plugin_does_not_disturb_others_on_the_host() {
    let host = host_with(config(Limits {
        fuel: Some(20_000_000),
        ..test_limits()
    }));
    let spin = load(&host, "loop-forever");
    let echo = load(&host, "echo");
    for i in 0..3 {
        let trapped = spin.transform(&event(&format!("s{i}"), None, json!({})));
        assert_eq!(
            trapped.err().and_then(|e| e.trap_kind()),
            Some(TrapKind::OutOfFuel)
        );
        let out = echo.transform(&event(&format!("e{i}"), None, json!({})));
        assert_eq!(out.map(|v| v.len()), Ok(1));
    }
}

#[test]
fn idle_instances_give_way_and_a_full_pool_is_retryable() {
    let host = host_with(HostConfig {
        instances: 1,
        ..config(Limits {
            fuel: None,
            timeout: Duration::from_millis(1500),
            ..test_limits()
        })
    });
    // One slot: each load evicts the other plugin's idle instance.
    let spin = load(&host, "loop-forever");
    let echo = load(&host, "echo");
    assert_eq!(
        echo.transform(&event("e0", None, json!({})))
            .map(|v| v.len()),
        Ok(1)
    );

    let busy = std::thread::spawn(move || spin.transform(&event("s1", None, json!({}))));
    std::thread::sleep(Duration::from_millis(300));
    let refused = echo.transform(&event("e1", None, json!({})));
    assert!(
        matches!(&refused, Err(TransformError::Retryable(m)) if m.contains("no free instance slot")),
        "{refused:?}"
    );
    let spun = busy
        .join()
        .unwrap_or_else(|_| panic!("spin thread panicked"));
    assert_eq!(
        spun.err().and_then(|e| e.trap_kind()),
        Some(TrapKind::Timeout)
    );
    // The slot is free again.
    assert_eq!(
        echo.transform(&event("e2", None, json!({})))
            .map(|v| v.len()),
        Ok(1)
    );
}
