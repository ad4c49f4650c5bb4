//! Measures the transform host's per-call cost on the test guests.
//!
//! ```text
//! transforms/host/tests/guests/build.sh target/transform-guests
//! cargo run --release -p civicbus-transform-host --bin transform-bench -- target/transform-guests [calls]
//! ```
//!
//! Prints, per scenario, the mean and median wall time of one `Plugin::transform` call
//! (input conversion, the guest call, output validation included) and the fuel it burnt.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use civicbus_core::{CloudEvent, Data};
use civicbus_transform_host::{HostConfig, Limits, Plugin, TransformHost};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> BenchResult<()> {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        return Err("usage: transform-bench <guests-dir> [calls]; build the guests with transforms/host/tests/guests/build.sh <guests-dir>".into());
    };
    let calls: usize = match args.next() {
        Some(n) => n.parse()?,
        None => 20_000,
    };
    let wasm = |name: &str| -> BenchResult<PathBuf> {
        let path = dir.join(format!("{name}.wasm"));
        if path.exists() {
            Ok(path)
        } else {
            Err(format!(
                "{} is missing; run transforms/host/tests/guests/build.sh {}",
                path.display(),
                dir.display()
            )
            .into())
        }
    };
    let cache = std::env::temp_dir().join(format!("transform-bench-cache-{}", std::process::id()));
    let config = |max_calls_per_instance: u64, fuel: Option<u64>| HostConfig {
        cache_dir: Some(cache.clone()),
        max_calls_per_instance,
        limits: Limits {
            fuel,
            ..Limits::default()
        },
        ..HostConfig::default()
    };

    println!("{calls} calls per scenario, one small JSON event (~200 bytes)");
    let event = sample_event()?;
    let batch = {
        let mut ev = event.clone();
        ev.data = Some(Data::Json(
            serde_json::json!([{"a": 1}, {"b": 2}, {"c": 3}, {"d": 4}]),
        ));
        ev
    };

    let host = TransformHost::new(config(10_000, Some(1_000_000_000)))?;
    let started = Instant::now();
    let echo = host.load("echo", &wasm("echo")?, "{}")?;
    println!(
        "load echo (cold compile + instantiate + init): {:?}",
        started.elapsed()
    );
    run("echo, reused instance, fuel + epoch", &echo, &event, calls)?;
    let split = host.load("split", &wasm("split")?, "{}")?;
    run(
        "split into 4, reused instance, fuel + epoch",
        &split,
        &batch,
        calls,
    )?;
    drop((echo, split, host));

    let host = TransformHost::new(config(10_000, Some(1_000_000_000)))?;
    let started = Instant::now();
    let echo = host.load("echo", &wasm("echo")?, "{}")?;
    println!(
        "load echo again in a new host (disk cache hit: {}): {:?}",
        echo.compiled_from_cache(),
        started.elapsed()
    );
    drop((echo, host));

    let host = TransformHost::new(config(10_000, None))?;
    let echo = host.load("echo", &wasm("echo")?, "{}")?;
    run("echo, reused instance, epoch only", &echo, &event, calls)?;
    drop((echo, host));

    let host = TransformHost::new(config(1, Some(1_000_000_000)))?;
    let echo = host.load("echo", &wasm("echo")?, "{}")?;
    run(
        "echo, fresh instance + init every call",
        &echo,
        &event,
        calls / 4,
    )?;
    drop((echo, host));

    let _ = std::fs::remove_dir_all(&cache);
    Ok(())
}

fn run(label: &str, plugin: &Plugin, event: &CloudEvent, calls: usize) -> BenchResult<()> {
    for _ in 0..calls / 10 {
        plugin.transform(event)?;
    }
    let before = plugin.stats();
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        plugin.transform(event)?;
        times.push(started.elapsed());
    }
    let after = plugin.stats();
    times.sort();
    let total: Duration = times.iter().sum();
    let n = u32::try_from(calls.max(1))?;
    let fuel = (after.fuel_consumed - before.fuel_consumed) / calls.max(1) as u64;
    println!(
        "{label}: mean {:.1} µs, median {:.1} µs, p99 {:.1} µs, fuel/call {fuel}",
        micros(total / n),
        micros(times[calls / 2]),
        micros(times[calls * 99 / 100]),
    );
    Ok(())
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn sample_event() -> BenchResult<CloudEvent> {
    let mut ev = CloudEvent::new("01J9Z6Q8", "/dysart/permitting", "ca.dysart.permit.issued")?;
    ev.subject = Some("P-2026-00042".into());
    ev.time = Some("2026-11-25T14:03:00Z".into());
    ev.data = Some(Data::Json(serde_json::json!({
        "permit": "P-2026-00042",
        "roll": "4616-000-123-45600",
        "kind": "building",
        "fee": {"amount": 1250.0, "currency": "CAD"},
        "issued_by": "clerk-7",
    })));
    ev.set_tenant("dysart");
    Ok(ev)
}
