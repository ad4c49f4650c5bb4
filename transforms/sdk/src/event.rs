//! The CloudEvent a plugin receives and returns, with typed access to its data and a
//! builder for output events that keeps the lineage of the input.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::Error;

/// Media type the SDK sets on JSON data.
pub const JSON: &str = "application/json";

/// The extensions an output made with [`Event::derive`] copies from its input: the W3C
/// trace context (so the transform shows up in the same trace) and the correlation id.
pub const PROPAGATED_EXTENSIONS: [&str; 3] = ["traceparent", "tracestate", "correlationid"];

/// The extension naming the event an output was made from (set to the input's `id`).
pub const CAUSATION_EXTENSION: &str = "causationid";

/// CloudEvents context attributes; these cannot be extension names.
const CORE_ATTRIBUTES: [&str; 8] = [
    "id",
    "source",
    "specversion",
    "type",
    "datacontenttype",
    "dataschema",
    "subject",
    "time",
];

/// The value of a CloudEvents extension attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExtensionValue {
    /// A boolean.
    Boolean(bool),
    /// An integer; CloudEvents allows the 32-bit signed range.
    Integer(i64),
    /// A string (also URI and timestamp values).
    Text(String),
}

impl ExtensionValue {
    /// The string, if this is a text value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            ExtensionValue::Text(s) => Some(s),
            _ => None,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            ExtensionValue::Boolean(b) => Value::Bool(*b),
            ExtensionValue::Integer(i) => Value::from(*i),
            ExtensionValue::Text(s) => Value::String(s.clone()),
        }
    }
}

/// The canonical string form (`true`, `42`, the text itself).
impl fmt::Display for ExtensionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtensionValue::Boolean(b) => write!(f, "{b}"),
            ExtensionValue::Integer(i) => write!(f, "{i}"),
            ExtensionValue::Text(s) => f.write_str(s),
        }
    }
}

impl From<&str> for ExtensionValue {
    fn from(s: &str) -> Self {
        ExtensionValue::Text(s.to_string())
    }
}
impl From<String> for ExtensionValue {
    fn from(s: String) -> Self {
        ExtensionValue::Text(s)
    }
}
impl From<&String> for ExtensionValue {
    fn from(s: &String) -> Self {
        ExtensionValue::Text(s.clone())
    }
}
impl From<bool> for ExtensionValue {
    fn from(b: bool) -> Self {
        ExtensionValue::Boolean(b)
    }
}
impl From<i32> for ExtensionValue {
    fn from(i: i32) -> Self {
        ExtensionValue::Integer(i64::from(i))
    }
}
impl From<i64> for ExtensionValue {
    fn from(i: i64) -> Self {
        ExtensionValue::Integer(i)
    }
}

/// A CloudEvent (specversion 1.0) as it crosses the plugin boundary.
///
/// `data` holds the payload bytes as they travel in binary mode; `datacontenttype` says
/// how to read them (JSON when absent). Read JSON data with [`Event::data_json`]; make
/// output events with [`Event::derive`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `id`: unique within `source`.
    pub id: String,
    /// `source`: the producing context, e.g. `/dysart/permitting`.
    pub source: String,
    /// `type`, e.g. `ca.haliburton.permitting.permit.issued`.
    pub ty: String,
    /// `subject`: the business key (permit number, roll number, work order).
    pub subject: Option<String>,
    /// `time`: when the occurrence happened (RFC 3339).
    pub time: Option<String>,
    /// `datacontenttype`; JSON when absent.
    pub datacontenttype: Option<String>,
    /// `dataschema`: the URI (`$id`) of the schema of `data`.
    pub dataschema: Option<String>,
    /// Extension attributes by name (`traceparent`, `tenant`, `causationid`, `dataref`, …).
    pub extensions: BTreeMap<String, ExtensionValue>,
    /// The payload bytes.
    pub data: Option<Vec<u8>>,
}

impl Event {
    /// An event with the required attributes and nothing else.
    pub fn new(id: impl Into<String>, source: impl Into<String>, ty: impl Into<String>) -> Self {
        Event {
            id: id.into(),
            source: source.into(),
            ty: ty.into(),
            subject: None,
            time: None,
            datacontenttype: None,
            dataschema: None,
            extensions: BTreeMap::new(),
            data: None,
        }
    }

