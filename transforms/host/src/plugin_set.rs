//! [`PluginSet`]: named plugins loaded from files, hot-reloaded when a file changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use crate::error::LoadError;
use crate::host::TransformHost;
use crate::plugin::Plugin;

/// Named plugins, each loaded from a file with its configuration.
///
/// [`PluginSet::reload_changed`] (call it periodically, from a blocking context) reloads
/// the plugins whose file changed (modification time or length). A reload that succeeds
/// swaps the plugin for new calls, while calls already running finish on the old version
/// (they hold its `Arc`). A reload that fails keeps the old version running and reports
/// why; the same broken file is not retried until it changes again.
pub struct PluginSet {
    host: Arc<TransformHost>,
    entries: RwLock<BTreeMap<String, Entry>>,
    reloading: Mutex<()>,
}

struct Entry {
    path: PathBuf,
    config: String,
    plugin: Arc<Plugin>,
    /// The file's state when last looked at (loaded or not); `None` if it could not be read.
    seen: Option<Stamp>,
}

/// What identifies a version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

impl PluginSet {
    /// An empty set loading through `host`.
    pub fn new(host: Arc<TransformHost>) -> Self {
        PluginSet {
            host,
            entries: RwLock::new(BTreeMap::new()),
            reloading: Mutex::new(()),
        }
    }

    /// Load `path` as plugin `name` with `config` (replacing a plugin of that name). On
    /// error nothing changes.
    pub fn add(&self, name: &str, path: &Path, config: &str) -> Result<(), LoadError> {
        // Stamp before reading: a write racing the load shows up as a change next time.
        let seen = stamp(path);
        let plugin = self.host.load(name, path, config)?;
        let entry = Entry {
            path: path.to_path_buf(),
            config: config.to_string(),
            plugin,
            seen,
        };
        self.write().insert(name.to_string(), entry);
        Ok(())
    }

    /// The current version of plugin `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.read().get(name).map(|e| Arc::clone(&e.plugin))
    }

    /// Stop serving plugin `name` (running calls finish); returns its last version.
    pub fn remove(&self, name: &str) -> Option<Arc<Plugin>> {
        self.write().remove(name).map(|e| e.plugin)
    }

    /// Names of the plugins in the set, sorted.
    pub fn names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Reload every plugin whose file changed since it was last looked at. Returns one
    /// entry per attempted reload: the new digest, or why the old version is still
    /// serving. A file rewritten with the same bytes is not reported.
    pub fn reload_changed(&self) -> Vec<(String, Result<String, LoadError>)> {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let changed: Vec<(String, PathBuf, String, Option<Stamp>, String)> = self
            .read()
            .iter()
            .filter_map(|(name, e)| {
                let now = stamp(&e.path);
                (now != e.seen).then(|| {
                    let digest = e.plugin.digest().to_string();
                    (name.clone(), e.path.clone(), e.config.clone(), now, digest)
                })
            })
            .collect();
        let mut results = Vec::new();
        for (name, path, config, now, old_digest) in changed {
            let loaded = self.host.load(&name, &path, &config);
            let mut entries = self.write();
            let Some(entry) = entries.get_mut(&name).filter(|e| e.path == path) else {
                continue; // removed or re-added meanwhile
            };
            entry.seen = now;
            match loaded {
                Ok(plugin) if plugin.digest() == old_digest => {}
                Ok(plugin) => {
                    let digest = plugin.digest().to_string();
                    tracing::info!(plugin = %name, old_digest, new_digest = %digest, "transform plugin reloaded");
                    entry.plugin = plugin;
                    results.push((name, Ok(digest)));
                }
                Err(error) => {
                    tracing::warn!(plugin = %name, running_digest = %old_digest, "transform plugin reload failed, keeping the running version: {error}");
                    results.push((name, Err(error)));
                }
            }
        }
        results
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.entries.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.entries.write().unwrap_or_else(PoisonError::into_inner)
    }
}
