//! Test guest `split`: the input's data is a JSON array; returns one event per element,
//! with ids `<id>-0`, `<id>-1`, … Anything else is a terminal error.

wit_bindgen::generate!({ path: "../../../../wit", world: "transform" });

use civicbus::transform::types::ErrorKind;
use exports::civicbus::transform::transformer::{Event, Guest, TransformError};

struct Split;

/// Split a JSON array into its top-level elements' source text (no JSON library, to keep
/// the guest tiny: strings, nesting and escapes are tracked by hand).
fn elements(text: &str) -> Option<Vec<&str>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut out = Vec::new();
    let (mut depth, mut in_str, mut escaped, mut start) = (0i32, false, false, 0usize);
    for (i, c) in inner.char_indices() {
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '[' | '{' => depth += 1,
            ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(inner[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = inner[start..].trim();
    if !last.is_empty() {
        out.push(last);
    }
    Some(out)
}

impl Guest for Split {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn transform(input: Event) -> Result<Vec<Event>, TransformError> {
        let terminal = |message: &str| TransformError {
            kind: ErrorKind::Terminal,
            message: message.to_string(),
        };
        let data = input.data.as_deref().ok_or_else(|| terminal("split: no data"))?;
        let text = std::str::from_utf8(data).map_err(|_| terminal("split: data is not UTF-8"))?;
        let parts = elements(text).ok_or_else(|| terminal("split: data is not a JSON array"))?;
        Ok(parts
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                let mut ev = input.clone();
                ev.id = format!("{}-{i}", input.id);
                ev.datacontenttype = Some("application/json".to_string());
                ev.data = Some(part.as_bytes().to_vec());
                ev
            })
            .collect())
    }
}

export!(Split);
