//! [`Plugin`]: one loaded component, its pool of ready instances, and one call into it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use civicbus_core::CloudEvent;
use wasmtime::{PoolConcurrencyLimitError, Store, Trap};

use crate::bindings::civicbus::transform::types::ErrorKind;
use crate::bindings::{Transform, TransformPre};
use crate::convert;
use crate::error::{TransformError, TrapKind};
use crate::host::HostInner;
use crate::limiter::Refused;
pub(crate) use crate::state::PluginId;
use crate::state::{GuestState, truncate};

/// Idle instances evicted, at most, to find a pooling slot for one new instance.
const MAX_EVICTIONS: usize = 16;

/// Longest error message kept from a plugin, in bytes.
const PLUGIN_MESSAGE_BYTES: usize = 4096;

/// A loaded transform plugin: compiled, linked, checked, and initialised once.
///
/// Share it as `Arc<Plugin>`; calls may run concurrently (each on its own instance).
/// Replacing a plugin (see [`PluginSet`](crate::PluginSet)) never disturbs calls already
/// running on the old `Arc`.
pub struct Plugin {
    id: PluginId,
    path: Option<PathBuf>,
    config: String,
    pre: TransformPre<GuestState>,
    host: Arc<HostInner>,
    idle: Arc<IdlePool>,
    counters: Counters,
    compile_time: Duration,
    from_cache: bool,
}

/// A plugin's idle instances (registered with the host, which may evict them when the
/// pooling allocator runs out of slots).
pub(crate) type IdlePool = Mutex<Vec<Live>>;

/// A ready instance: its store and its exports.
pub(crate) struct Live {
    store: Store<GuestState>,
    guest: Transform,
    calls: u64,
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    fuel: AtomicU64,
    created: AtomicU64,
    trapped: AtomicU64,
    retired: AtomicU64,
}

/// Counters of one plugin since it was loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PluginStats {
    /// `transform` calls made.
    pub calls: u64,
    /// Fuel burnt by `transform` calls (0 when fuel metering is off): divide by `calls`
    /// to size [`Limits::fuel`](crate::Limits::fuel).
    pub fuel_consumed: u64,
    /// Instances created (the one made at load included).
    pub instances_created: u64,
    /// Instances discarded because a call trapped.
    pub instances_trapped: u64,
    /// Instances replaced after `max_calls_per_instance` calls.
    pub instances_retired: u64,
}

/// Why a fresh instance could not be made ready.
#[derive(Debug)]
pub(crate) enum StartError {
    /// `init` returned this error.
    Init(String),
    /// Instantiation or `init` failed otherwise.
    Failed(TransformError),
}

impl Plugin {
    pub(crate) fn new(
        id: PluginId,
        path: Option<PathBuf>,
        config: String,
        pre: TransformPre<GuestState>,
        host: Arc<HostInner>,
        compile_time: Duration,
        from_cache: bool,
    ) -> Self {
        let idle = Arc::new(Mutex::new(Vec::new()));
        host.register_idle_pool(&idle);
        Plugin {
            id,
            path,
            config,
            pre,
            host,
            idle,
            counters: Counters::default(),
            compile_time,
            from_cache,
        }
    }

    /// The name it was loaded under.
    pub fn name(&self) -> &str {
        &self.id.name
    }

    /// `sha256:<hex>` of the component bytes; record it with every output it produced.
    pub fn digest(&self) -> &str {
        &self.id.digest
    }

    /// The file it was loaded from (`None` for [`TransformHost::load_bytes`](crate::TransformHost::load_bytes)).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The configuration passed to `init`.
    pub fn plugin_config(&self) -> &str {
        &self.config
    }

    /// Whether the compiled code came from the disk cache (best effort when several loads
    /// run at once: it compares the cache's hit counter before and after compiling).
    pub fn compiled_from_cache(&self) -> bool {
        self.from_cache
    }

