//! The schema registry in the running bus: built from `[schemas]`, enforced at ingest,
//! reloaded on SIGHUP and when a catalogue file changes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use civicbus_schemas::{Enforcer, LoadErrors, SchemaRegistry, UnknownTypePolicy};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, UnknownTypes};

fn policy(u: UnknownTypes) -> UnknownTypePolicy {
    match u {
        UnknownTypes::Reject => UnknownTypePolicy::Reject,
        UnknownTypes::AcceptUnvalidated => UnknownTypePolicy::AcceptUnvalidated,
    }
}

/// The enforcer `config` asks for (`None` if `schemas.enabled = false`), with the
/// catalogue loaded and compiled.
pub fn enforcer(config: &Config) -> Result<Option<Arc<Enforcer>>, LoadErrors> {
    let s = &config.schemas;
    if !s.enabled {
        return Ok(None);
    }
    let registry = Arc::new(SchemaRegistry::load_with(s.builtin, s.dirs.clone())?);
    let tenants: BTreeMap<String, UnknownTypePolicy> = config
        .tenants
        .iter()
        .filter_map(|t| t.unknown_types.map(|u| (t.id.clone(), policy(u))))
        .collect();
    Ok(Some(Arc::new(Enforcer::new(
        registry,
        policy(s.unknown_types),
        tenants,
    ))))
}

/// Reload `registry` on SIGHUP, and every `interval` if a catalogue file changed
/// (`interval` zero: SIGHUP only), until `shutdown`. A catalogue that fails to load is
/// logged with every error and the one in force stays.
pub fn spawn_reloader(
    registry: Arc<SchemaRegistry>,
    interval: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; schema reloads only on file changes");
                None
            }
        };
        let mut seen = registry.fingerprint();
        let tick = if interval.is_zero() {
            Duration::from_secs(3600)
        } else {
            interval
        };
        loop {
            let why = tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(()) = async {
                    match hangup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                } => "SIGHUP",
                _ = tokio::time::sleep(tick) => {
                    if interval.is_zero() {
                        continue;
                    }
                    let now = registry.fingerprint();
                    if now == seen {
                        continue;
                    }
                    seen = now;
                    "a catalogue file changed"
                }
            };
            match registry.reload() {
                Ok(n) => tracing::info!(schemas = n, reason = why, "schema catalogue reloaded"),
                Err(e) => {
                    for err in &e.0 {
                        tracing::error!(problem = %err, "schema catalogue not reloaded");
                    }
                    tracing::error!(
                        reason = why,
                        "the schema catalogue has errors; the previous one stays in force"
                    );
                }
            }
        }
    })
}
