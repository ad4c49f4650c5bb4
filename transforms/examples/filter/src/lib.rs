//! Keep the events that match the configuration, drop the others (zero events).
//!
//! A kept event is passed on unchanged (same id, attributes and data): a filter does not
//! make a new event. Conditions (all must hold; at least one is required):
//!
//! * `municipalities`: the event's municipality is one of these tenant ids. The
//!   municipality is the data's `municipality`, else BLDS `Jurisdiction`, else a GeoJSON
//!   Feature's `properties.municipality`, else the event's `tenant` extension. So county
//!   events shared with every partner (a county address update, say) can be narrowed to
//!   the addresses of one municipality.
//! * `data`: JSON pointers into the data and the values allowed there (compared as text),
//!   e.g. `{"/PermitTypeMapped": ["Building", "Septic"]}`. A missing value does not match.
//!
//! An event whose municipality cannot be found is dropped, unless `onUnknownMunicipality`
//! is `keep` (pass it on) or `error` (dead-letter it).
//!
//! ```json
//! { "municipalities": ["minden-hills"], "data": { "/PermitTypeMapped": ["Building"] } }
//! ```

use std::collections::BTreeMap;

use civicbus_transform_sdk::{Error, Event, Transform, log, parse_config};
use serde::Deserialize;
use serde_json::Value;

const TENANTS: [&str; 5] = [
    "county",
    "algonquin-highlands",
    "dysart",
    "highlands-east",
    "minden-hills",
];

/// What to do with an event whose municipality cannot be found.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnUnknown {
    /// Drop it (zero events).
    #[default]
    Drop,
    /// Pass it on.
    Keep,
    /// Fail it (terminal).
    Error,
}

/// The plugin configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// Municipalities whose events are kept.
    #[serde(default)]
    pub municipalities: Vec<String>,
    /// Allowed values by JSON pointer into the data.
    #[serde(default)]
    pub data: BTreeMap<String, Vec<String>>,
    /// What to do when the municipality cannot be found.
    #[serde(default)]
    pub on_unknown_municipality: OnUnknown,
}

/// The plugin.
#[derive(Debug)]
pub struct Filter {
    config: Config,
}

impl Filter {
    /// The plugin with a parsed configuration.
    pub fn new(config: Config) -> Result<Self, String> {
        if config.municipalities.is_empty() && config.data.is_empty() {
            return Err("configuration: give municipalities or data conditions; a filter without conditions would pass everything".into());
        }
        for m in &config.municipalities {
            if !TENANTS.contains(&m.as_str()) {
                return Err(format!(
                    "configuration: municipalities: `{m}` is not a tenant id"
                ));
            }
        }
        for p in config.data.keys() {
            if !p.starts_with('/') {
                return Err(format!(
                    "configuration: data: `{p}` is not a JSON pointer (e.g. /PermitTypeMapped)"
                ));
            }
        }
        Ok(Filter { config })
    }

    /// Whether the event is kept.
    pub fn keep(&self, input: &Event) -> Result<bool, Error> {
        // Only JSON data can be looked into; other data has no municipality or values.
        let data = if input.is_json() && input.data.is_some() {
            Some(input.data_value()?)
        } else {
            None
        };
        if !self.config.municipalities.is_empty() {
            match municipality(input, data.as_ref()) {
                Some(m) if self.config.municipalities.contains(&m) => {}
                Some(m) => {
                    log::debug!("{} is for {m}: dropped", input.id);
                    return Ok(false);
                }
                None => match self.config.on_unknown_municipality {
                    OnUnknown::Drop => {
                        log::debug!("{} names no municipality: dropped", input.id);
                        return Ok(false);
                    }
                    OnUnknown::Keep => {}
                    OnUnknown::Error => {
                        return Err(Error::terminal(
                            "the event names no municipality (data municipality, Jurisdiction, properties.municipality or tenant)",
                        ));
                    }
                },
            }
        }
        for (pointer, allowed) in &self.config.data {
            let value = data
                .as_ref()
                .and_then(|d| d.pointer(pointer))
                .and_then(as_text);
            if !value.is_some_and(|v| allowed.contains(&v)) {
                log::debug!("{}: {pointer} is not one of {allowed:?}: dropped", input.id);
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl Transform for Filter {
    fn init(config: &str) -> Result<Self, String> {
        Filter::new(parse_config(config)?)
    }

    fn transform(&self, input: Event) -> Result<Vec<Event>, Error> {
        Ok(if self.keep(&input)? {
            vec![input]
        } else {
            Vec::new()
        })
    }
}

civicbus_transform_sdk::export!(Filter);

fn municipality(input: &Event, data: Option<&Value>) -> Option<String> {
    let from_data = data.and_then(|d| {
        ["/municipality", "/Jurisdiction", "/properties/municipality"]
            .iter()
            .find_map(|p| d.pointer(p).and_then(Value::as_str))
    });
    from_data.or_else(|| input.tenant()).map(str::to_string)
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_a_condition() {
        assert!(
            Filter::init("{}")
                .expect_err("none")
                .contains("without conditions")
        );
        assert!(Filter::init(r#"{"municipalities": ["haliburton"]}"#).is_err());
        assert!(Filter::init(r#"{"data": {"PermitTypeMapped": ["Building"]}}"#).is_err());
        assert!(
            Filter::init(r#"{"municipalities": ["dysart"], "onUnknownMunicipality": "keep"}"#)
                .is_ok()
        );
    }

    #[test]
    fn unknown_municipality_policies() {
        let ev = Event::new("1", "/s", "t")
            .with_json(&serde_json::json!({"x": 1}))
            .expect("json");
        let keep =
            Filter::init(r#"{"municipalities": ["dysart"], "onUnknownMunicipality": "keep"}"#)
                .expect("init");
        assert_eq!(keep.transform(ev.clone()).expect("ok"), vec![ev.clone()]);
        let error =
            Filter::init(r#"{"municipalities": ["dysart"], "onUnknownMunicipality": "error"}"#)
                .expect("init");
        assert!(
            error
                .transform(ev.clone())
                .expect_err("error")
                .is_terminal()
        );
        let tenant = ev.with_extension("tenant", "dysart");
        assert_eq!(keep.transform(tenant.clone()).expect("ok"), vec![tenant]);
    }
}