    /// Start an output event of type `ty` made from `input`.
    ///
    /// Unless changed on the builder, the output:
    /// * has the id `<input id>:<ty>` (deterministic, so a redelivered input gives the same
    ///   ids and consumers can deduplicate; [`EventBuilder::index`] or
    ///   [`EventBuilder::id_suffix`] tell several outputs of one type apart);
    /// * keeps the input's `source`, `subject` and `time` (the time of the occurrence, never
    ///   the clock);
    /// * copies the [`PROPAGATED_EXTENSIONS`] (`traceparent`, `tracestate`,
    ///   `correlationid`) and sets `causationid` to the input's `id`;
    /// * gets `datacontenttype: application/json` from [`EventBuilder::json`].
    ///
    /// Other extensions of the input (`tenant`, `partitionkey`, `dataref`, …) are not
    /// copied: the bus stamps `tenant` itself, and the others describe the input.
    ///
    /// ```
    /// use civicbus_transform_sdk::{Event, ExtensionValue};
    /// # fn main() -> Result<(), civicbus_transform_sdk::Error> {
    /// let input = Event::new("dys-778", "/dysart/permitting", "ca.haliburton.permitting.permit.issued")
    ///     .with_subject("DYS-BP-2026-0142")
    ///     .with_time("2026-05-14T10:02:11-04:00")
    ///     .with_extension("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    ///
    /// let out = Event::derive(&input, "ca.haliburton.records.record.declared")
    ///     .subject("P10-DYS-BP-2026-0142")
    ///     .extension("dataref", "https://permits.dysartetal.ca/permit/DYS-BP-2026-0142")
    ///     .json(&serde_json::json!({ "PermitNum": "DYS-BP-2026-0142" }))?;
    ///
    /// assert_eq!(out.id, "dys-778:ca.haliburton.records.record.declared");
    /// assert_eq!(out.source, "/dysart/permitting");
    /// assert_eq!(out.time.as_deref(), Some("2026-05-14T10:02:11-04:00"));
    /// assert_eq!(out.causationid(), Some("dys-778"));
    /// assert_eq!(out.traceparent(), input.traceparent());
    /// assert_eq!(out.datacontenttype.as_deref(), Some("application/json"));
    /// # Ok(()) }
    /// ```
    pub fn derive(input: &Event, ty: impl Into<String>) -> EventBuilder {
        EventBuilder::new(input, ty.into())
    }

    /// This event with `subject` set.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// This event with `time` set.
    pub fn with_time(mut self, time: impl Into<String>) -> Self {
        self.time = Some(time.into());
        self
    }

    /// This event with an extension attribute set.
    pub fn with_extension(
        mut self,
        name: impl Into<String>,
        value: impl Into<ExtensionValue>,
    ) -> Self {
        self.extensions.insert(name.into(), value.into());
        self
    }

    /// This event with `value` serialised as JSON data (`datacontenttype` application/json).
    pub fn with_json<T: Serialize + ?Sized>(mut self, value: &T) -> Result<Self, Error> {
        self.data = Some(to_json_bytes(value)?);
        self.datacontenttype = Some(JSON.to_string());
        Ok(self)
    }

    /// Whether `data` is JSON: `datacontenttype` is absent, `application/json`,
    /// `text/json` or `…+json`.
    pub fn is_json(&self) -> bool {
        self.datacontenttype
            .as_deref()
            .is_none_or(is_json_media_type)
    }

