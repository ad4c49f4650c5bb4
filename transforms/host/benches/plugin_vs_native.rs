//! The same mapping — the `permit-to-record` example plugin — as a WebAssembly plugin and
//! as native Rust, per event, in one process.
//!
//! ```text
//! cargo bench -p civicbus-transform-host --bench plugin-vs-native [-- --iterations N] [--wasm FILE]
//! ```
//!
//! Builds the example plugins (`transforms/examples/build.sh`) first when
//! `permit-to-record.wasm` is missing or older than its sources. The input is the golden
//! `input-dysart-cottage.json` (a BLDS `permit.issued`), its `data` topped up with BLDS
//! fields it lacks until the payload is at least 1 KiB; the configuration is the golden
//! `config.json`. Before timing, every path's output is checked to be the same events.
//!
//! Paths, each measured per event (median, mean, p99 of single calls after a warm-up; the
//! paths take turns over several rounds so that load from other processes hits all alike):
//!
//! * native: the `civicbus_core::CloudEvent` converted to the SDK's `Event` the way the
//!   host converts it for a plugin (attributes cloned, `tenant` dropped, JSON data
//!   serialised to bytes), `civicbus_transform_sdk::run` (the mapping through the
//!   `Transform` trait, then `Event::validate` on each output), each output converted back
//!   (data parsed as JSON, `CloudEvent::validate`). `init` runs once, outside the timing.
//!   The SDK's native log sink prints the plugin's one debug line per event to stderr; it
//!   points at /dev/null meanwhile, and its cost is shown on its own line.
//! * wasm: `Plugin::transform`: the same conversions in the host, an instance from the
//!   pool, fuel and epoch deadline armed, the canonical-ABI copies in and out, the guest
//!   SDK's conversions, the same `run`, the log line through the host import, output
//!   limits; with a reused instance or a fresh one per call (`max_calls_per_instance = 1`:
//!   a new store, instantiation from the pooling allocator and the guest's `init` on
//!   every call), with fuel metering on (`Limits::default()`) or off (`fuel: None`; an
//!   engine-wide setting, hence a host per setting).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use civicbus_core::binding::{ParseLimits, parse_structured};
use civicbus_core::envelope::{TENANT_EXTENSION, is_json_media_type, is_text_media_type};
use civicbus_core::{CloudEvent, Data, ExtensionValue};
use civicbus_transform_host::{HostConfig, Limits, Plugin, TransformHost};
use civicbus_transform_sdk::{Event, ExtensionValue as SdkValue, Transform};
use permit_to_record::PermitToRecord;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "usage: cargo bench -p civicbus-transform-host --bench plugin-vs-native [-- --iterations N] [--wasm FILE]";
const DEFAULT_ITERATIONS: usize = 20_000;
/// Fresh-instance paths run this many times fewer calls (each one instantiates).
const FRESH_DIVISOR: usize = 10;
/// The paths take turns this many times.
const ROUNDS: usize = 5;
/// The payload is topped up to at least this many bytes.
const EVENT_DATA_BYTES: usize = 1024;
/// Targets from the issue: the plugin path within 3× of native and under 20 µs per event.
const TARGET_RATIO: f64 = 3.0;
const TARGET_MICROS: f64 = 20.0;

/// BLDS fields (in the `permit.issued` schema) that the golden input lacks, added in this
/// order until the payload reaches [`EVENT_DATA_BYTES`]. The mapping ignores them.
const PADDING: [(&str, &str); 6] = [
    (
        "OriginalAddress2",
        "Lot 14, Concession 9, Geographic Township of Dysart",
    ),
    (
        "PermitTypeDesc",
        "Building permit: new residential construction under Part 9 of the Ontario Building Code",
    ),
    ("PermitClass", "Residential - Single Detached Dwelling"),
    ("WorkClass", "New Construction"),
    (
        "ProposedUse",
        "Seasonal residential dwelling (cottage) with attached deck",
    ),
    ("ContractorTrade", "General Contractor"),
];

struct Args {
    iterations: usize,
    wasm: Option<PathBuf>,
}

