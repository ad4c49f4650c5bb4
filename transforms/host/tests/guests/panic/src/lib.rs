//! Test guest `panic`: panics in `transform` (Rust's panic aborts the guest with an
//! `unreachable` trap after printing the message to stderr).
//! With subject `behave` it returns the input unchanged instead.

wit_bindgen::generate!({ path: "../../../../wit", world: "transform" });

use exports::civicbus::transform::transformer::{Event, Guest, TransformError};

struct Panic;

impl Guest for Panic {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn transform(input: Event) -> Result<Vec<Event>, TransformError> {
        if input.subject.as_deref() == Some("behave") {
            return Ok(vec![input]);
        }
        panic!("boom: cannot handle {}", input.id);
    }
}

export!(Panic);