    /// The JSON data deserialised into `T`.
    ///
    /// A terminal error when there is no data, the data is not JSON, or it does not fit
    /// `T`; the message names the field at fault (e.g. ``data.FeeItems[1].FeeAmount:
    /// invalid type: floating point `12.5`, expected a string``).
    ///
    /// ```
    /// use civicbus_transform_sdk::Event;
    /// #[derive(serde::Deserialize, Debug)]
    /// struct Permit {
    ///     #[serde(rename = "PermitNum")]
    ///     permit_num: String,
    /// }
    /// # fn main() -> Result<(), civicbus_transform_sdk::Error> {
    /// let ev = Event::new("1", "/dysart/permitting", "t")
    ///     .with_json(&serde_json::json!({ "PermitNum": "DYS-BP-2026-0142" }))?;
    /// assert_eq!(ev.data_json::<Permit>()?.permit_num, "DYS-BP-2026-0142");
    ///
    /// let bad = Event::new("2", "/dysart/permitting", "t").with_json(&serde_json::json!({ "PermitNum": 7 }))?;
    /// let err = bad.data_json::<Permit>().unwrap_err();
    /// assert!(err.is_terminal());
    /// assert!(err.message().starts_with("data.PermitNum: invalid type"), "{err}");
    /// # Ok(()) }
    /// ```
    pub fn data_json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let bytes = self.json_bytes()?;
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let value = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = without_position(&e.into_inner());
            if path == "." || path.is_empty() {
                Error::terminal(format!("data: {inner}"))
            } else {
                Error::terminal(format!("data.{path}: {inner}"))
            }
        })?;
        Ok(value)
    }

    /// The JSON data as a [`serde_json::Value`] (terminal error if absent or not JSON).
    pub fn data_value(&self) -> Result<Value, Error> {
        self.data_json()
    }

    /// The data as text (terminal error if absent or not UTF-8).
    pub fn data_text(&self) -> Result<&str, Error> {
        let bytes = self
            .data
            .as_deref()
            .ok_or_else(|| Error::terminal("the event has no data"))?;
        std::str::from_utf8(bytes).map_err(|_| Error::terminal("data is not UTF-8 text"))
    }

    fn json_bytes(&self) -> Result<&[u8], Error> {
        if !self.is_json() {
            return Err(Error::terminal(format!(
                "data is {}, not JSON",
                self.datacontenttype.as_deref().unwrap_or_default()
            )));
        }
        self.data
            .as_deref()
            .ok_or_else(|| Error::terminal("the event has no data"))
    }

    /// An extension attribute.
    pub fn extension(&self, name: &str) -> Option<&ExtensionValue> {
        self.extensions.get(name)
    }

    /// A text extension attribute.
    pub fn extension_str(&self, name: &str) -> Option<&str> {
        self.extensions.get(name).and_then(ExtensionValue::as_str)
    }

    /// Set an extension attribute.
    pub fn set_extension(&mut self, name: impl Into<String>, value: impl Into<ExtensionValue>) {
        self.extensions.insert(name.into(), value.into());
    }

    /// Remove an extension attribute, returning it.
    pub fn remove_extension(&mut self, name: &str) -> Option<ExtensionValue> {
        self.extensions.remove(name)
    }

    /// The W3C `traceparent` extension.
    pub fn traceparent(&self) -> Option<&str> {
        self.extension_str("traceparent")
    }

    /// The `tenant` extension the bus stamped (the publisher's municipality).
    pub fn tenant(&self) -> Option<&str> {
        self.extension_str("tenant")
    }

    /// The `causationid` extension: the id of the event this one was made from.
    pub fn causationid(&self) -> Option<&str> {
        self.extension_str(CAUSATION_EXTENSION)
    }

    /// The `dataref` extension: where a document too large to travel inline is.
    pub fn dataref(&self) -> Option<&str> {
        self.extension_str("dataref")
    }

    /// Check the attributes against the CloudEvents 1.0 rules civicbus applies (non-empty
    /// `id`, `source`, `type`; no control characters; `source` without spaces; RFC 3339
    /// `time`; absolute `dataschema`; a media type in `datacontenttype`; extension names of
    /// `a-z0-9` only; 32-bit extension integers). The export layer checks every output
    /// with it, so a plugin gets a clear terminal error instead of a refusal by the host.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |attr: &str, why: String| {
            Err(Error::terminal(format!(
                "output event `{}`: {attr} {why}",
                self.id
            )))
        };
        for (name, value) in [
            ("id", &self.id),
            ("source", &self.source),
            ("type", &self.ty),
        ] {
            if value.is_empty() {
                return bad(name, "is empty".into());
            }
            if value.chars().any(char::is_control) {
                return bad(name, "contains control characters".into());
            }
        }
        if self.source.contains(char::is_whitespace) {
            return bad("source", format!("`{}` contains spaces", self.source));
        }
        if let Some(s) = &self.subject
            && (s.is_empty() || s.chars().any(char::is_control))
        {
            return bad("subject", "is empty or contains control characters".into());
        }
        if let Some(t) = &self.time
            && !is_rfc3339(t)
        {
            return bad("time", format!("`{t}` is not an RFC 3339 timestamp"));
        }
        if let Some(s) = &self.dataschema
            && !is_absolute_uri(s)
        {
            return bad("dataschema", format!("`{s}` is not an absolute URI"));
        }
        if let Some(ct) = &self.datacontenttype
            && !is_media_type(ct)
        {
            return bad("datacontenttype", format!("`{ct}` is not a media type"));
        }
        for (name, value) in &self.extensions {
            let name_ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if !name_ok {
                return bad(
                    "extension",
                    format!("name `{name}` is not lower-case letters and digits"),
                );
            }
            if CORE_ATTRIBUTES.contains(&name.as_str()) || name == "data" || name == "data_base64" {
                return bad("extension", format!("name `{name}` is reserved"));
            }
            match value {
                ExtensionValue::Text(s) if s.chars().any(char::is_control) => {
                    return bad(name, "contains control characters".into());
                }
                ExtensionValue::Integer(i) if i32::try_from(*i).is_err() => {
                    return bad(
                        name,
                        format!("is {i}, outside the 32-bit range of extension integers"),
                    );
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Read a structured-mode CloudEvent (the JSON object of `application/cloudevents+json`).
    ///
    /// `data` becomes bytes: JSON data is serialised (when `datacontenttype` is absent or
    /// JSON), a string with a textual content type is taken as is, and `data_base64` is
    /// decoded. Other members are extension attributes.
    ///
    /// ```
    /// use civicbus_transform_sdk::Event;
    /// let ev = Event::from_structured_str(r#"{
    ///     "specversion": "1.0", "id": "dys-778", "source": "/dysart/permitting",
    ///     "type": "ca.haliburton.permitting.permit.issued", "tenant": "dysart",
    ///     "data": { "PermitNum": "DYS-BP-2026-0142" }
    /// }"#).unwrap();
    /// assert_eq!(ev.tenant(), Some("dysart"));
    /// assert_eq!(ev.data_value().unwrap()["PermitNum"], "DYS-BP-2026-0142");
    /// assert_eq!(Event::from_structured_json(&ev.to_structured_json()).unwrap(), ev);
    /// ```
    pub fn from_structured_json(value: &Value) -> Result<Event, Error> {
        let obj = value
            .as_object()
            .ok_or_else(|| Error::terminal("a structured CloudEvent must be a JSON object"))?;
        match obj.get("specversion") {
            Some(Value::String(v)) if v == "1.0" => {}
            other => {
                return Err(Error::terminal(format!(
                    "specversion must be \"1.0\", not {}",
                    other.map_or("absent".to_string(), Value::to_string)
                )));
            }
        }
        let text = |name: &str| -> Result<Option<String>, Error> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(Error::terminal(format!(
                    "{name} must be a string, not {other}"
                ))),
            }
        };
        let required = |name: &str| -> Result<String, Error> {
            text(name)?.ok_or_else(|| Error::terminal(format!("the event has no {name}")))
        };
        let mut ev = Event::new(required("id")?, required("source")?, required("type")?);
        ev.subject = text("subject")?;
        ev.time = text("time")?;
        ev.datacontenttype = text("datacontenttype")?;
        ev.dataschema = text("dataschema")?;
        for (name, value) in obj {
            if CORE_ATTRIBUTES.contains(&name.as_str()) || name == "data" || name == "data_base64" {
                continue;
            }
            let value = match value {
                Value::Null => continue,
                Value::Bool(b) => ExtensionValue::Boolean(*b),
                Value::Number(n) => ExtensionValue::Integer(n.as_i64().ok_or_else(|| {
                    Error::terminal(format!("extension {name} must be an integer, not {n}"))
                })?),
                Value::String(s) => ExtensionValue::Text(s.clone()),
                other => {
                    return Err(Error::terminal(format!(
                        "extension {name} must be a string, number or boolean, not {other}"
                    )));
                }
            };
            ev.extensions.insert(name.clone(), value);
        }
        ev.data = match (obj.get("data"), obj.get("data_base64")) {
            (Some(_), Some(_)) => {
                return Err(Error::terminal(
                    "an event has data or data_base64, not both",
                ));
            }
            (None | Some(Value::Null), None | Some(Value::Null)) => None,
            (Some(Value::String(s)), None) if !ev.is_json() => Some(s.clone().into_bytes()),
            (Some(data), None) => Some(to_json_bytes(data)?),
            (None, Some(Value::String(b64))) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| Error::terminal(format!("data_base64 is not base64: {e}")))?,
            ),
            (None, Some(other)) => {
                return Err(Error::terminal(format!(
                    "data_base64 must be a string, not {other}"
                )));
            }
        };
        Ok(ev)
    }

    /// [`Event::from_structured_json`] from text.
    pub fn from_structured_str(text: &str) -> Result<Event, Error> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Error::terminal(format!("not a JSON CloudEvent: {e}")))?;
        Event::from_structured_json(&value)
    }

    /// The structured-mode JSON object of this event: JSON data as `data` (a JSON value),
    /// textual data as a `data` string, anything else as `data_base64`.
    pub fn to_structured_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("specversion".into(), Value::String("1.0".into()));
        m.insert("id".into(), Value::String(self.id.clone()));
        m.insert("source".into(), Value::String(self.source.clone()));
        m.insert("type".into(), Value::String(self.ty.clone()));
        for (k, v) in [
            ("subject", &self.subject),
            ("time", &self.time),
            ("datacontenttype", &self.datacontenttype),
            ("dataschema", &self.dataschema),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), Value::String(v.clone()));
            }
        }
        for (k, v) in &self.extensions {
            m.insert(k.clone(), v.to_json());
        }
        if let Some(bytes) = &self.data {
            let json = if self.is_json() {
                serde_json::from_slice::<Value>(bytes).ok()
            } else {
                None
            };
            let text = match self.datacontenttype.as_deref() {
                Some(ct) if json.is_none() && is_text_media_type(ct) => {
                    std::str::from_utf8(bytes).ok()
                }
                _ => None,
            };
            match (json, text) {
                (Some(v), _) => {
                    m.insert("data".into(), v);
                }
                (None, Some(t)) => {
                    m.insert("data".into(), Value::String(t.to_string()));
                }
                (None, None) => {
                    m.insert(
                        "data_base64".into(),
                        Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
                    );
                }
            }
        }
        Value::Object(m)
    }
}

