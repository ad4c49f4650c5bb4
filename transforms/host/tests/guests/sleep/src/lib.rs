//! Test guest `sleep`: sleeps for a minute in `transform` and reports the wall clock
//! (a plugin must not be able to hold a host thread by sleeping).
//! With subject `behave` it returns the input unchanged instead.

wit_bindgen::generate!({ path: "../../../../wit", world: "transform" });

use exports::civicbus::transform::transformer::{Event, Guest, TransformError};

struct Sleep;

impl Guest for Sleep {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn transform(input: Event) -> Result<Vec<Event>, TransformError> {
        if input.subject.as_deref() == Some("clock") {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(u64::MAX);
            let mut ev = input.clone();
            ev.data = Some(format!("{{\"wall_clock_secs\":{now}}}").into_bytes());
            ev.datacontenttype = Some("application/json".to_string());
            return Ok(vec![ev]);
        }
        if input.subject.as_deref() == Some("behave") {
            return Ok(vec![input]);
        }
        std::thread::sleep(std::time::Duration::from_secs(60));
        Ok(vec![input])
    }
}

export!(Sleep);
