//! Helpers for testing plugins natively with `cargo test` (not compiled for wasm32).
//!
//! ## Golden files
//!
//! [`check_golden`] runs a plugin over a folder of cases and compares what it returns with
//! what is expected. The folder holds, for each case `<case>`:
//!
//! * `input-<case>.json`: the input, a whole structured-mode CloudEvent;
//! * `expected-<case>.json`: the outputs, a JSON array of structured-mode CloudEvents
//!   (`[]` when the plugin filters the event out); or instead
//! * `error-<case>.json`: the expected failure, `{"kind": "terminal" | "retryable",
//!   "message": "…"}`;
//! * optionally `config-<case>.json`: the plugin configuration for this case, else
//!   `config.json` of the folder, else `{}`.
//!
//! The files are plain CloudEvents, so the civicbus host can run the same cases against
//! the built `.wasm`. With `CIVICBUS_GOLDEN_BLESS=1` in the environment, missing or
//! differing expected files are (re)written from what the plugin returns instead of
//! failing: review the diff before committing.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::log::Level;
use crate::{Error, ErrorKind, Event, Transform};

/// The log lines the plugin wrote on this thread since the last call (native builds keep
/// them instead of sending them to a host).
pub fn take_logs() -> Vec<(Level, String)> {
    crate::log::sink::take()
}

/// Environment variable that makes [`check_golden`] write expected files.
pub const BLESS_ENV: &str = "CIVICBUS_GOLDEN_BLESS";

/// One golden case, as found by [`golden_cases`].
#[derive(Debug, Clone)]
pub struct GoldenCase {
    /// The case name (`<case>` in `input-<case>.json`).
    pub name: String,
    /// The input event file.
    pub input: PathBuf,
    /// The configuration text for this case.
    pub config: String,
    /// `expected-<case>.json`.
    pub expected: PathBuf,
    /// `error-<case>.json`.
    pub error: PathBuf,
}

/// The cases in a golden folder, sorted by name.
pub fn golden_cases(dir: impl AsRef<Path>) -> std::io::Result<Vec<GoldenCase>> {
    let dir = dir.as_ref();
    let default_config = match fs::read_to_string(dir.join("config.json")) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "{}".to_string(),
        Err(e) => return Err(e),
    };
    let mut cases = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        let Some(name) = file
            .strip_prefix("input-")
            .and_then(|f| f.strip_suffix(".json"))
        else {
            continue;
        };
        let config_path = dir.join(format!("config-{name}.json"));
        let config = if config_path.exists() {
            fs::read_to_string(&config_path)?
        } else {
            default_config.clone()
        };
        cases.push(GoldenCase {
            name: name.to_string(),
            input: path.clone(),
            config,
            expected: dir.join(format!("expected-{name}.json")),
            error: dir.join(format!("error-{name}.json")),
        });
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(cases)
}

/// Run plugin `T` over every case in `dir` (see the [module docs](self)) the way the host
/// would ([`crate::run`]), and panic listing every case whose result differs from the
/// expected file. Returns the number of cases checked; panics if there are none.
pub fn check_golden<T: Transform>(dir: impl AsRef<Path>) -> usize {
    let bless = std::env::var_os(BLESS_ENV).is_some_and(|v| v != "0" && !v.is_empty());
    check_golden_with::<T>(dir.as_ref(), bless)
}

fn check_golden_with<T: Transform>(dir: &Path, bless: bool) -> usize {
    let cases = golden_cases(dir)
        .unwrap_or_else(|e| panic!("reading golden cases in {}: {e}", dir.display()));
    assert!(!cases.is_empty(), "no input-*.json in {}", dir.display());
    let mut failures = String::new();
    for case in &cases {
        if let Err(why) = check_case::<T>(case, bless) {
            let _ = writeln!(
                failures,
                "--- case {} ({}):\n{why}",
                case.name,
                dir.display()
            );
        }
    }
    assert!(failures.is_empty(), "golden cases failed:\n{failures}");
    cases.len()
}

