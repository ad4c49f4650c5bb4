//! Test guest `loop-forever`: never returns from `transform` (a CPU runaway).
//! With subject `behave` it returns the input unchanged instead.

wit_bindgen::generate!({ path: "../../../../wit", world: "transform" });

use exports::civicbus::transform::transformer::{Event, Guest, TransformError};

struct Spin;

impl Guest for Spin {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn transform(input: Event) -> Result<Vec<Event>, TransformError> {
        if input.subject.as_deref() == Some("behave") {
            return Ok(vec![input]);
        }
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(input.id.len() as u64));
        }
    }
}

export!(Spin);
