//! Test guest `echo`: returns the input with a new id (`<id>-echo`), a `causationid`
//! naming the input and a `seq` extension counting the calls this instance has served
//! (so tests can see instance reuse). Subject `terminal` / `retryable` makes it fail
//! with that error kind; a config containing `"fail"` makes `init` refuse.

use std::sync::atomic::{AtomicI64, Ordering};

wit_bindgen::generate!({ path: "../../../../wit", world: "transform" });

use civicbus::transform::host::log;
use civicbus::transform::types::{ErrorKind, Extension, ExtensionValue, Level};
use exports::civicbus::transform::transformer::{Event, Guest, TransformError};

static CALLS: AtomicI64 = AtomicI64::new(0);

struct Echo;

impl Guest for Echo {
    fn init(config: String) -> Result<(), String> {
        if config.contains("\"fail\"") {
            return Err("echo: the configuration asks init to fail".to_string());
        }
        log(Level::Info, &format!("echo ready with config {config}"));
        Ok(())
    }

    fn transform(input: Event) -> Result<Vec<Event>, TransformError> {
        let seq = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        match input.subject.as_deref() {
            Some("terminal") => {
                return Err(TransformError {
                    kind: ErrorKind::Terminal,
                    message: "echo: this event can never be echoed".to_string(),
                });
            }
            Some("retryable") => {
                return Err(TransformError {
                    kind: ErrorKind::Retryable,
                    message: "echo: try again later".to_string(),
                });
            }
            _ => {}
        }
        let mut out = input.clone();
        out.id = format!("{}-echo", input.id);
        out.extensions
            .retain(|e| e.name != "causationid" && e.name != "seq");
        out.extensions.push(Extension {
            name: "causationid".to_string(),
            value: ExtensionValue::Text(input.id),
        });
        out.extensions.push(Extension {
            name: "seq".to_string(),
            value: ExtensionValue::Integer(seq),
        });
        Ok(vec![out])
    }
}

export!(Echo);
