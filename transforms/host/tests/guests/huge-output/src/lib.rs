//! Test guest `huge-output`: the input's data is `{"count": N, "bytes": M}`; returns N
//! binary events of M bytes each.

wit_bindgen::generate!({ path: "../../../../wit", world: "transform" });

use exports::civicbus::transform::transformer::{Event, Guest, TransformError};

struct Flood;

/// The unsigned integer after `"key":` in a flat JSON object (no JSON library needed).
fn number(text: &str, key: &str) -> usize {
    let pat = format!("\"{key}\":");
    text.find(&pat)
        .map(|at| {
            text[at + pat.len()..]
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0)
}

impl Guest for Flood {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn transform(input: Event) -> Result<Vec<Event>, TransformError> {
        let text = String::from_utf8(input.data.clone().unwrap_or_default()).unwrap_or_default();
        let (count, bytes) = (number(&text, "count"), number(&text, "bytes"));
        Ok((0..count)
            .map(|i| {
                let mut ev = input.clone();
                ev.id = format!("{}-{i}", input.id);
                ev.datacontenttype = Some("application/octet-stream".to_string());
                ev.data = Some(vec![b'x'; bytes]);
                ev
            })
            .collect())
    }
}

export!(Flood);
