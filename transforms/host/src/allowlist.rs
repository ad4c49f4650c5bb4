//! The imports a plugin may have; any other import refuses the plugin at load.
//!
//! | interface | versions | what the plugin gets |
//! |---|---|---|
//! | `civicbus:transform/host`, `civicbus:transform/types` | 0.1.x | `log` (rate-limited, truncated) |
//! | `wasi:cli/environment` | 0.2.x | no variables, no arguments, no cwd |
//! | `wasi:cli/exit` | 0.2.x | ends the call as a trap |
//! | `wasi:cli/stdin` | 0.2.x | an empty stream |
//! | `wasi:cli/stdout`, `wasi:cli/stderr` | 0.2.x | kept (last 2 KiB per call) for trap messages and debug logs, never the host's streams |
//! | `wasi:cli/terminal-*` | 0.2.x | no terminals |
//! | `wasi:io/error`, `wasi:io/poll`, `wasi:io/streams` | 0.2.x | plumbing for the streams above |
//! | `wasi:clocks/wall-clock` | 0.2.x | fixed at 1970-01-01T00:00:00Z |
//! | `wasi:clocks/monotonic-clock` | 0.2.x | real, starting at 0 per instance; sleeping traps |
//! | `wasi:random/random`, `insecure`, `insecure-seed` | 0.2.x | deterministic bytes, the same for every instance |
//! | `wasi:filesystem/types`, `wasi:filesystem/preopens` | 0.2.x | no preopened directories: nothing to open |
//!
//! Everything else — `wasi:sockets/*`, `wasi:http/*`, any other package or version, a
//! bare function import — is refused by [`check`] with the import's name. The WASI entries
//! exist because a Rust guest built for `wasm32-wasip2` imports them through `std` even
//! when it never uses them.

use wasmtime::Engine;
use wasmtime::component::Component;

/// Allowed `namespace:package/interface` names and the version prefix each must carry.
const ALLOWED: &[(&str, &str)] = &[
    ("civicbus:transform/host", "0.1."),
    ("civicbus:transform/types", "0.1."),
    ("wasi:cli/environment", "0.2."),
    ("wasi:cli/exit", "0.2."),
    ("wasi:cli/stdin", "0.2."),
    ("wasi:cli/stdout", "0.2."),
    ("wasi:cli/stderr", "0.2."),
    ("wasi:cli/terminal-input", "0.2."),
    ("wasi:cli/terminal-output", "0.2."),
    ("wasi:cli/terminal-stdin", "0.2."),
    ("wasi:cli/terminal-stdout", "0.2."),
    ("wasi:cli/terminal-stderr", "0.2."),
    ("wasi:io/error", "0.2."),
    ("wasi:io/poll", "0.2."),
    ("wasi:io/streams", "0.2."),
    ("wasi:clocks/wall-clock", "0.2."),
    ("wasi:clocks/monotonic-clock", "0.2."),
    ("wasi:random/random", "0.2."),
    ("wasi:random/insecure", "0.2."),
    ("wasi:random/insecure-seed", "0.2."),
    ("wasi:filesystem/types", "0.2."),
    ("wasi:filesystem/preopens", "0.2."),
];

/// Whether one import name (`wasi:cli/stdout@0.2.6`) is on the allowlist.
pub fn is_allowed(import: &str) -> bool {
    let Some((interface, version)) = import.split_once('@') else {
        return false;
    };
    ALLOWED
        .iter()
        .any(|(name, prefix)| *name == interface && version.starts_with(prefix))
}

/// The first import of `component` that is not allowed, if any.
pub fn check(engine: &Engine, component: &Component) -> Result<(), String> {
    let ty = component.component_type();
    for (name, _item) in ty.imports(engine) {
        if !is_allowed(name) {
            return Err(name.to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_allowed;

    #[test]
    fn names_and_versions() {
        let cases = [
            ("civicbus:transform/host@0.1.0", true),
            ("civicbus:transform/types@0.1.0", true),
            ("civicbus:transform/host@0.2.0", false),
            ("civicbus:transform/transformer@0.1.0", false),
            ("wasi:cli/environment@0.2.0", true),
            ("wasi:cli/stdout@0.2.6", true),
            ("wasi:io/streams@0.2.3", true),
            ("wasi:random/random@0.2.9", true),
            ("wasi:filesystem/preopens@0.2.0", true),
            ("wasi:cli/stdout@0.3.0", false),
            ("wasi:sockets/tcp@0.2.0", false),
            ("wasi:sockets/instance-network@0.2.0", false),
            ("wasi:http/outgoing-handler@0.2.0", false),
            ("evil:net/socket", false),
            ("wasi:cli/stdout", false),
            ("log", false),
        ];
        for (name, allowed) in cases {
            assert_eq!(is_allowed(name), allowed, "{name}");
        }
    }
}
