//! Test guest `invalid-output`: returns a valid first event, then a second one broken in
//! the way the input's subject names: `json` (declared JSON, is not), `source` (empty),
//! `extension` (a name CloudEvents forbids), `text` (declared text, not UTF-8), `time`
//! (not RFC 3339), `tenant` (valid, but carries a `tenant` extension the host must strip).

wit_bindgen::generate!({ path: "../../../../wit", world: "transform" });

use civicbus::transform::types::{ErrorKind, Extension, ExtensionValue};
use exports::civicbus::transform::transformer::{Event, Guest, TransformError};

struct Invalid;

impl Guest for Invalid {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn transform(input: Event) -> Result<Vec<Event>, TransformError> {
        let mut good = input.clone();
        good.id = format!("{}-ok", input.id);
        let mut bad = input.clone();
        bad.id = format!("{}-bad", input.id);
        match input.subject.as_deref() {
            Some("json") => {
                bad.datacontenttype = Some("application/json".to_string());
                bad.data = Some(b"{not json".to_vec());
            }
            Some("source") => bad.source = String::new(),
            Some("extension") => bad.extensions.push(Extension {
                name: "Bad-Name".to_string(),
                value: ExtensionValue::Boolean(true),
            }),
            Some("text") => {
                bad.datacontenttype = Some("text/plain".to_string());
                bad.data = Some(vec![0xff, 0xfe, 0xfd]);
            }
            Some("time") => bad.time = Some("yesterday".to_string()),
            Some("tenant") => bad.extensions.push(Extension {
                name: "tenant".to_string(),
                value: ExtensionValue::Text("someone-else".to_string()),
            }),
            _ => {
                return Err(TransformError {
                    kind: ErrorKind::Terminal,
                    message: "invalid-output: say which output to break in the subject".into(),
                });
            }
        }
        Ok(vec![good, bad])
    }
}

export!(Invalid);
