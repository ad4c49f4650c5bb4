//! Errors of the host: creating it, loading a plugin, and one call into a plugin.

use std::fmt;
use std::path::PathBuf;

/// The host could not be created.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The configuration is inconsistent.
    #[error("invalid transform host configuration: {0}")]
    Config(String),
    /// wasmtime refused the engine settings (e.g. the pooling allocator could not reserve
    /// its address space).
    #[error("cannot create the WebAssembly engine: {0}; lower `instances` or the memory limits")]
    Engine(String),
    /// The compile cache directory cannot be used.
    #[error(
        "cannot use {dir} as the plugin compile cache: {reason}; fix its permissions or set another cache_dir"
    )]
    Cache {
        /// The directory.
        dir: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The host functions could not be registered with the linker.
    #[error("cannot prepare the plugin linker: {0}")]
    Linker(String),
    /// The epoch ticker thread could not be started.
    #[error("cannot start the epoch ticker thread: {0}")]
    Ticker(#[source] std::io::Error),
}

/// A plugin could not be loaded. Every message names the plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("plugin `{name}`: cannot read {path}: {source}")]
    Read {
        /// Plugin name.
        name: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a WebAssembly component wasmtime can compile.
    #[error(
        "plugin `{name}` is not a valid WebAssembly component: {reason}; build it for wasm32-wasip2 against civicbus:transform@0.1.0"
    )]
    Compile {
        /// Plugin name.
        name: String,
        /// wasmtime's reason.
        reason: String,
    },
    /// The component imports something outside the allowlist.
    #[error(
        "plugin `{name}` imports `{import}`, which transform plugins may not use (allowed: civicbus:transform/host and /types @0.1, and the WASI 0.2 cli, io, clocks, random and filesystem interfaces a Rust std guest links); remove the code that needs it"
    )]
    ForbiddenImport {
        /// Plugin name.
        name: String,
        /// The import, as the component names it (e.g. `wasi:sockets/tcp@0.2.6`).
        import: String,
    },
    /// The component needs more memories, tables or memory than the limits allow.
    #[error("plugin `{name}` exceeds the host's limits: {reason}")]
    Resources {
        /// Plugin name.
        name: String,
        /// Which limit and by how much.
        reason: String,
    },
    /// An allowed import could not be satisfied (e.g. a newer WASI function the host does
    /// not provide).
    #[error("plugin `{name}` cannot be linked: {reason}")]
    Link {
        /// Plugin name.
        name: String,
        /// wasmtime's reason.
        reason: String,
    },
    /// The component does not export `civicbus:transform/transformer@0.1.0`.
    #[error(
        "plugin `{name}` does not implement the civicbus:transform@0.1.0 `transform` world: {reason}"
    )]
    Contract {
        /// Plugin name.
        name: String,
        /// wasmtime's reason.
        reason: String,
    },
    /// `init` returned an error for this configuration.
    #[error("plugin `{name}` refused its configuration: {message}")]
    Init {
        /// Plugin name.
        name: String,
        /// The plugin's message.
        message: String,
    },
    /// Instantiating the plugin or running `init` failed (trap, limit, no free slot).
    #[error("plugin `{name}` failed to start: {error}")]
    Start {
        /// Plugin name.
        name: String,
        /// What happened.
        error: TransformError,
    },
}

/// Why a plugin was stopped by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapKind {
    /// The call used all its fuel ([`Limits::fuel`](crate::Limits::fuel)).
    OutOfFuel,
    /// The call ran past its deadline ([`Limits::timeout`](crate::Limits::timeout)).
    Timeout,
    /// The plugin asked for more memory than [`Limits::memory_bytes`](crate::Limits::memory_bytes)
    /// and aborted.
    OutOfMemory,
    /// The WebAssembly stack overflowed ([`Limits::stack_bytes`](crate::Limits::stack_bytes)).
    StackOverflow,
    /// The plugin panicked or aborted (an `unreachable` trap).
    Panic,
    /// Any other trap: out-of-bounds access, a forbidden host call (sleeping), `exit`, …
    Other,
}

impl fmt::Display for TrapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrapKind::OutOfFuel => "out of fuel",
            TrapKind::Timeout => "timeout",
            TrapKind::OutOfMemory => "out of memory",
            TrapKind::StackOverflow => "stack overflow",
            TrapKind::Panic => "panic",
            TrapKind::Other => "trap",
        })
    }
}

/// One `transform` call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// The plugin said the event can never be transformed: dead-letter it.
    #[error("plugin rejected the event: {0}")]
    Terminal(String),
    /// The plugin said a retry could succeed, or the host had no capacity for the call.
    #[error("transform failed, retry later: {0}")]
    Retryable(String),
    /// The host stopped the plugin. The instance is discarded; the next call gets a fresh
    /// one.
    #[error("plugin stopped ({kind}): {message}")]
    Trap {
        /// Why.
        kind: TrapKind,
        /// Details, with what the plugin wrote to stderr for a panic.
        message: String,
    },
    /// The plugin returned too many events or too many bytes.
    #[error("plugin output over the limit: {0}")]
    OutputLimit(String),
    /// An output is not a valid CloudEvent; the message names the output index and field,
    /// e.g. `output 1: source: ...`.
    #[error("plugin returned an invalid event: {0}")]
    InvalidOutput(String),
}

impl TransformError {
    /// Whether retrying the same event could succeed: only for [`TransformError::Retryable`].
    /// Traps, limits and invalid output are properties of the event and the plugin, so
    /// they are dead-lettered.
    pub fn is_retryable(&self) -> bool {
        matches!(self, TransformError::Retryable(_))
    }

    /// The trap kind, when the host stopped the plugin.
    pub fn trap_kind(&self) -> Option<TrapKind> {
        match self {
            TransformError::Trap { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// A stable low-cardinality label for metrics: `terminal`, `retryable`, `out_of_fuel`,
    /// `timeout`, `out_of_memory`, `stack_overflow`, `panic`, `trap`, `output_limit`,
    /// `invalid_output`.
    pub fn label(&self) -> &'static str {
        match self {
            TransformError::Terminal(_) => "terminal",
            TransformError::Retryable(_) => "retryable",
            TransformError::Trap { kind, .. } => match kind {
                TrapKind::OutOfFuel => "out_of_fuel",
                TrapKind::Timeout => "timeout",
                TrapKind::OutOfMemory => "out_of_memory",
                TrapKind::StackOverflow => "stack_overflow",
                TrapKind::Panic => "panic",
                TrapKind::Other => "trap",
            },
            TransformError::OutputLimit(_) => "output_limit",
            TransformError::InvalidOutput(_) => "invalid_output",
        }
    }
}
