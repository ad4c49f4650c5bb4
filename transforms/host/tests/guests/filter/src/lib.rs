//! Test guest `filter`: drops every event (returns zero outputs).

wit_bindgen::generate!({ path: "../../../../wit", world: "transform" });

use exports::civicbus::transform::transformer::{Event, Guest, TransformError};

struct Filter;

impl Guest for Filter {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn transform(_input: Event) -> Result<Vec<Event>, TransformError> {
        Ok(Vec::new())
    }
}

export!(Filter);
