//! What plugins return: echo, split, filter, errors, invalid output, output limits,
//! instance reuse and replacement.

use std::sync::Arc;

use civicbus_core::{Data, ExtensionValue};
use civicbus_transform_host::{HostConfig, Limits, TransformError};
use serde_json::json;

use crate::common::{config, event, ext, host, host_with, load, test_limits};

#[test]
fn echo_returns_a_new_event_caused_by_the_input() {
    let host = host();
    let echo = load(&host, "echo");
    let input = event(
        "e1",
        Some("P-2026-001"),
        json!({"permit": "P-2026-001", "fee": 125}),
    );
    let out = echo.transform(&input).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.len(), 1);
    let ev = &out[0];
    assert_eq!(ev.id, "e1-echo");
    assert_eq!(ev.source, input.source);
    assert_eq!(ev.ty, input.ty);
    assert_eq!(ev.subject, input.subject);
    assert_eq!(ev.data, input.data);
    assert_eq!(
        ext(ev, "causationid"),
        Some(&ExtensionValue::String("e1".into()))
    );
    assert_eq!(ext(ev, "traceparent"), ext(&input, "traceparent"));
    assert_eq!(
        ev.tenant(),
        None,
        "the plugin never sees the tenant, so cannot return it"
    );
}

#[test]
fn split_returns_one_event_per_array_element() {
    let host = host();
    let split = load(&host, "split");
    let input = event("batch-7", None, json!([{"parcel": 1}, "two", [3, 3]]));
    let out = split.transform(&input).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<_> = out.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["batch-7-0", "batch-7-1", "batch-7-2"]);
    let data: Vec<_> = out.iter().map(|e| e.data.clone()).collect();
    assert_eq!(
        data,
        [
            Some(Data::Json(json!({"parcel": 1}))),
            Some(Data::Json(json!("two"))),
            Some(Data::Json(json!([3, 3]))),
        ]
    );
}

#[test]
fn filter_returns_nothing() {
    let host = host();
    let filter = load(&host, "filter");
    let out = filter
        .transform(&event("e1", None, json!({})))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.is_empty());
}

#[test]
fn plugin_errors_keep_their_kind() {
    let host = host();
    let echo = load(&host, "echo");
    let terminal = echo.transform(&event("e1", Some("terminal"), json!({})));
    assert!(
        matches!(&terminal, Err(TransformError::Terminal(m)) if m.contains("can never be echoed")),
        "{terminal:?}"
    );
    let retryable = echo.transform(&event("e2", Some("retryable"), json!({})));
    assert!(
        matches!(&retryable, Err(TransformError::Retryable(_))),
        "{retryable:?}"
    );
    assert!(retryable.err().is_some_and(|e| e.is_retryable()));
    assert!(!terminal.err().is_some_and(|e| e.is_retryable()));
    // A plugin error is not a trap: the same instance goes on serving.
    assert!(echo.transform(&event("e3", None, json!({}))).is_ok());
    assert_eq!(echo.stats().instances_created, 1);
}

#[test]
fn invalid_outputs_are_refused_naming_the_output_and_field() {
    let host = host();
    let plugin = load(&host, "invalid-output");
    let cases = [
        (
            "json",
            "output 1: data: datacontenttype `application/json` declares JSON, but data is not valid JSON",
        ),
        ("source", "output 1: source: `source` must not be empty"),
        (
            "extension",
            "output 1: Bad-Name: `Bad-Name` is not a valid CloudEvents attribute name",
        ),
        (
            "text",
            "output 1: data: datacontenttype `text/plain` declares text, but data is not UTF-8",
        ),
        (
            "time",
            "output 1: time: `yesterday` is not an RFC 3339 timestamp",
        ),
    ];
    for (subject, expected) in cases {
        match plugin.transform(&event("e1", Some(subject), json!({"k": 1}))) {
            Err(TransformError::InvalidOutput(message)) => {
                assert!(message.starts_with(expected), "{subject}: {message}")
            }
            other => panic!("{subject}: expected InvalidOutput, got {other:?}"),
        }
    }
}

#[test]
fn a_tenant_set_by_the_plugin_is_stripped() {
    let host = host();
    let plugin = load(&host, "invalid-output");
    let out = plugin
        .transform(&event("e1", Some("tenant"), json!({})))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|e| e.tenant().is_none()), "{out:?}");
}

#[test]
fn outputs_over_the_limits_are_refused() {
    let limits = Limits {
        max_output_events: 10,
        max_output_bytes: 64 << 10,
        ..test_limits()
    };
    let host = host_with(config(limits));
    let flood = load(&host, "huge-output");
    let ok = flood.transform(&event("e1", None, json!({"count": 10, "bytes": 1000})));
    assert_eq!(ok.map(|v| v.len()), Ok(10));
    let too_many = flood.transform(&event("e2", None, json!({"count": 11, "bytes": 1})));
    assert!(
        matches!(&too_many, Err(TransformError::OutputLimit(m)) if m.contains("11 events")),
        "{too_many:?}"
    );
    let too_big = flood.transform(&event("e3", None, json!({"count": 2, "bytes": 40000})));
    assert!(
        matches!(&too_big, Err(TransformError::OutputLimit(m)) if m.contains("max_output_bytes")),
        "{too_big:?}"
    );
    // Over-limit output is not a trap: the instance is kept.
    assert_eq!(flood.stats().instances_trapped, 0);
}

#[test]
fn instances_are_reused_and_replaced_every_n_calls() {
    let host = host_with(HostConfig {
        max_calls_per_instance: 3,
        ..config(test_limits())
    });
    let echo = load(&host, "echo");
    let seqs: Vec<_> = (0..7)
        .map(|i| {
            let out = echo
                .transform(&event(&format!("e{i}"), None, json!({})))
                .unwrap_or_else(|e| panic!("{e}"));
            match ext(&out[0], "seq") {
                Some(ExtensionValue::Integer(n)) => *n,
                other => panic!("no seq: {other:?}"),
            }
        })
        .collect();
    assert_eq!(seqs, [1, 2, 3, 1, 2, 3, 1]);
    let stats = echo.stats();
    assert_eq!(stats.calls, 7);
    assert_eq!(stats.instances_created, 3);
    assert_eq!(stats.instances_retired, 2);
}

#[test]
fn concurrent_calls_each_get_an_instance() {
    let host = host();
    let echo = load(&host, "echo");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let echo = Arc::clone(&echo);
            std::thread::spawn(move || {
                for i in 0..25 {
                    let id = format!("t{t}-{i}");
                    let out = echo.transform(&event(&id, None, json!({"i": i})));
                    assert_eq!(out.map(|o| o[0].id.clone()), Ok(format!("{id}-echo")));
                }
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().is_ok());
    }
    let stats = echo.stats();
    assert_eq!(stats.calls, 100);
    assert!(stats.instances_created <= 4, "{stats:?}");
}

#[test]
fn the_sandbox_clock_is_fixed_at_the_epoch() {
    let host = host();
    let sleep = load(&host, "sleep");
    let out = sleep
        .transform(&event("e1", Some("clock"), json!({})))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out[0].data, Some(Data::Json(json!({"wall_clock_secs": 0}))));
}
