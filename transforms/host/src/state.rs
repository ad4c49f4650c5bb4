//! What one plugin instance's store holds, and the `host` interface it implements.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::civicbus::transform::host;
use crate::bindings::civicbus::transform::types::{self, Level};
use crate::config::Limits;
use crate::limiter::GuestLimiter;
use crate::stdio::OutputTail;
use crate::wasi;

/// Longest log line kept, in bytes; longer lines are cut at a character boundary.
pub(crate) const LOG_LINE_BYTES: usize = 1024;

/// WASI resources (streams, pollables) one instance may hold at once.
const MAX_RESOURCES: usize = 1024;

/// Who a plugin is, for its log lines and errors.
#[derive(Debug, Clone)]
pub(crate) struct PluginId {
    pub(crate) name: Arc<str>,
    pub(crate) digest: Arc<str>,
}

/// The data of one plugin instance's `Store`.
pub(crate) struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: GuestLimiter,
    pub(crate) output: OutputTail,
    pub(crate) log: GuestLog,
    started: Instant,
}

impl GuestState {
    pub(crate) fn new(id: PluginId, limits: &Limits) -> Self {
        let output = OutputTail::default();
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        GuestState {
            wasi: wasi::context(&output),
            table,
            limiter: GuestLimiter::new(limits),
            output,
            log: GuestLog {
                id,
                max_lines: limits.max_log_lines,
                written: 0,
                dropped: 0,
            },
            started: Instant::now(),
        }
    }

    /// When this instance was created (the zero of its monotonic clock).
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// Reset the per-call state before a call.
    pub(crate) fn begin_call(&mut self) {
        self.limiter.reset();
        self.log.written = 0;
        self.log.dropped = 0;
        let _ = self.output.take();
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The plugin's log: rate-limited per call, lines truncated, attributed to the plugin.
pub(crate) struct GuestLog {
    pub(crate) id: PluginId,
    max_lines: u32,
    written: u32,
    pub(crate) dropped: u32,
}

impl types::Host for GuestState {}

impl host::Host for GuestState {
    fn log(&mut self, level: Level, message: String) {
        let log = &mut self.log;
        if log.written >= log.max_lines {
            log.dropped = log.dropped.saturating_add(1);
            return;
        }
        log.written += 1;
        let line = truncate(&message, LOG_LINE_BYTES);
        let (plugin, digest) = (&*log.id.name, &*log.id.digest);
        match level {
            Level::Trace => tracing::trace!(target: "civicbus::plugin", plugin, digest, "{line}"),
            Level::Debug => tracing::debug!(target: "civicbus::plugin", plugin, digest, "{line}"),
            Level::Info => tracing::info!(target: "civicbus::plugin", plugin, digest, "{line}"),
            Level::Warn => tracing::warn!(target: "civicbus::plugin", plugin, digest, "{line}"),
            Level::Error => tracing::error!(target: "civicbus::plugin", plugin, digest, "{line}"),
        }
    }
}

/// `text` cut to at most `max` bytes at a character boundary, marked with `…` when cut.
pub(crate) fn truncate(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end]).into()
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncates_at_char_boundaries() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("ééé", 3), "é…");
    }
}
