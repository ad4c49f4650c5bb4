//! Transform plugins in the running bus: the sandbox host, the plugins of `[[plugins]]`
//! (unpinned ones hot-reloaded when their file changes), and the chain each subscription
//! names, as the router's [`TransformChain`] port.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use civicbus_core::CloudEvent;
use civicbus_core::ports::{TransformChain, TransformFailure};
use civicbus_transform_host::{Plugin, PluginSet, TransformError, TransformHost};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, TransformRef};

/// The loaded plugins.
pub struct Plugins {
    /// Plugins pinned to a digest: never reloaded.
    pinned: BTreeMap<String, Arc<Plugin>>,
    /// The others, reloaded when their file changes.
    live: Arc<PluginSet>,
}

impl std::fmt::Debug for Plugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugins")
            .field("pinned", &self.pinned.keys().collect::<Vec<_>>())
            .field("live", &self.live.names())
            .finish()
    }
}

impl Plugins {
    /// The current version of plugin `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.pinned
            .get(name)
            .cloned()
            .or_else(|| self.live.get(name))
    }
}

/// The plugins the configuration names, loaded (compiled, checked, initialised), or
/// `None` when no subscription uses a transform. Every plugin that cannot be loaded is
/// reported.
pub fn load(config: &Config) -> anyhow::Result<Option<Arc<Plugins>>> {
    if config.subscriptions.iter().all(|s| s.transforms.is_empty()) {
        return Ok(None);
    }
    let host = Arc::new(
        TransformHost::new(config.transforms.host_config())
            .map_err(|e| anyhow::anyhow!("cannot start the WebAssembly sandbox: {e}"))?,
    );
    // A digest pinned on the plugin, or by a subscription (`name@sha256:…`).
    let mut pins: BTreeMap<&str, &str> = BTreeMap::new();
    for p in &config.plugins {
        if let Some(d) = &p.digest {
            pins.insert(p.name.as_str(), d.as_str());
        }
    }
    let refs: Vec<TransformRef<'_>> = config
        .subscriptions
        .iter()
        .flat_map(|s| s.transforms.iter().map(|t| TransformRef::parse(t)))
        .collect();
    for r in &refs {
        if let TransformRef::Named {
            name,
            pin: Some(pin),
        } = r
        {
            pins.insert(name, pin);
        }
    }
    let live = Arc::new(PluginSet::new(host.clone()));
    let mut pinned = BTreeMap::new();
    let mut problems = Vec::new();
    let used: std::collections::BTreeSet<&str> = refs.iter().map(TransformRef::plugin).collect();
    for p in config
        .plugins
        .iter()
        .filter(|p| used.contains(p.name.as_str()))
    {
        let json = p.config_json();
        match pins.get(p.name.as_str()) {
            Some(pin) => match host.load(&p.name, &p.path, &json) {
                Ok(plugin) if plugin.digest() == *pin => {
                    pinned.insert(p.name.clone(), plugin);
                }
                Ok(plugin) => problems.push(format!(
                    "plugin `{}`: {} has digest {}, but {pin} is pinned; rebuild it or update the pin",
                    p.name,
                    p.path.display(),
                    plugin.digest()
                )),
                Err(e) => problems.push(format!("plugin `{}`: {e}", p.name)),
            },
            None => {
                if let Err(e) = live.add(&p.name, &p.path, &json) {
                    problems.push(format!("plugin `{}`: {e}", p.name));
                }
            }
        }
    }
    // Plugins named by path: loaded under their path, without configuration.
    let by_path: std::collections::BTreeSet<&str> = refs
        .iter()
        .filter_map(|r| match r {
            TransformRef::Path(path) => Some(*path),
            TransformRef::Named { .. } => None,
        })
        .collect();
    for path in by_path {
        if let Err(e) = live.add(path, std::path::Path::new(path), "{}") {
            problems.push(format!("plugin {path}: {e}"));
        }
    }
    if !problems.is_empty() {
        anyhow::bail!(
            "transform plugins cannot be loaded:\n  {}",
            problems.join("\n  ")
        );
    }
    for (name, plugin) in pinned.iter() {
        tracing::info!(plugin = %name, digest = %plugin.digest(), "transform plugin loaded (pinned)");
    }
    for name in live.names() {
        if let Some(plugin) = live.get(&name) {
            tracing::info!(plugin = %name, digest = %plugin.digest(), "transform plugin loaded");
        }
    }
    Ok(Some(Arc::new(Plugins { pinned, live })))
}

/// The chain of plugins one subscription names, resolved at each call (so a reloaded
/// plugin serves the next call; calls in flight finish on the version they started on).
#[derive(Debug)]
pub struct HostChain {
    plugins: Arc<Plugins>,
    names: Vec<String>,
}

impl HostChain {
    /// The chain `transforms` (names, `@sha256:` pins allowed) over `plugins`.
    pub fn new(plugins: Arc<Plugins>, transforms: &[String]) -> Self {
        HostChain {
            plugins,
            names: transforms
                .iter()
                .map(|t| TransformRef::parse(t).plugin().to_string())
                .collect(),
        }
    }
}

fn label(plugin: &Plugin) -> String {
    format!("{}@{}", plugin.name(), plugin.digest())
}

impl TransformChain for HostChain {
    fn plugins(&self) -> Vec<String> {
        self.names
            .iter()
            .map(|n| {
                self.plugins
                    .get(n)
                    .map_or_else(|| format!("{n}@(not loaded)"), |p| label(&p))
            })
            .collect()
    }

    fn apply(&self, event: &CloudEvent) -> Result<Vec<CloudEvent>, TransformFailure> {
        let mut current = vec![event.clone()];
        for name in &self.names {
            let Some(plugin) = self.plugins.get(name) else {
                return Err(TransformFailure {
                    retryable: true,
                    plugin: name.clone(),
                    kind: "not-loaded".into(),
                    message: format!("plugin `{name}` is not loaded"),
                });
            };
            let mut next = Vec::new();
            for ev in &current {
                let out = plugin.transform(ev).map_err(|e| failure(&plugin, &e))?;
                next.extend(out);
            }
            current = next;
        }
        Ok(current)
    }
}

fn failure(plugin: &Plugin, e: &TransformError) -> TransformFailure {
    TransformFailure {
        retryable: e.is_retryable(),
        plugin: label(plugin),
        kind: e.label().replace('_', "-"),
        message: e.to_string(),
    }
}

/// Reload changed plugin files every `interval` until `shutdown` (zero: never). A plugin
/// that fails to load keeps its previous version serving, and the log says why.
pub fn spawn_reloader(
    plugins: Arc<Plugins>,
    interval: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if interval.is_zero() {
            return;
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(interval) => {}
            }
            let live = plugins.live.clone();
            let results = tokio::task::spawn_blocking(move || live.reload_changed())
                .await
                .unwrap_or_default();
            for (name, result) in results {
                match result {
                    Ok(digest) => {
                        tracing::info!(plugin = %name, digest = %digest, "transform plugin reloaded")
                    }
                    Err(e) => {
                        tracing::error!(plugin = %name, error = %e, "transform plugin not reloaded; the previous version keeps serving")
                    }
                }
            }
        }
    })
}