/// Builds an output event from an input; see [`Event::derive`].
#[derive(Debug, Clone)]
#[must_use = "finish the builder with .json(..), .bytes(..) or .build()"]
pub struct EventBuilder {
    input_id: String,
    event: Event,
}

impl EventBuilder {
    fn new(input: &Event, ty: String) -> Self {
        let mut event = Event::new(format!("{}:{ty}", input.id), input.source.clone(), ty);
        event.subject = input.subject.clone();
        event.time = input.time.clone();
        for name in PROPAGATED_EXTENSIONS {
            if let Some(v) = input.extensions.get(name) {
                event.extensions.insert(name.to_string(), v.clone());
            }
        }
        event.extensions.insert(
            CAUSATION_EXTENSION.to_string(),
            ExtensionValue::Text(input.id.clone()),
        );
        EventBuilder {
            input_id: input.id.clone(),
            event,
        }
    }

    /// Number this output among several of the same type: id `<input id>:<type>:<n>`.
    pub fn index(mut self, n: usize) -> Self {
        self.event.id = format!("{}:{}:{n}", self.input_id, self.event.ty);
        self
    }

    /// Tell this output apart by a business key: id `<input id>:<type>:<suffix>`.
    pub fn id_suffix(mut self, suffix: impl fmt::Display) -> Self {
        self.event.id = format!("{}:{}:{suffix}", self.input_id, self.event.ty);
        self
    }

