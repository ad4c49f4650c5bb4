//! [`TransformHost`]: the process's one WebAssembly engine, its linker, the compile cache
//! and the epoch ticker, and loading plugins into it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};

use crate::allowlist;
use crate::bindings::{Transform, TransformPre};
use crate::config::{HostConfig, Limits};
use crate::error::{HostError, LoadError};
use crate::plugin::{IdlePool, Plugin, PluginId, StartError};
use crate::state::GuestState;
use crate::wasi;

/// Runs transform plugins. Create one per process and share it (`Arc`): it owns the
/// wasmtime `Engine` (with the pooling allocator), the linker, the on-disk compile cache
/// and a thread that advances the engine's epoch every [`HostConfig::epoch_tick`].
///
/// ```no_run
/// # use civicbus_transform_host::{HostConfig, TransformHost};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let host = TransformHost::new(HostConfig::default())?;
/// let plugin = host.load("redact", "plugins/redact.wasm".as_ref(), "{}")?;
/// # let event = civicbus_core::CloudEvent::new("1", "/s", "t")?;
/// // from a blocking context (tokio::task::spawn_blocking):
/// let outputs = plugin.transform(&event)?;
/// # Ok(()) }
/// ```
pub struct TransformHost {
    inner: Arc<HostInner>,
}

/// What plugins share with the host (they may outlive the `TransformHost` value).
pub(crate) struct HostInner {
    pub(crate) engine: Engine,
    linker: Linker<GuestState>,
    pub(crate) config: HostConfig,
    /// Epoch ticks from the start of a call to its deadline.
    pub(crate) deadline_ticks: u64,
    cache: Option<Cache>,
    /// Every plugin's idle instances, for eviction when the pool is full.
    idle_pools: Mutex<Vec<Weak<IdlePool>>>,
    _ticker: Ticker,
}

impl HostInner {
    /// Make a plugin's idle instances evictable by others.
    pub(crate) fn register_idle_pool(&self, pool: &Arc<IdlePool>) {
        let mut pools = self
            .idle_pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        pools.retain(|p| p.strong_count() > 0);
        pools.push(Arc::downgrade(pool));
    }

    /// Drop one idle instance (of the plugin with the most), freeing its pooling slot.
    /// `false` if no plugin has an idle instance.
    pub(crate) fn evict_one_idle(&self) -> bool {
        let pools: Vec<Arc<IdlePool>> = self
            .idle_pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let victim = pools
            .iter()
            .max_by_key(|p| p.lock().unwrap_or_else(PoisonError::into_inner).len())
            .and_then(|p| p.lock().unwrap_or_else(PoisonError::into_inner).pop());
        victim.is_some()
    }
}

impl TransformHost {
    /// Create the engine, the linker and the ticker thread.
    pub fn new(config: HostConfig) -> Result<TransformHost, HostError> {
        validate(&config)?;
        let cache = match &config.cache_dir {
            Some(dir) => Some(open_cache(dir)?),
            None => None,
        };
        let engine = Engine::new(&engine_config(&config, cache.clone()))
            .map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasi::add_to_linker(&mut linker).map_err(|e| HostError::Linker(format!("{e:#}")))?;
        Transform::add_to_linker::<GuestState, HasSelf<GuestState>>(&mut linker, |s| s)
            .map_err(|e| HostError::Linker(format!("{e:#}")))?;
        let ticker = Ticker::start(engine.clone(), config.epoch_tick).map_err(HostError::Ticker)?;
        let tick = config.epoch_tick.as_nanos().max(1);
        let deadline_ticks =
            u64::try_from(config.limits.timeout.as_nanos().div_ceil(tick)).unwrap_or(u64::MAX);
        Ok(TransformHost {
            inner: Arc::new(HostInner {
                engine,
                linker,
                deadline_ticks: deadline_ticks.saturating_add(1),
                config,
                cache,
                idle_pools: Mutex::new(Vec::new()),
                _ticker: ticker,
            }),
        })
    }

    /// The configuration the host was created with.
    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// Load a plugin from a file: read it, then as [`TransformHost::load_bytes`].
    pub fn load(
        &self,
        name: &str,
        path: &Path,
        plugin_config: &str,
    ) -> Result<Arc<Plugin>, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            name: name.to_string(),
            path: path.to_path_buf(),
            source,
        })?;
        self.load_inner(name, &bytes, Some(path), plugin_config)
    }

    /// Load a plugin from its bytes: digest them (sha256), compile (or take the compiled
    /// code from the disk cache), refuse imports outside the [allowlist](crate::allowlist)
    /// naming the first one, check the component against the limits, link it, and
    /// instantiate it once calling `init(plugin_config)`, so that a broken plugin or a
    /// configuration it refuses fails here rather than on the first event. That instance
    /// is kept for the first call.
    pub fn load_bytes(
        &self,
        name: &str,
        bytes: &[u8],
        plugin_config: &str,
    ) -> Result<Arc<Plugin>, LoadError> {
        self.load_inner(name, bytes, None, plugin_config)
    }

    fn load_inner(
        &self,
        name: &str,
        bytes: &[u8],
        path: Option<&Path>,
        plugin_config: &str,
    ) -> Result<Arc<Plugin>, LoadError> {
        let inner = &self.inner;
        let digest = digest(bytes);
        let hits_before = inner.cache.as_ref().map_or(0, Cache::cache_hits);
        let started = Instant::now();
        let component = Component::new(&inner.engine, bytes).map_err(|e| LoadError::Compile {
            name: name.to_string(),
            reason: format!("{e:#}"),
        })?;
        let compile_time = started.elapsed();
        let from_cache = inner
            .cache
            .as_ref()
            .is_some_and(|c| c.cache_hits() > hits_before);
        allowlist::check(&inner.engine, &component).map_err(|import| {
            LoadError::ForbiddenImport {
                name: name.to_string(),
                import,
            }
        })?;
        check_resources(&component, &inner.config.limits).map_err(|reason| {
            LoadError::Resources {
                name: name.to_string(),
                reason,
            }
        })?;
        let pre = inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link {
                name: name.to_string(),
                reason: format!("{e:#}"),
            })?;
        let pre = TransformPre::new(pre).map_err(|e| LoadError::Contract {
            name: name.to_string(),
            reason: format!("{e:#}"),
        })?;
        let id = PluginId {
            name: name.into(),
            digest: digest.into(),
        };
        let plugin = Plugin::new(
            id,
            path.map(Path::to_path_buf),
            plugin_config.to_string(),
            pre,
            Arc::clone(&self.inner),
            compile_time,
            from_cache,
        );
        plugin.warm_up().map_err(|e| match e {
            StartError::Init(message) => LoadError::Init {
                name: name.to_string(),
                message,
            },
            StartError::Failed(error) => LoadError::Start {
                name: name.to_string(),
                error,
            },
        })?;
        tracing::info!(
            plugin = name,
            digest = plugin.digest(),
            compile_ms = compile_time.as_secs_f64() * 1e3,
            from_cache,
            "transform plugin loaded"
        );
        Ok(Arc::new(plugin))
    }
}