fn check_case<T: Transform>(case: &GoldenCase, bless: bool) -> Result<(), String> {
    let text =
        fs::read_to_string(&case.input).map_err(|e| format!("{}: {e}", case.input.display()))?;
    let input =
        Event::from_structured_str(&text).map_err(|e| format!("{}: {e}", case.input.display()))?;
    let plugin =
        T::init(&case.config).map_err(|e| format!("init refused the configuration: {e}"))?;
    let actual = match crate::run(&plugin, input) {
        Ok(outs) => Outcome::Events(Value::Array(
            outs.iter().map(Event::to_structured_json).collect(),
        )),
        Err(e) => Outcome::Error(e),
    };
    let expected = if case.expected.exists() {
        Some(Outcome::Events(read_json(&case.expected)?))
    } else if case.error.exists() {
        let v = read_json(&case.error)?;
        let kind = match v["kind"].as_str() {
            Some("terminal") => ErrorKind::Terminal,
            Some("retryable") => ErrorKind::Retryable,
            _ => {
                return Err(format!(
                    "{}: kind must be terminal or retryable",
                    case.error.display()
                ));
            }
        };
        let message = v["message"].as_str().unwrap_or_default();
        Some(Outcome::Error(Error::new(kind, message)))
    } else {
        None
    };
    if expected.as_ref().is_some_and(|e| e.matches(&actual)) {
        return Ok(());
    }
    if bless {
        let (write, remove) = match &actual {
            Outcome::Events(_) => (&case.expected, &case.error),
            Outcome::Error(_) => (&case.error, &case.expected),
        };
        let _ = fs::remove_file(remove);
        let mut text = pretty(&actual.to_json());
        text.push('\n');
        fs::write(write, text).map_err(|e| format!("{}: {e}", write.display()))?;
        eprintln!("blessed {}", write.display());
        return Ok(());
    }
    let shown = pretty(&actual.to_json());
    Err(match expected {
        None => format!(
            "no {} nor {}; the plugin returned:\n{shown}",
            case.expected.display(),
            case.error.display()
        ),
        Some(e) => format!(
            "expected:\n{}\nthe plugin returned:\n{shown}",
            pretty(&e.to_json())
        ),
    })
}

/// Pretty JSON with each event's attributes in the usual order (`specversion`, `id`,
/// `source`, `type`, …, extensions, then `data`), so golden files read like CloudEvents.
pub fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(&Ordered(value)).unwrap_or_default()
}

struct Ordered<'a>(&'a Value);

impl serde::Serialize for Ordered<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        const FIRST: [&str; 8] = [
            "specversion",
            "id",
            "source",
            "type",
            "subject",
            "time",
            "datacontenttype",
            "dataschema",
        ];
        const LAST: [&str; 2] = ["data", "data_base64"];
        match self.0 {
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Ordered(item))?;
                }
                seq.end()
            }
            Value::Object(obj) if obj.contains_key("specversion") => {
                let mut map = serializer.serialize_map(Some(obj.len()))?;
                let middle = obj
                    .keys()
                    .filter(|k| !FIRST.contains(&k.as_str()) && !LAST.contains(&k.as_str()));
                for key in FIRST
                    .iter()
                    .copied()
                    .chain(middle.map(String::as_str))
                    .chain(LAST)
                {
                    if let Some(v) = obj.get(key) {
                        map.serialize_entry(key, v)?;
                    }
                }
                map.end()
            }
            other => other.serialize(serializer),
        }
    }
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

enum Outcome {
    Events(Value),
    Error(Error),
}

impl Outcome {
    fn matches(&self, actual: &Outcome) -> bool {
        match (self, actual) {
            (Outcome::Events(e), Outcome::Events(a)) => json_eq(e, a),
            (Outcome::Error(e), Outcome::Error(a)) => e == a,
            _ => false,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Outcome::Events(v) => v.clone(),
            Outcome::Error(e) => json!({ "kind": e.kind().as_str(), "message": e.message() }),
        }
    }
}

