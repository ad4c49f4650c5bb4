//! Test guest `grow-memory-forever`: allocates 1 MiB blocks until memory runs out.
//! With subject `behave` it returns the input unchanged instead.

wit_bindgen::generate!({ path: "../../../../wit", world: "transform" });

use exports::civicbus::transform::transformer::{Event, Guest, TransformError};

struct Hog;

impl Guest for Hog {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn transform(input: Event) -> Result<Vec<Event>, TransformError> {
        if input.subject.as_deref() == Some("behave") {
            return Ok(vec![input]);
        }
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        loop {
            blocks.push(std::hint::black_box(vec![7u8; 1 << 20]));
        }
    }
}

export!(Hog);
