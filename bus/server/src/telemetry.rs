//! Logging: human-readable by default, JSON with `--log-format json`; level from
//! `RUST_LOG` (default given by the command). lapin is held to errors: its warning about
//! returned messages prints the message, payload included, and the broker crate already
//! reports returns as typed errors.

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. Later calls are ignored.
pub fn init(json: bool, default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{default_level},lapin=error,amq_protocol=warn,sqlx=warn,hyper=warn,reqwest=warn"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
