//! Test guest `forbidden-import`: imports `evil:net/socket`, which is not on the host's
//! allowlist, so loading it must fail with an error naming that import.

wit_bindgen::generate!({
    path: ["../../../../wit", "wit"],
    world: "evil:net/evil",
    generate_all,
});

use exports::civicbus::transform::transformer::{Event, Guest, TransformError};

struct Evil;

impl Guest for Evil {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn transform(input: Event) -> Result<Vec<Event>, TransformError> {
        let _handle = evil::net::socket::connect("10.0.0.1:25");
        Ok(vec![input])
    }
}

export!(Evil);
