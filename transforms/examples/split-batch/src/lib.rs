//! A batch event → one event per item.
//!
//! The batch is the event's data when it is a JSON array, else the array in the member
//! `itemsField` of the data object (default `items`; `features` for an Esri featureSet).
//! Each item becomes the data of one output event of type `type` (default: the input's
//! type without a trailing `.batch`), with id `<input id>:<type>:<position>` so that a
//! redelivered batch gives the same ids. An empty batch gives zero events.
//!
//! `inherit` names members of the batch object copied into every item that lacks them
//! (for an Esri featureSet: the layer name and spatial reference, which the features do not
//! repeat). `subjectPointer`, a JSON pointer into the item, gives each output its subject
//! (the business key); without it the outputs have none.
//!
//! Configuration (all optional):
//!
//! ```json
//! {
//!   "type": "ca.haliburton.gis.asset.edited",
//!   "itemsField": "features",
//!   "inherit": ["layerName", "spatialReference"],
//!   "subjectPointer": "/attributes/globalid",
//!   "dataschema": "https://civicbus.haliburton.ca/schemas/ca.haliburton.gis.asset.edited/v1",
//!   "maxItems": 1000
//! }
//! ```

use civicbus_transform_sdk::{Error, Event, Transform, bail, log, parse_config};
use serde::Deserialize;
use serde_json::Value;

/// The plugin configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// Output type (default: the input's without `.batch`).
    #[serde(default, rename = "type")]
    pub ty: Option<String>,
    /// Member holding the items when the data is an object.
    #[serde(default = "default_items_field")]
    pub items_field: String,
    /// Members of the batch object copied into each item.
    #[serde(default)]
    pub inherit: Vec<String>,
    /// JSON pointer into an item giving the output's subject.
    #[serde(default)]
    pub subject_pointer: Option<String>,
    /// `dataschema` of the outputs.
    #[serde(default)]
    pub dataschema: Option<String>,
    /// The most items one batch may hold (a larger batch is refused, terminal).
    #[serde(default = "default_max_items")]
    pub max_items: usize,
}

fn default_items_field() -> String {
    "items".into()
}
fn default_max_items() -> usize {
    1000
}

/// The plugin.
#[derive(Debug)]
pub struct SplitBatch {
    config: Config,
}

impl SplitBatch {
    /// The plugin with a parsed configuration.
    pub fn new(config: Config) -> Result<Self, String> {
        if let Some(p) = &config.subject_pointer
            && !(p.is_empty() || p.starts_with('/'))
        {
            return Err(format!(
                "configuration: subjectPointer `{p}` is not a JSON pointer (e.g. /attributes/globalid)"
            ));
        }
        if config.max_items == 0 {
            return Err("configuration: maxItems must be at least 1".into());
        }
        Ok(SplitBatch { config })
    }

    /// The mapping: one event per item.
    pub fn split(&self, input: &Event) -> Result<Vec<Event>, Error> {
        let out_type = match (&self.config.ty, input.ty.strip_suffix(".batch")) {
            (Some(t), _) => t.clone(),
            (None, Some(t)) => t.to_string(),
            (None, None) => bail!(
                "{} is not a .batch type and the configuration names no output type",
                input.ty
            ),
        };
        let data = input.data_value()?;
        let (items, batch) = match data {
            Value::Array(items) => (items, None),
            Value::Object(mut obj) => match obj.remove(&self.config.items_field) {
                Some(Value::Array(items)) => (items, Some(obj)),
                Some(other) => bail!(
                    "data.{} is not an array but {}",
                    self.config.items_field,
                    kind(&other)
                ),
                None => bail!("the data has no {} array", self.config.items_field),
            },
            other => bail!(
                "the data is {}, not a batch (an array, or an object with an {} array)",
                kind(&other),
                self.config.items_field
            ),
        };
        if items.len() > self.config.max_items {
            bail!(
                "the batch has {} items, more than maxItems {}",
                items.len(),
                self.config.max_items
            );
        }
        if items.is_empty() {
            log::debug!("empty batch {}", input.id);
        }
        let mut outputs = Vec::with_capacity(items.len());
        for (i, mut item) in items.into_iter().enumerate() {
            if let Some(batch) = &batch
                && !self.config.inherit.is_empty()
            {
                let Value::Object(fields) = &mut item else {
                    bail!(
                        "item {i} is {}, not an object to inherit {} into",
                        kind(&item),
                        self.config.inherit.join(", ")
                    );
                };
                for name in &self.config.inherit {
                    if let Some(v) = batch.get(name)
                        && !fields.contains_key(name)
                    {
                        fields.insert(name.clone(), v.clone());
                    }
                }
            }
            let mut out = Event::derive(input, out_type.clone()).index(i);
            out = match &self.config.subject_pointer {
                Some(p) => match item.pointer(p) {
                    Some(Value::String(s)) if !s.is_empty() => out.subject(s.clone()),
                    Some(Value::Number(n)) => out.subject(n.to_string()),
                    _ => bail!("item {i} has no subject at {p}"),
                },
                None => out.no_subject(),
            };
            if let Some(schema) = &self.config.dataschema {
                out = out.dataschema(schema.clone());
            }
            outputs.push(out.json(&item)?);
        }
        Ok(outputs)
    }
}

impl Transform for SplitBatch {
    fn init(config: &str) -> Result<Self, String> {
        SplitBatch::new(parse_config(config)?)
    }

    fn transform(&self, input: Event) -> Result<Vec<Event>, Error> {
        self.split(&input)
    }
}

civicbus_transform_sdk::export!(SplitBatch);

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn max_items_is_enforced() {
        let plugin = SplitBatch::init(r#"{"maxItems": 2}"#).expect("init");
        let input = Event::new("b1", "/s", "x.batch")
            .with_json(&json!([1, 2, 3]))
            .expect("json");
        let err = plugin.split(&input).expect_err("too many");
        assert!(err.message().contains("more than maxItems 2"), "{err}");
        let two = Event::new("b2", "/s", "x.batch")
            .with_json(&json!([1, 2]))
            .expect("json");
        let out = plugin.split(&two).expect("ok");
        assert_eq!(
            out.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["b2:x:0", "b2:x:1"]
        );
    }

    #[test]
    fn output_type_must_be_known() {
        let plugin = SplitBatch::init("{}").expect("init");
        let input = Event::new("b1", "/s", "x.y")
            .with_json(&json!([]))
            .expect("json");
        assert!(
            plugin
                .split(&input)
                .expect_err("no type")
                .message()
                .contains("not a .batch type")
        );
        assert!(SplitBatch::init(r#"{"subjectPointer": "attributes"}"#).is_err());
    }
}