    /// How long compiling (or reading the cache) took.
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }

    /// Counters since load.
    pub fn stats(&self) -> PluginStats {
        let c = &self.counters;
        PluginStats {
            calls: c.calls.load(Ordering::Relaxed),
            fuel_consumed: c.fuel.load(Ordering::Relaxed),
            instances_created: c.created.load(Ordering::Relaxed),
            instances_trapped: c.trapped.load(Ordering::Relaxed),
            instances_retired: c.retired.load(Ordering::Relaxed),
        }
    }

    /// Transform one event into zero or more events.
    ///
    /// Blocking (it runs the plugin on this thread, up to [`Limits::timeout`](crate::Limits::timeout)):
    /// call it from `tokio::task::spawn_blocking` or a dedicated thread. It takes an idle
    /// instance or makes a fresh one (with `init`); an instance whose call trapped is
    /// discarded, and one that has served `max_calls_per_instance` calls is replaced.
    /// The outputs are valid CloudEvents without a `tenant` extension (stamp the
    /// input's); attribute them to [`Plugin::name`] and [`Plugin::digest`].
    pub fn transform(&self, event: &CloudEvent) -> Result<Vec<CloudEvent>, TransformError> {
        let input = convert::to_guest(event);
        let mut live = match self.checkout() {
            Some(live) => live,
            None => self.start().map_err(|e| self.start_error_for_call(e))?,
        };
        self.arm(&mut live.store)?;
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        let result = live
            .guest
            .civicbus_transform_transformer()
            .call_transform(&mut live.store, &input);
        if let Some(budget) = self.host.config.limits.fuel {
            let left = live.store.get_fuel().unwrap_or(0);
            let burnt = budget.saturating_sub(left);
            self.counters.fuel.fetch_add(burnt, Ordering::Relaxed);
        }
        let written = self.after_call(&live.store);
        let answer = match result {
            Err(error) => {
                let error = self.classify(&error, live.store.data(), &written);
                self.counters.trapped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    plugin = self.name(),
                    digest = self.digest(),
                    outcome = error.label(),
                    "{error}; the instance is discarded"
                );
                return Err(error);
            }
            Ok(answer) => answer,
        };
        live.calls += 1;
        self.checkin(live);
        match answer {
            Ok(outputs) => convert::from_guest(outputs, &self.host.config.limits),
            Err(e) => {
                let message = truncate(&e.message, PLUGIN_MESSAGE_BYTES).into_owned();
                Err(match e.kind {
                    ErrorKind::Terminal => TransformError::Terminal(message),
                    ErrorKind::Retryable => TransformError::Retryable(message),
                })
            }
        }
    }

    /// Make the first instance at load, so that a failing `init` refuses the plugin.
    pub(crate) fn warm_up(&self) -> Result<(), StartError> {
        let live = self.start()?;
        self.checkin(live);
        Ok(())
    }

    fn checkout(&self) -> Option<Live> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn checkin(&self, live: Live) {
        if live.calls >= self.host.config.max_calls_per_instance {
            self.counters.retired.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let surplus = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < self.host.config.idle_instances_per_plugin {
                idle.push(live);
                None
            } else {
                Some(live)
            }
        };
        drop(surplus);
    }

    /// A fresh instance with `init` done. When the pooling allocator has no free slot,
    /// idle instances (of any plugin) are evicted to make room.
    fn start(&self) -> Result<Live, StartError> {
        let limits = &self.host.config.limits;
        let mut attempts = 0;
        let (mut store, guest) = loop {
            let mut store = Store::new(&self.host.engine, GuestState::new(self.id.clone(), limits));
            store.limiter(|state| &mut state.limiter);
            store.epoch_deadline_trap();
            self.arm(&mut store).map_err(StartError::Failed)?;
            match self.pre.instantiate(&mut store) {
                Ok(guest) => break (store, guest),
                Err(error) if error.is::<PoolConcurrencyLimitError>() => {
                    attempts += 1;
                    if attempts > MAX_EVICTIONS || !self.host.evict_one_idle() {
                        return Err(StartError::Failed(TransformError::Retryable(format!(
                            "no free instance slot for plugin `{}`: all {} are busy (HostConfig::instances): {error}",
                            self.name(),
                            self.host.config.instances
                        ))));
                    }
                }
                Err(error) => {
                    let written = self.after_call(&store);
                    return Err(StartError::Failed(if error.is::<Trap>() {
                        self.classify(&error, store.data(), &written)
                    } else {
                        TransformError::Retryable(format!(
                            "cannot create an instance of plugin `{}`: {error:#}",
                            self.name()
                        ))
                    }));
                }
            }
        };
        self.counters.created.fetch_add(1, Ordering::Relaxed);
        let init = guest
            .civicbus_transform_transformer()
            .call_init(&mut store, &self.config);
        let written = self.after_call(&store);
        match init {
            Ok(Ok(())) => Ok(Live {
                store,
                guest,
                calls: 0,
            }),
            Ok(Err(message)) => Err(StartError::Init(
                truncate(&message, PLUGIN_MESSAGE_BYTES).into_owned(),
            )),
            Err(error) => Err(StartError::Failed(self.classify(
                &error,
                store.data(),
                &written,
            ))),
        }
    }

    fn start_error_for_call(&self, error: StartError) -> TransformError {
        match error {
            StartError::Init(message) => TransformError::Retryable(format!(
                "plugin `{}` refused its configuration on a fresh instance: {message}",
                self.name()
            )),
            StartError::Failed(error) => error,
        }
    }

    /// Give the store a full budget for one call.
    fn arm(&self, store: &mut Store<GuestState>) -> Result<(), TransformError> {
        store.data_mut().begin_call();
        if let Some(fuel) = self.host.config.limits.fuel {
            store.set_fuel(fuel).map_err(|e| {
                TransformError::Retryable(format!("cannot set the fuel budget: {e:#}"))
            })?;
        }
        store.set_epoch_deadline(self.host.deadline_ticks);
        Ok(())
    }

    /// Collect what the plugin wrote and report dropped log lines; returns the writing.
    fn after_call(&self, store: &Store<GuestState>) -> String {
        let state = store.data();
        if state.log.dropped > 0 {
            tracing::warn!(
                plugin = self.name(),
                digest = self.digest(),
                dropped = state.log.dropped,
                "plugin log lines dropped: at most {} per call",
                self.host.config.limits.max_log_lines
            );
        }
        let written = state.output.take();
        if !written.is_empty() {
            tracing::debug!(plugin = self.name(), digest = self.digest(), output = %written, "plugin wrote to stdout/stderr");
        }
        written
    }

    /// Turn a failed call into the [`TransformError::Trap`] saying why.
    fn classify(
        &self,
        error: &wasmtime::Error,
        state: &GuestState,
        written: &str,
    ) -> TransformError {
        let limits = &self.host.config.limits;
        let trap = error.downcast_ref::<Trap>();
        let (kind, mut message) = match (trap, state.limiter.refused()) {
            (Some(Trap::OutOfFuel), _) => (
                TrapKind::OutOfFuel,
                format!("the call used all of its {} fuel", limits.fuel.unwrap_or(0)),
            ),
            (Some(Trap::Interrupt), _) => (
                TrapKind::Timeout,
                format!("the call ran past its {:?} deadline", limits.timeout),
            ),
            (Some(Trap::StackOverflow), _) => (
                TrapKind::StackOverflow,
                format!(
                    "the call overflowed the {} KiB WebAssembly stack",
                    limits.stack_bytes >> 10
                ),
            ),
            (_, Some(Refused::Memory { desired })) => (
                TrapKind::OutOfMemory,
                format!(
                    "the plugin asked for {desired} bytes of linear memory; the limit is {} (memory_bytes)",
                    limits.memory_bytes
                ),
            ),
            (_, Some(Refused::Table { desired })) => (
                TrapKind::OutOfMemory,
                format!(
                    "the plugin asked for a table of {desired} elements; the limit is {} (table_elements)",
                    limits.table_elements
                ),
            ),
            (Some(Trap::UnreachableCodeReached), None) => (
                TrapKind::Panic,
                "the plugin panicked or aborted".to_string(),
            ),
            (Some(Trap::MemoryOutOfBounds), None) => (
                TrapKind::Other,
                format!(
                    "{}; in a Rust plugin this can also mean its in-memory stack overflowed (deep recursion)",
                    Trap::MemoryOutOfBounds
                ),
            ),
            (Some(other), None) => (TrapKind::Other, other.to_string()),
            (None, None) => match error.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(exit) => (
                    TrapKind::Other,
                    format!("the plugin called exit({})", exit.0),
                ),
                None => (TrapKind::Other, error.root_cause().to_string()),
            },
        };
        if !written.is_empty() {
            message.push_str("; the plugin wrote: ");
            message.push_str(written);
        }
        TransformError::Trap { kind, message }
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name())
            .field("digest", &self.digest())
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}
