//! The WebAssembly transform host: runs civicbus transform plugins (components of the
//! `civicbus:transform@0.1.0` world, `transforms/wit/transform.wit`) in a sandbox.
//!
//! - [`TransformHost`]: one per process; one wasmtime `Engine` with the pooling
//!   allocator, a disk compile cache, an epoch ticker thread.
//! - [`Plugin`]: a loaded component; `transform` maps one [`CloudEvent`](civicbus_core::CloudEvent)
//!   to zero or more, on a reused instance, under [`Limits`].
//! - [`PluginSet`]: named plugins from files, hot-reloaded when a file changes.
//! - [`allowlist`]: the only imports a plugin may have (no ambient authority).
//!
//! Architecture invariant: this is the only crate that names wasmtime. It knows nothing
//! of brokers, subscriptions or tenants beyond keeping the `tenant` extension away from
//! plugins.

pub mod allowlist;
mod bindings;
mod config;
mod convert;
mod error;
mod host;
mod limiter;
mod plugin;
mod plugin_set;
mod state;
mod stdio;
mod wasi;

pub use config::{HostConfig, Limits};
pub use error::{HostError, LoadError, TransformError, TrapKind};
pub use host::{TransformHost, digest};
pub use plugin::{Plugin, PluginStats};
pub use plugin_set::PluginSet;

#[cfg(test)]
mod tests {
    fn shareable<T: Send + Sync>() {}

    #[test]
    fn the_router_can_share_everything_across_threads() {
        shareable::<crate::TransformHost>();
        shareable::<crate::Plugin>();
        shareable::<crate::PluginSet>();
        shareable::<crate::TransformError>();
        shareable::<crate::LoadError>();
    }
}
