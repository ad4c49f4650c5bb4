//! What the host is configured with: process-wide settings and the per-call limits.

use std::path::PathBuf;
use std::time::Duration;

/// Process-wide settings of a [`TransformHost`](crate::TransformHost).
///
/// `HostConfig::default()` is safe for production; every field has a doc comment saying
/// what it bounds.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Directory of the on-disk compile cache. `None` compiles every load from scratch.
    ///
    /// Entries are keyed by the component's bytes and the engine's settings (wasmtime's
    /// own cache), so a changed plugin or an upgraded wasmtime never reuses a stale entry.
    pub cache_dir: Option<PathBuf>,
    /// Limits applied to every call into a plugin.
    pub limits: Limits,
    /// An instance is replaced by a fresh one after serving this many calls, so state a
    /// plugin accumulates (leaks, caches, counters) cannot grow without bound. At least 1.
    pub max_calls_per_instance: u64,
    /// Slots in the pooling allocator: how many plugin instances (idle or busy, all plugins
    /// together) can exist at once. A call that finds no free slot fails as retryable.
    pub instances: u32,
    /// Idle instances a plugin keeps for reuse; more concurrent calls than this create
    /// instances that are dropped when their call ends.
    pub idle_instances_per_plugin: usize,
    /// Interval of the epoch ticker thread: the resolution of [`Limits::timeout`].
    pub epoch_tick: Duration,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            cache_dir: None,
            limits: Limits::default(),
            max_calls_per_instance: 10_000,
            instances: 64,
            idle_instances_per_plugin: 4,
            epoch_tick: Duration::from_millis(10),
        }
    }
}

/// Limits on one call into a plugin (`init` or `transform`).
///
/// Defaults (`Limits::default()`):
///
/// | limit | default |
/// |---|---|
/// | `fuel` | 1 000 000 000 units (tens of milliseconds of busy guest CPU here) |
/// | `timeout` | 1 s of wall-clock time |
/// | `memory_bytes` | 64 MiB of linear memory per memory |
/// | `stack_bytes` | 512 KiB of WebAssembly stack |
/// | `memories` / `tables` / `instances` | 4 / 8 / 32 per plugin instance |
/// | `table_elements` | 20 000 per table |
/// | `max_output_events` | 100 |
/// | `max_output_bytes` | 4 MiB |
/// | `max_log_lines` | 100 per call, each truncated to 1 KiB |
#[derive(Debug, Clone)]
pub struct Limits {
    /// CPU budget per call in wasmtime fuel units (about one per WebAssembly
    /// instruction; a tight loop burns 50 M in ~2–5 ms here, a JSON transform of a small
    /// event a few thousand). Deterministic: the same event stops at the same place on any
    /// machine. `None` turns fuel metering off (it is an engine-wide setting, so it is
    /// fixed when the host is created) and leaves `timeout` as the only CPU bound.
    pub fuel: Option<u64>,
    /// Wall-clock deadline per call, enforced by epoch interruption with
    /// [`HostConfig::epoch_tick`] resolution (a call may run up to one tick longer).
    pub timeout: Duration,
    /// Largest size of each linear memory, in bytes. A guest asking for more sees its
    /// allocation fail (Rust guests then abort: [`TrapKind::OutOfMemory`](crate::TrapKind)).
    pub memory_bytes: usize,
    /// Largest WebAssembly stack, in bytes (engine-wide). Deeper recursion traps with
    /// [`TrapKind::StackOverflow`](crate::TrapKind). It runs on the calling thread's
    /// stack, so keep it well under that (tokio's blocking threads have 2 MiB).
    pub stack_bytes: usize,
    /// Linear memories per plugin instance.
    pub memories: u32,
    /// Tables per plugin instance.
    pub tables: u32,
    /// Elements per table.
    pub table_elements: usize,
    /// Core WebAssembly instances per plugin instance (a component made by the Rust
    /// toolchain holds several: the plugin, the WASI adapter and small shims).
    pub instances: u32,
    /// Most events one `transform` call may return.
    pub max_output_events: usize,
    /// Most bytes one `transform` call may return, counting every event's data and the
    /// text of all its attributes.
    pub max_output_bytes: usize,
    /// Log lines a plugin may write per call; later ones are dropped and counted.
    pub max_log_lines: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: Some(1_000_000_000),
            timeout: Duration::from_secs(1),
            memory_bytes: 64 << 20,
            stack_bytes: 512 << 10,
            memories: 4,
            tables: 8,
            table_elements: 20_000,
            instances: 32,
            max_output_events: 100,
            max_output_bytes: 4 << 20,
            max_log_lines: 100,
        }
    }
}
