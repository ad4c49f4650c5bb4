//! Log lines through the host (`host.log` in the WIT): civicbus writes them to its own log,
//! attributed to the plugin, rate-limited and truncated.
//!
//! Use the macros, which take `format!` arguments:
//!
//! ```
//! use civicbus_transform_sdk::log;
//! let permit = "DYS-BP-2026-0142";
//! log::info!("declaring permit {permit}");
//! log::warn!("no Link on {}; building the URL from config", permit);
//! ```
//!
//! Do not log personal information (names, contact details) or whole payloads: the log is
//! read more widely than the events. Outside WebAssembly (native tests) the lines go to
//! standard error and are kept for [`crate::testing::take_logs`].

use std::fmt;

/// Log levels, as in the WIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation worth a line.
    Info,
    /// Something odd that did not stop the transform.
    Warn,
    /// Something failed.
    Error,
}

impl Level {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The most the SDK hands to the host in one line (bytes); longer messages are cut at a
/// character boundary and end with `…`. The host applies its own limit as well.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Write `message` at `level`.
pub fn log(level: Level, message: &str) {
    let message = truncate(message, MAX_MESSAGE_BYTES);
    sink::write(level, &message);
}

fn truncate(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…", &s[..end]))
}

#[cfg(target_arch = "wasm32")]
mod sink {
    use super::Level;
    use crate::bindings::civicbus::transform::{host, types};

    pub(super) fn write(level: Level, message: &str) {
        let level = match level {
            Level::Trace => types::Level::Trace,
            Level::Debug => types::Level::Debug,
            Level::Info => types::Level::Info,
            Level::Warn => types::Level::Warn,
            Level::Error => types::Level::Error,
        };
        host::log(level, message);
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod sink {
    use super::Level;
    use std::cell::RefCell;

    thread_local! {
        static CAPTURED: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn write(level: Level, message: &str) {
        eprintln!("[plugin {level}] {message}");
        CAPTURED.with(|c| c.borrow_mut().push((level, message.to_string())));
    }

    pub(crate) fn take() -> Vec<(Level, String)> {
        CAPTURED.with(|c| std::mem::take(&mut *c.borrow_mut()))
    }
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_at {
    ($level:expr, $($arg:tt)+) => {
        $crate::log::log($level, &::std::format!($($arg)+))
    };
}

/// Log at trace level, `format!`-style.
#[doc(hidden)]
#[macro_export]
macro_rules! __log_trace {
    ($($arg:tt)+) => { $crate::__log_at!($crate::log::Level::Trace, $($arg)+) };
}

/// Log at debug level, `format!`-style.
#[doc(hidden)]
#[macro_export]
macro_rules! __log_debug {
    ($($arg:tt)+) => { $crate::__log_at!($crate::log::Level::Debug, $($arg)+) };
}

/// Log at info level, `format!`-style.
#[doc(hidden)]
#[macro_export]
macro_rules! __log_info {
    ($($arg:tt)+) => { $crate::__log_at!($crate::log::Level::Info, $($arg)+) };
}

/// Log at warn level, `format!`-style.
#[doc(hidden)]
#[macro_export]
macro_rules! __log_warn {
    ($($arg:tt)+) => { $crate::__log_at!($crate::log::Level::Warn, $($arg)+) };
}

/// Log at error level, `format!`-style.
#[doc(hidden)]
#[macro_export]
macro_rules! __log_error {
    ($($arg:tt)+) => { $crate::__log_at!($crate::log::Level::Error, $($arg)+) };
}

#[doc(inline)]
pub use crate::__log_debug as debug;
#[doc(inline)]
pub use crate::__log_error as error;
#[doc(inline)]
pub use crate::__log_info as info;
#[doc(inline)]
pub use crate::__log_trace as trace;
#[doc(inline)]
pub use crate::__log_warn as warn;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_at_a_char_boundary() {
        let s = "é".repeat(3000);
        let t = truncate(&s, MAX_MESSAGE_BYTES);
        assert!(t.len() <= MAX_MESSAGE_BYTES);
        assert!(t.ends_with('…'));
        assert_eq!(truncate("short", 10), "short");
    }
}
