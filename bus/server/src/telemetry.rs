//! Logging: human-readable by default, JSON with `--log-format json`; level from
//! `RUST_LOG` (default given by the command).

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. Later calls are ignored.
pub fn init(json: bool, default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{default_level},lapin=warn,amq_protocol=warn,sqlx=warn,hyper=warn,reqwest=warn"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