/// JSON equality where numbers compare as numbers (`1.0` equals `1`, and floats within a
/// relative 1e-12, so a reparse that is one ulp off does not fail a case).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                return x == y;
            }
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
                _ => x == y,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl Transform for Echo {
        fn init(config: &str) -> Result<Self, String> {
            crate::parse_config::<Value>(config).map(|_| Echo)
        }
        fn transform(&self, input: Event) -> Result<Vec<Event>, Error> {
            crate::log::info!("echo {}", input.id);
            if input.ty == "fail" {
                return Err(Error::terminal("nope"));
            }
            Ok(vec![
                Event::derive(&input, "echoed").json(&input.data_value()?)?,
            ])
        }
    }

    fn write(dir: &Path, name: &str, v: &Value) {
        fs::write(
            dir.join(name),
            serde_json::to_string_pretty(v).expect("json"),
        )
        .expect("write");
    }

    #[test]
    fn golden_cases_pass_fail_and_bless() {
        let dir = std::env::temp_dir().join(format!("civicbus-sdk-golden-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("mkdir");
        let input = json!({"specversion": "1.0", "id": "e1", "source": "/s", "type": "t", "data": {"x": 1.5}});
        write(&dir, "input-a.json", &input);
        let out = json!([{
            "specversion": "1.0", "id": "e1:echoed", "source": "/s", "type": "echoed",
            "datacontenttype": "application/json", "causationid": "e1", "data": {"x": 1.5}
        }]);
        write(&dir, "expected-a.json", &out);
        let mut failing = input.clone();
        failing["type"] = json!("fail");
        write(&dir, "input-b.json", &failing);
        write(
            &dir,
            "error-b.json",
            &json!({"kind": "terminal", "message": "nope"}),
        );
        assert_eq!(check_golden_with::<Echo>(&dir, false), 2);
        let logs = take_logs();
        assert!(
            logs.contains(&(Level::Info, "echo e1".to_string())),
            "{logs:?}"
        );

        write(
            &dir,
            "error-b.json",
            &json!({"kind": "retryable", "message": "nope"}),
        );
        let caught = std::panic::catch_unwind(|| check_golden_with::<Echo>(&dir, false));
        let msg = *caught
            .expect_err("must fail")
            .downcast::<String>()
            .expect("string panic");
        assert!(msg.contains("case b") && !msg.contains("case a"), "{msg}");

        assert_eq!(check_golden_with::<Echo>(&dir, true), 2);
        let blessed: Value =
            serde_json::from_str(&fs::read_to_string(dir.join("error-b.json")).expect("read"))
                .expect("json");
        assert_eq!(blessed, json!({"kind": "terminal", "message": "nope"}));
        fs::remove_file(dir.join("expected-a.json")).expect("rm");
        assert_eq!(check_golden_with::<Echo>(&dir, true), 2);
        assert!(json_eq(
            &read_json(&dir.join("expected-a.json")).expect("blessed"),
            &out
        ));
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn pretty_puts_attributes_first_and_data_last() {
        let ev = json!([{"data": {"b": 1, "a": 2}, "type": "t", "id": "1", "specversion": "1.0", "source": "/s", "causationid": "0"}]);
        let text = pretty(&ev);
        let order: Vec<usize> = [
            "specversion",
            "\"id\"",
            "source",
            "\"type\"",
            "causationid",
            "data",
        ]
        .iter()
        .map(|k| text.find(k).expect(k))
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert_eq!(serde_json::from_str::<Value>(&text).expect("json"), ev);
    }

    #[test]
    fn numbers_compare_as_numbers() {
        assert!(json_eq(&json!({"a": [1.0, 2]}), &json!({"a": [1, 2.0]})));
        let reparsed = -78.5139_f64 - 1e-14;
        assert!(json_eq(&json!(reparsed), &json!(-78.5139)));
        assert!(!json_eq(&json!(-78.5139), &json!(-78.514)));
        assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
    }
}