/// `sha256:<hex>` of the component bytes: the plugin's identity in the audit.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn validate(config: &HostConfig) -> Result<(), HostError> {
    let limits = &config.limits;
    let problems = [
        (
            config.max_calls_per_instance == 0,
            "max_calls_per_instance must be at least 1",
        ),
        (
            config.instances == 0,
            "instances (pooling slots) must be at least 1",
        ),
        (
            config.epoch_tick.is_zero(),
            "epoch_tick must be longer than zero",
        ),
        (
            limits.timeout.is_zero(),
            "limits.timeout must be longer than zero",
        ),
        (
            limits.fuel == Some(0),
            "limits.fuel must be at least 1 (or None)",
        ),
        (
            limits.memory_bytes < 64 << 10,
            "limits.memory_bytes must be at least one 64 KiB page",
        ),
        (
            limits.stack_bytes < 16 << 10,
            "limits.stack_bytes must be at least 16 KiB",
        ),
        (
            limits.memories == 0 || limits.tables == 0 || limits.instances == 0,
            "limits.memories, limits.tables and limits.instances must be at least 1",
        ),
    ];
    match problems.iter().find(|(bad, _)| *bad) {
        Some((_, message)) => Err(HostError::Config((*message).to_string())),
        None => Ok(()),
    }
}

fn open_cache(dir: &Path) -> Result<Cache, HostError> {
    let cache_error = |reason: String| HostError::Cache {
        dir: dir.to_path_buf(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| cache_error(e.to_string()))?;
    let absolute = std::path::absolute(dir).map_err(|e| cache_error(e.to_string()))?;
    let mut cache_config = CacheConfig::new();
    cache_config.with_directory(absolute);
    Cache::new(cache_config).map_err(|e| cache_error(format!("{e:#}")))
}

fn engine_config(config: &HostConfig, cache: Option<Cache>) -> Config {
    let limits = &config.limits;
    let slots = config.instances;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(slots)
        .total_core_instances(slots.saturating_mul(limits.instances))
        .total_memories(slots.saturating_mul(limits.memories))
        .total_tables(slots.saturating_mul(limits.tables))
        .total_stacks(slots)
        .max_core_instances_per_component(limits.instances)
        .max_memories_per_component(limits.memories)
        .max_tables_per_component(limits.tables)
        .max_memories_per_module(limits.memories)
        .max_tables_per_module(limits.tables)
        .max_memory_size(limits.memory_bytes)
        .table_elements(limits.table_elements);
    let mut engine = Config::new();
    engine
        .wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(limits.fuel.is_some())
        .max_wasm_stack(limits.stack_bytes)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .cache(cache);
    engine
}

/// Refuse components that could never start under `limits`, with a reason.
fn check_resources(component: &Component, limits: &Limits) -> Result<(), String> {
    let Some(needs) = component.resources_required() else {
        return Ok(());
    };
    if needs.num_memories > limits.memories {
        return Err(format!(
            "it defines {} linear memories; the limit is {} (limits.memories)",
            needs.num_memories, limits.memories
        ));
    }
    if needs.num_tables > limits.tables {
        return Err(format!(
            "it defines {} tables; the limit is {} (limits.tables)",
            needs.num_tables, limits.tables
        ));
    }
    let initial_memory = needs
        .max_initial_memory_size
        .unwrap_or(0)
        .saturating_mul(65_536);
    if initial_memory > limits.memory_bytes as u64 {
        return Err(format!(
            "a memory starts at {initial_memory} bytes; the limit is {} (limits.memory_bytes)",
            limits.memory_bytes
        ));
    }
    let initial_table = needs.max_initial_table_size.unwrap_or(0);
    if initial_table > limits.table_elements as u64 {
        return Err(format!(
            "a table starts with {initial_table} elements; the limit is {} (limits.table_elements)",
            limits.table_elements
        ));
    }
    Ok(())
}

/// The thread advancing the engine's epoch; stopped (and joined) when dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine, tick: Duration) -> std::io::Result<Ticker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("civicbus-epoch".into())
            .spawn(move || {
                let mut next = Instant::now() + tick;
                while !flag.load(Ordering::Acquire) {
                    let now = Instant::now();
                    if now < next {
                        std::thread::park_timeout(next - now);
                        continue;
                    }
                    engine.increment_epoch();
                    next += tick;
                }
            })?;
        Ok(Ticker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
