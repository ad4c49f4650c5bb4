//! Test guest `wasi-sockets`: opens a TCP connection with `std::net`, which makes the
//! component import `wasi:sockets/*`; the host must refuse it at load.

wit_bindgen::generate!({ path: "../../../../wit", world: "transform" });

use civicbus::transform::types::ErrorKind;
use exports::civicbus::transform::transformer::{Event, Guest, TransformError};

struct Net;

impl Guest for Net {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn transform(input: Event) -> Result<Vec<Event>, TransformError> {
        match std::net::TcpStream::connect("127.0.0.1:9") {
            Ok(_) => Ok(vec![input]),
            Err(e) => Err(TransformError {
                kind: ErrorKind::Retryable,
                message: e.to_string(),
            }),
        }
    }
}

export!(Net);
