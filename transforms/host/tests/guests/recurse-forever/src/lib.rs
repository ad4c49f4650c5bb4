//! Test guest `recurse-forever`: unbounded recursion (a stack overflow).
//! With subject `behave` it returns the input unchanged instead.

wit_bindgen::generate!({ path: "../../../../wit", world: "transform" });

use exports::civicbus::transform::transformer::{Event, Guest, TransformError};

struct Recurse;

#[inline(never)]
#[allow(unconditional_recursion)]
fn deeper(n: u64) -> u64 {
    let frame = std::hint::black_box([n; 16]);
    deeper(frame[3] + 1) + frame[7]
}

impl Guest for Recurse {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn transform(input: Event) -> Result<Vec<Event>, TransformError> {
        if input.subject.as_deref() == Some("behave") {
            return Ok(vec![input]);
        }
        let n = deeper(input.id.len() as u64);
        Err(TransformError {
            kind: civicbus::transform::types::ErrorKind::Terminal,
            message: format!("unreachable: {n}"),
        })
    }
}

export!(Recurse);