fn main() -> BenchResult<()> {
    let args = parse_args()?;
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let examples = std::fs::canonicalize(&examples).unwrap_or(examples);
    let golden = examples.join("tests/golden/permit-to-record");
    let wasm = plugin_wasm(&examples, args.wasm)?;
    let config = read(&golden.join("config.json"))?;
    let (event, data_bytes, structured_bytes) = input_event(&golden)?;
    let wasm_bytes = std::fs::metadata(&wasm)
        .map_err(|e| format!("{}: {e}", wasm.display()))?
        .len();

    println!("plugin-vs-native: permit-to-record, one BLDS permit.issued event per call");
    println!(
        "input: {} + BLDS padding: data {data_bytes} bytes (binary mode), structured event {structured_bytes} bytes",
        golden.join("input-dysart-cottage.json").display()
    );
    println!("wasm:  {} ({wasm_bytes} bytes)", wasm.display());
    println!(
        "cores: {}",
        std::thread::available_parallelism().map_or(0, usize::from)
    );

    // One host per engine setting (fuel is engine-wide) and per instance policy.
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-vs-native-cache");
    let host_config = |max_calls_per_instance: u64, fuel: Option<u64>| HostConfig {
        cache_dir: Some(cache.clone()),
        max_calls_per_instance,
        limits: Limits {
            fuel,
            ..Limits::default()
        },
        ..HostConfig::default()
    };
    let default_fuel = Limits::default().fuel;
    let fresh = 1;
    let reuse = HostConfig::default().max_calls_per_instance;
    let hosts = [
        (reuse, default_fuel),
        (reuse, None),
        (fresh, default_fuel),
        (fresh, None),
    ]
    .map(|(calls, fuel)| TransformHost::new(host_config(calls, fuel)));
    let mut plugins = Vec::new();
    for host in hosts {
        let host = host?;
        let started = Instant::now();
        let plugin = host.load("permit-to-record", &wasm, &config)?;
        println!(
            "load (compile{} + instantiate + init): {:.1} ms",
            if plugin.compiled_from_cache() {
                " from the disk cache"
            } else {
                ""
            },
            started.elapsed().as_secs_f64() * 1e3
        );
        plugins.push((host, plugin));
    }
    let [reuse_fuel, reuse_nofuel, fresh_fuel, fresh_nofuel]: [&Plugin; 4] =
        [0, 1, 2, 3].map(|i| &*plugins[i].1);
    let native = <PermitToRecord as Transform>::init(&config)
        .map_err(|e| format!("permit-to-record refused the golden config.json: {e}"))?;

    // Same events out of every path, or the comparison means nothing.
    let expected = {
        let _quiet = Quiet::stderr()?;
        native_transform(&native, &event)?
    };
    let _ = civicbus_transform_sdk::testing::take_logs();
    for plugin in [reuse_fuel, reuse_nofuel, fresh_fuel, fresh_nofuel] {
        let out = plugin.transform(&event)?;
        if out != expected {
            return Err(format!(
                "the plugin's output differs from the native mapping's:\nwasm:   {out:?}\nnative: {expected:?}\n(is {} stale? run bash transforms/examples/build.sh)",
                wasm.display()
            )
            .into());
        }
    }
    println!(
        "check: all paths return the same {} event(s) ({})",
        expected.len(),
        expected
            .iter()
            .map(|e| e.ty.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let n = args.iterations;
    let n_fresh = (n / FRESH_DIVISOR).max(ROUNDS * 10);
    let mut paths = vec![
        Measured::new("native (rlib, same conversions)", n, None, true, || {
            let out = native_transform(&native, black_box(&event))?;
            black_box(out);
            let _ = civicbus_transform_sdk::testing::take_logs();
            Ok(())
        }),
        Measured::new(
            "wasm, reused instance, fuel on",
            n,
            Some(reuse_fuel),
            false,
            || wasm_transform(reuse_fuel, &event),
        ),
        Measured::new(
            "wasm, reused instance, fuel off",
            n,
            Some(reuse_nofuel),
            false,
            || wasm_transform(reuse_nofuel, &event),
        ),
        Measured::new(
            "wasm, fresh instance, fuel on",
            n_fresh,
            Some(fresh_fuel),
            false,
            || wasm_transform(fresh_fuel, &event),
        ),
        Measured::new(
            "wasm, fresh instance, fuel off",
            n_fresh,
            Some(fresh_nofuel),
            false,
            || wasm_transform(fresh_nofuel, &event),
        ),
        Measured::new("  of which native log sink (stderr)", n, None, true, || {
            civicbus_transform_sdk::log::debug!(
                "permit {} declared as record {}",
                "DYS-BP-2026-0142",
                "permit:dysart:DYS-BP-2026-0142"
            );
            let _ = civicbus_transform_sdk::testing::take_logs();
            Ok(())
        }),
    ];

    println!(
        "measuring: {n} calls per path ({n_fresh} for fresh instances), taking turns in {ROUNDS} rounds, after a tenth as many warm-up calls"
    );
    for path in &mut paths {
        path.warm_up()?;
    }
    for _ in 0..ROUNDS {
        for path in &mut paths {
            path.round()?;
        }
    }
    for path in &mut paths {
        path.samples.sort_unstable();
    }

    // The SDK's native log sink (a stderr write per event) has no counterpart on the wasm
    // paths (the host import ends in a disabled tracing call), so the ratio that decides
    // the 3× target is taken against native without it: the stricter of the two.
    let native_median = paths[0].median();
    let native_bare = native_median - paths[paths.len() - 1].median();
    println!();
    println!(
        "{:<34} {:>9} {:>8} {:>8} {:>8} {:>10} {:>9} {:>7} {:>9}",
        "path",
        "median µs",
        "mean µs",
        "p99 µs",
        "× native",
        "× nat−log",
        "≤3× nat.",
        "<20 µs",
        "fuel/call"
    );
    for path in &paths {
        let median = path.median();
        let wasm = path.plugin.is_some();
        let target = |met: bool| {
            if !wasm {
                "-"
            } else if met {
                "yes"
            } else {
                "NO"
            }
        };
        println!(
            "{:<34} {:>9.2} {:>8.2} {:>8.2} {:>8.2} {:>10.2} {:>9} {:>7} {:>9}",
            path.label,
            median,
            path.mean(),
            path.p99(),
            median / native_median,
            median / native_bare,
            target(median / native_bare <= TARGET_RATIO),
            target(median < TARGET_MICROS),
            path.fuel_per_call()
                .map_or_else(|| "-".to_string(), |f| f.to_string()),
        );
    }
    println!();
    println!(
        "× nat−log: against native minus its log sink ({native_bare:.2} µs), which the wasm paths do not pay"
    );
    println!(
        "targets (issue): plugin path ≤ {TARGET_RATIO}× native (judged on × nat−log) and < {TARGET_MICROS} µs per ~1 KB event; on medians"
    );
    println!(
        "reproduce (from the workspace root): cargo bench -p civicbus-transform-host --bench plugin-vs-native -- --iterations {n}"
    );
    Ok(())
}

/// One measured path: a closure called once per event; `samples` sorted after the last round.
struct Measured<'a> {
    label: &'static str,
    iterations: usize,
    plugin: Option<&'a Plugin>,
    quiet: bool,
    call: Box<dyn FnMut() -> BenchResult<()> + 'a>,
    samples: Vec<Duration>,
    fuel_before: u64,
    calls_before: u64,
}

impl<'a> Measured<'a> {
    fn new(
        label: &'static str,
        iterations: usize,
        plugin: Option<&'a Plugin>,
        quiet: bool,
        call: impl FnMut() -> BenchResult<()> + 'a,
    ) -> Self {
        Measured {
            label,
            iterations,
            plugin,
            quiet,
            call: Box::new(call),
            samples: Vec::with_capacity(iterations),
            fuel_before: 0,
            calls_before: 0,
        }
    }

    fn warm_up(&mut self) -> BenchResult<()> {
        let _quiet = self.quiet.then(Quiet::stderr).transpose()?;
        for _ in 0..self.iterations / 10 {
            (self.call)()?;
        }
        if let Some(p) = self.plugin {
            let stats = p.stats();
            self.fuel_before = stats.fuel_consumed;
            self.calls_before = stats.calls;
        }
        Ok(())
    }

    fn round(&mut self) -> BenchResult<()> {
        let _quiet = self.quiet.then(Quiet::stderr).transpose()?;
        for _ in 0..self.iterations / ROUNDS {
            let started = Instant::now();
            (self.call)()?;
            self.samples.push(started.elapsed());
        }
        Ok(())
    }

    fn quantile_micros(&self, q: f64) -> f64 {
        let last = self.samples.len().saturating_sub(1);
        // Rounded index into the sorted samples; the counts are far below 2^52.
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let i = ((last as f64) * q).round() as usize;
        self.samples.get(i).map_or(f64::NAN, micros)
    }

    fn median(&self) -> f64 {
        self.quantile_micros(0.5)
    }

    fn p99(&self) -> f64 {
        self.quantile_micros(0.99)
    }

    fn mean(&self) -> f64 {
        let total: Duration = self.samples.iter().sum();
        let n = self.samples.len().max(1) as f64;
        micros(&total) / n
    }

    /// Fuel burnt per measured call (`None` for native; 0 with fuel metering off).
    fn fuel_per_call(&self) -> Option<u64> {
        let stats = self.plugin?.stats();
        let calls = stats.calls.saturating_sub(self.calls_before).max(1);
        Some(stats.fuel_consumed.saturating_sub(self.fuel_before) / calls)
    }
}

fn micros(d: &Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// One call of a wasm path (its outputs dropped inside the call, as on the native path).
fn wasm_transform(plugin: &Plugin, event: &CloudEvent) -> BenchResult<()> {
    let out = plugin.transform(black_box(event))?;
    black_box(out);
    Ok(())
}

/// The native path: what `Plugin::transform` does around the guest, without the sandbox.
fn native_transform(plugin: &PermitToRecord, event: &CloudEvent) -> BenchResult<Vec<CloudEvent>> {
    civicbus_transform_sdk::run(plugin, to_sdk(event))?
        .into_iter()
        .map(from_sdk)
        .collect()
}

/// As the host's `convert::to_guest`: every attribute but `tenant`, data as bytes.
fn to_sdk(event: &CloudEvent) -> Event {
    Event {
        id: event.id.clone(),
        source: event.source.clone(),
        ty: event.ty.clone(),
        subject: event.subject.clone(),
        time: event.time.clone(),
        datacontenttype: event.datacontenttype.clone(),
        dataschema: event.dataschema.clone(),
        extensions: event
            .extensions
            .iter()
            .filter(|(name, _)| name.as_str() != TENANT_EXTENSION)
            .map(|(name, value)| {
                let value = match value {
                    ExtensionValue::Boolean(b) => SdkValue::Boolean(*b),
                    ExtensionValue::Integer(i) => SdkValue::Integer(*i),
                    ExtensionValue::String(s) => SdkValue::Text(s.clone()),
                };
                (name.clone(), value)
            })
            .collect(),
        data: event.data.as_ref().map(|d| d.to_bytes().to_vec()),
    }
}

/// As the host's `convert::from_guest`: `tenant` dropped, data read by content type, the
/// CloudEvent validated.
fn from_sdk(event: Event) -> BenchResult<CloudEvent> {
    let extensions = event
        .extensions
        .into_iter()
        .filter(|(name, _)| name != TENANT_EXTENSION)
        .map(|(name, value)| {
            let value = match value {
                SdkValue::Boolean(b) => ExtensionValue::Boolean(b),
                SdkValue::Integer(i) => ExtensionValue::Integer(i),
                SdkValue::Text(s) => ExtensionValue::String(s),
            };
            (name, value)
        })
        .collect();
    let data = match (event.data, event.datacontenttype.as_deref()) {
        (None, _) => None,
        (Some(bytes), None) => Some(Data::Json(serde_json::from_slice(&bytes)?)),
        (Some(bytes), Some(ct)) if is_json_media_type(ct) => {
            Some(Data::Json(serde_json::from_slice(&bytes)?))
        }
        (Some(bytes), Some(ct)) if is_text_media_type(ct) => {
            Some(Data::Text(String::from_utf8(bytes)?))
        }
        (Some(bytes), Some(_)) => Some(Data::Binary(Bytes::from(bytes))),
    };
    let out = CloudEvent {
        id: event.id,
        source: event.source,
        ty: event.ty,
        datacontenttype: event.datacontenttype,
        dataschema: event.dataschema,
        subject: event.subject,
        time: event.time,
        extensions,
        data,
    };
    out.validate()?;
    Ok(out)
}

/// The golden input with its payload topped up to [`EVENT_DATA_BYTES`], parsed the way
/// the bus parses a structured event; with its data and structured sizes.
fn input_event(golden: &Path) -> BenchResult<(CloudEvent, usize, usize)> {
    let path = golden.join("input-dysart-cottage.json");
    let mut json: serde_json::Value = serde_json::from_str(&read(&path)?)?;
    let data = json
        .get_mut("data")
        .and_then(serde_json::Value::as_object_mut)
        .ok_or_else(|| format!("{}: no `data` object", path.display()))?;
    for (name, value) in PADDING {
        if serde_json::to_vec(&*data)?.len() >= EVENT_DATA_BYTES {
            break;
        }
        data.entry(name).or_insert_with(|| value.into());
    }
    let body = serde_json::to_vec(&json)?;
    let event = parse_structured(&body, &ParseLimits::default())?;
    let data_bytes = event.data.as_ref().map_or(0, Data::len);
    Ok((event, data_bytes, body.len()))
}

/// `permit-to-record.wasm`, built by `transforms/examples/build.sh` when missing or older
/// than the plugin's, the SDK's or the WIT's sources.
fn plugin_wasm(examples: &Path, explicit: Option<PathBuf>) -> BenchResult<PathBuf> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("--wasm {}: no such file", path.display()).into())
        };
    }
    let wasm = examples.join("target/plugins/permit-to-record.wasm");
    let sources = [
        examples.join("permit-to-record"),
        examples.join("Cargo.toml"),
        examples.join("Cargo.lock"),
        examples.join("../sdk"),
        examples.join("../wit"),
    ];
    let built = modified(&wasm);
    let mut newest = None;
    for source in &sources {
        newest = newest.max(newest_modified(source)?);
    }
    let why = match built {
        None => "missing",
        Some(built) if newest.is_some_and(|n| n > built) => "older than its sources",
        Some(_) => return Ok(wasm),
    };
    let script = examples.join("build.sh");
    println!(
        "{} is {why}: running bash {}",
        wasm.display(),
        script.display()
    );
    let status = Command::new("bash")
        .arg(&script)
        .status()
        .map_err(|e| format!("cannot run bash {}: {e}", script.display()))?;
    if !status.success() || !wasm.is_file() {
        return Err(format!(
            "building the example plugins failed ({status}); run `bash transforms/examples/build.sh` and fix what it reports, or pass --wasm FILE"
        )
        .into());
    }
    Ok(wasm)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time of `path` or of any file below it.
