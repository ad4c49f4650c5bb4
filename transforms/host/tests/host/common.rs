//! Test helpers: building the guest components once, hosts with small limits, events.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use civicbus_core::{CloudEvent, Data, ExtensionValue};
use civicbus_transform_host::{HostConfig, Limits, Plugin, TransformHost};

/// Directory holding `<guest>.wasm`, built (or brought up to date) once per test run.
pub fn guests_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("transform-guests");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests/build.sh");
        let output = Command::new("bash")
            .arg(&script)
            .arg(&out)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        if !output.status.success() {
            panic!(
                "building the test guest plugins failed ({} exited with {}).\n\
                 The transform host tests need the wasm32-wasip2 Rust target \
                 (`rustup target add wasm32-wasip2`) and crates.io for wit-bindgen.\n\
                 --- build output ---\n{}",
                script.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        out
    })
}

/// Path of one guest component, e.g. `guest("echo")`.
pub fn guest(name: &str) -> PathBuf {
    let path = guests_dir().join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        path.exists(),
        "guest {name} was not built: {} is missing",
        path.display()
    );
    path
}

/// The shared compile cache of the tests (compiling in a debug build is slow).
pub fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("transform-host-cache")
}

/// Limits small enough for tests to hit quickly.
pub fn test_limits() -> Limits {
    Limits {
        fuel: Some(200_000_000),
        timeout: Duration::from_secs(5),
        memory_bytes: 16 << 20,
        ..Limits::default()
    }
}

/// A host config with the shared cache, few pooling slots and the given limits.
pub fn config(limits: Limits) -> HostConfig {
    HostConfig {
        cache_dir: Some(shared_cache()),
        limits,
        instances: 16,
        ..HostConfig::default()
    }
}

/// A host with [`test_limits`].
pub fn host() -> TransformHost {
    host_with(config(test_limits()))
}

/// A host with `config`.
pub fn host_with(config: HostConfig) -> TransformHost {
    TransformHost::new(config).unwrap_or_else(|e| panic!("host: {e}"))
}

/// Load guest `name` with config `{}`.
pub fn load(host: &TransformHost, name: &str) -> Arc<Plugin> {
    host.load(name, &guest(name), "{}")
        .unwrap_or_else(|e| panic!("load {name}: {e}"))
}

/// An event with JSON data, a tenant and a trace parent.
pub fn event(id: &str, subject: Option<&str>, data: serde_json::Value) -> CloudEvent {
    let mut ev = CloudEvent::new(id, "/dysart/permitting", "ca.dysart.permit.issued")
        .unwrap_or_else(|e| panic!("{e}"));
    ev.subject = subject.map(str::to_string);
    ev.data = Some(Data::Json(data));
    ev.set_tenant("dysart");
    ev.extensions.insert(
        "traceparent".into(),
        ExtensionValue::String("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
    );
    ev
}

/// The value of extension `name` on `ev`.
pub fn ext<'a>(ev: &'a CloudEvent, name: &str) -> Option<&'a ExtensionValue> {
    ev.extensions.get(name)
}