    /// Set the id outright. Keep it deterministic: derive it from the input, never from a
    /// clock or random numbers.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.event.id = id.into();
        self
    }

    /// Set `source` (default: the input's).
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.event.source = source.into();
        self
    }

    /// Set `subject` (default: the input's).
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.event.subject = Some(subject.into());
        self
    }

    /// Drop `subject`.
    pub fn no_subject(mut self) -> Self {
        self.event.subject = None;
        self
    }

    /// Set `time` (default: the input's). Take it from the input's data, never the clock.
    pub fn time(mut self, time: impl Into<String>) -> Self {
        self.event.time = Some(time.into());
        self
    }

    /// Set `dataschema`, the `$id` of the data's schema (see [`crate::catalogue_schema`]).
    pub fn dataschema(mut self, uri: impl Into<String>) -> Self {
        self.event.dataschema = Some(uri.into());
        self
    }

    /// Set an extension attribute.
    pub fn extension(mut self, name: impl Into<String>, value: impl Into<ExtensionValue>) -> Self {
        self.event.extensions.insert(name.into(), value.into());
        self
    }

    /// Remove an extension attribute (e.g. a propagated one).
    pub fn without_extension(mut self, name: &str) -> Self {
        self.event.extensions.remove(name);
        self
    }

    /// Finish with `value` as JSON data (`datacontenttype` application/json).
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Event, Error> {
        self.event.with_json(value)
    }

    /// Finish with raw data of the given media type.
    pub fn bytes(mut self, content_type: impl Into<String>, data: Vec<u8>) -> Event {
        self.event.datacontenttype = Some(content_type.into());
        self.event.data = Some(data);
        self.event
    }

    /// Finish without data.
    pub fn build(self) -> Event {
        self.event
    }
}