fn newest_modified(path: &Path) -> BenchResult<Option<SystemTime>> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display()).into()),
    };
    let mut newest = meta.modified().ok();
    if meta.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", path.display()))?;
            if entry.file_name() == "target" {
                continue;
            }
            newest = newest.max(newest_modified(&entry.path())?);
        }
    }
    Ok(newest)
}

fn read(path: &Path) -> BenchResult<String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()).into())
}

fn parse_args() -> BenchResult<Args> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        iterations: DEFAULT_ITERATIONS,
        wasm: None,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // `cargo bench` passes it to every bench target.
            "--bench" => {}
            "--iterations" => {
                let n = args.next().ok_or(USAGE)?;
                parsed.iterations = n
                    .parse()
                    .map_err(|e| format!("--iterations {n}: {e}; {USAGE}"))?;
            }
            "--wasm" => parsed.wasm = Some(args.next().ok_or(USAGE)?.into()),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`; {USAGE}").into()),
        }
    }
    if parsed.iterations < ROUNDS * 100 {
        return Err(format!("--iterations must be at least {}", ROUNDS * 100).into());
    }
    Ok(parsed)
}

/// Stderr pointed at /dev/null until dropped: the SDK's native log sink writes every
/// plugin log line there. The write itself stays in the native path's time.
struct Quiet {
    #[cfg(unix)]
    saved: std::os::fd::OwnedFd,
}

impl Quiet {
    #[cfg(unix)]
    fn stderr() -> BenchResult<Quiet> {
        let saved = rustix::io::dup(std::io::stderr())?;
        let null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .map_err(|e| format!("/dev/null: {e}"))?;
        rustix::stdio::dup2_stderr(&null)?;
        Ok(Quiet { saved })
    }

    #[cfg(not(unix))]
    fn stderr() -> BenchResult<Quiet> {
        Ok(Quiet {})
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        #[cfg(unix)]
        let _ = rustix::stdio::dup2_stderr(&self.saved);
    }
}