/// A serde_json error message without its ` at line L column C` suffix: the position is
/// in bytes the operator never sees (and that differ with the producer's formatting).
pub(crate) fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if e.line() == 0 {
        return text;
    }
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&suffix)
        .map(str::to_string)
        .unwrap_or(text)
}

fn to_json_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value)
        .map_err(|e| Error::terminal(format!("could not serialise the data as JSON: {e}")))
}

/// Whether a media type is JSON (`application/json`, `text/json`, or `…+json`).
pub fn is_json_media_type(ct: &str) -> bool {
    let essence = essence(ct);
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

fn is_text_media_type(ct: &str) -> bool {
    let essence = essence(ct);
    essence.starts_with("text/") || essence == "application/xml" || essence.ends_with("+xml")
}

fn essence(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_media_type(s: &str) -> bool {
    let essence = s.split(';').next().unwrap_or("").trim();
    let Some((ty, sub)) = essence.split_once('/') else {
        return false;
    };
    let token = |t: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
    };
    token(ty) && token(sub)
}

fn is_absolute_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !s.contains(char::is_whitespace)
}

/// RFC 3339 date-time: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let num =
        |r: std::ops::Range<usize>| -> u32 { s.get(r).and_then(|x| x.parse().ok()).unwrap_or(99) };
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
    {
        return false;
    }
    if !matches!(b[10], b'T' | b't' | b' ')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    if !(1..=12).contains(&num(5..7))
        || !(1..=31).contains(&num(8..10))
        || num(11..13) > 23
        || num(14..16) > 59
        || num(17..19) > 60
    {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match &b[i..] {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit())
                && num(i + 1..i + 3) <= 23
                && num(i + 4..i + 6) <= 59
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input() -> Event {
        Event::new(
            "dys-1",
            "/dysart/permitting",
            "ca.haliburton.permitting.permit.issued",
        )
        .with_subject("DYS-BP-2026-0142")
        .with_time("2026-05-14T10:02:11-04:00")
        .with_extension(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .with_extension("tenant", "dysart")
        .with_extension("partitionkey", "DYS-BP-2026-0142")
    }

    #[test]
    fn derive_keeps_lineage_and_drops_input_only_extensions() {
        let out = Event::derive(&input(), "x.y")
            .index(2)
            .json(&json!({"a": 1}))
            .expect("json");
        assert_eq!(out.id, "dys-1:x.y:2");
        assert_eq!(out.subject.as_deref(), Some("DYS-BP-2026-0142"));
        assert_eq!(out.causationid(), Some("dys-1"));
        assert!(out.traceparent().is_some());
        assert_eq!(out.tenant(), None);
        assert_eq!(out.extension("partitionkey"), None);
        assert_eq!(out.data_value().expect("json"), json!({"a": 1}));
        out.validate().expect("valid");
        let keyed = Event::derive(&input(), "x.y")
            .id_suffix("ITEM-7")
            .no_subject()
            .build();
        assert_eq!(keyed.id, "dys-1:x.y:ITEM-7");
        assert_eq!(keyed.subject, None);
        assert_eq!(keyed.data, None);
    }

    #[test]
    fn validation_catches_what_the_host_would_refuse() {
        let ok = input();
        ok.validate().expect("valid");
        let cases: Vec<(Event, &str)> = vec![
            (Event::new("", "/s", "t"), "id is empty"),
            (Event::new("1", "/a b", "t"), "contains spaces"),
            (ok.clone().with_time("2026-05-14"), "not an RFC 3339"),
            (ok.clone().with_extension("Bad-Name", "x"), "not lower-case"),
            (ok.clone().with_extension("subject", "x"), "reserved"),
            (ok.clone().with_extension("big", 1i64 << 40), "32-bit"),
            (ok.clone().with_extension("nl", "a\nb"), "control"),
            (
                Event {
                    dataschema: Some("schemas/x".into()),
                    ..ok.clone()
                },
                "not an absolute URI",
            ),
            (
                Event {
                    datacontenttype: Some("json".into()),
                    ..ok.clone()
                },
                "not a media type",
            ),
        ];
        for (ev, want) in cases {
            let err = ev.validate().expect_err(want);
            assert!(err.is_terminal());
            assert!(err.message().contains(want), "{err} should mention {want}");
        }
    }

    #[test]
    fn rfc3339() {
        for ok in [
            "2026-11-25T14:03:00Z",
            "2026-11-25T09:03:00.123-05:00",
            "2026-11-25t09:03:00+00:00",
        ] {
            assert!(is_rfc3339(ok), "{ok}");
        }
        for bad in [
            "2026-11-25",
            "2026-13-25T14:03:00Z",
            "2026-11-25T14:03:00",
            "2026-11-25T14:03:00.Z",
            "2026-11-25T24:00:00Z",
            "2026-11-25T14:03:00+0500",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }

    #[test]
    fn structured_round_trip_of_text_binary_and_json() {
        let text = Event::new("1", "/s", "t")
            .with_extension("n", 3)
            .with_extension("b", true);
        let text = EventBuilder {
            input_id: "1".into(),
            event: text,
        }
        .bytes("text/csv", b"a,b\n1,2".to_vec());
        let j = text.to_structured_json();
        assert_eq!(j["data"], "a,b\n1,2");
        assert_eq!(j["n"], 3);
        assert_eq!(Event::from_structured_json(&j).expect("parse"), text);

        let bin = Event {
            datacontenttype: Some("application/pdf".into()),
            data: Some(vec![0, 159, 146, 150]),
            ..Event::new("2", "/s", "t")
        };
        let j = bin.to_structured_json();
        assert_eq!(j["data_base64"], "AJ+Slg==");
        assert_eq!(Event::from_structured_json(&j).expect("parse"), bin);

        let no_ct = Event::from_structured_json(
            &json!({"specversion": "1.0", "id": "3", "source": "/s", "type": "t", "data": [1, 2]}),
        )
        .expect("parse");
        assert!(no_ct.is_json());
        assert_eq!(no_ct.data_value().expect("json"), json!([1, 2]));
    }

    #[test]
    fn structured_errors() {
        for (bad, want) in [
            (json!([]), "JSON object"),
            (
                json!({"id": "1", "source": "/s", "type": "t"}),
                "specversion",
            ),
            (
                json!({"specversion": "1.0", "source": "/s", "type": "t"}),
                "no id",
            ),
            (
                json!({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "x": 1.5}),
                "integer",
            ),
            (
                json!({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "data": 1, "data_base64": "AA=="}),
                "not both",
            ),
        ] {
            let err = Event::from_structured_json(&bad).expect_err(want);
            assert!(err.message().contains(want), "{err} should mention {want}");
        }
    }

    #[test]
    fn data_errors_are_terminal_and_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Items {
            items: Vec<Item>,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Item {
            amount: String,
        }
        let ev = Event::new("1", "/s", "t")
            .with_json(&json!({"items": [{"amount": "1.00"}, {"amount": 2.5}]}))
            .expect("json");
        let err = ev.data_json::<Items>().expect_err("bad type");
        assert!(
            err.message()
                .starts_with("data.items[1].amount: invalid type"),
            "{err}"
        );
        let none = Event::new("1", "/s", "t");
        assert_eq!(
            none.data_value().expect_err("none").message(),
            "the event has no data"
        );
        let xml = Event {
            datacontenttype: Some("application/xml".into()),
            data: Some(b"<a/>".to_vec()),
            ..none
        };
        assert_eq!(
            xml.data_value().expect_err("xml").message(),
            "data is application/xml, not JSON"
        );
        assert_eq!(xml.data_text().expect("text"), "<a/>");
    }
}
