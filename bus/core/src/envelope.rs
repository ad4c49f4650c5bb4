//! The CloudEvents 1.0 envelope as civicbus carries it.

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::EnvelopeError;

/// The only CloudEvents spec version civicbus accepts.
pub const SPEC_VERSION: &str = "1.0";

/// Media type of a structured-mode CloudEvent.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";

/// Media type of a batch of structured-mode CloudEvents.
pub const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";

/// Name of the extension the bus stamps with the tenant taken from the credential.
pub const TENANT_EXTENSION: &str = "tenant";

/// Name of the extension the bus sets on replayed events.
pub const REPLAY_EXTENSION: &str = "replayid";

/// Names of the context attributes defined by the CloudEvents spec (not extensions).
pub const CORE_ATTRIBUTES: [&str; 8] = [
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExtensionValue {
    /// A boolean.
    Boolean(bool),
    /// A 32-bit signed integer.
    Integer(i64),
    /// A string (also URI, URI-reference and timestamp values).
    String(String),
}

impl ExtensionValue {
    /// The canonical string form used in headers and for filtering.
    pub fn as_string(&self) -> String {
        match self {
            ExtensionValue::Boolean(b) => b.to_string(),
            ExtensionValue::Integer(i) => i.to_string(),
            ExtensionValue::String(s) => s.clone(),
        }
    }
}

/// The event payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// JSON data (the content type is JSON or absent).
    Json(Value),
    /// Textual data that is not JSON.
    Text(String),
    /// Binary data; carried as `data_base64` in structured mode.
    Binary(Bytes),
}

impl Data {
    /// The payload as bytes, as it would travel in binary mode.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Data::Json(v) => Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
            Data::Text(t) => Bytes::from(t.clone().into_bytes()),
            Data::Binary(b) => b.clone(),
        }
    }

    /// Size of the payload in bytes, as it would travel in binary mode.
    pub fn len(&self) -> usize {
        match self {
            Data::Json(v) => serde_json::to_vec(v).map(|v| v.len()).unwrap_or(0),
            Data::Text(t) => t.len(),
            Data::Binary(b) => b.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A validated CloudEvents 1.0 event.
///
/// Construct it with [`CloudEvent::new`] or one of the parsers in [`crate::binding`]; both
/// check the attributes, so a value of this type is always a valid event.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudEvent {
    /// `id`: unique within `source`.
    pub id: String,
    /// `source`: URI-reference naming the producing system, e.g. `/dysart/permitting`.
    pub source: String,
    /// `type`: reverse-DNS event type, e.g. `ca.haliburton.permitting.permit.issued`.
    pub ty: String,
    /// `datacontenttype`, when set.
    pub datacontenttype: Option<String>,
    /// `dataschema`, when set.
    pub dataschema: Option<String>,
    /// `subject`: the business key (permit number, roll number, work order).
    pub subject: Option<String>,
    /// `time`, as the RFC 3339 string the producer sent.
    pub time: Option<String>,
    /// Extension attributes (`tenant`, `traceparent`, `partitionkey`, `dataref`, …).
    pub extensions: BTreeMap<String, ExtensionValue>,
    /// The payload.
    pub data: Option<Data>,
}

impl CloudEvent {
    /// A new event with the required attributes, validated.
    pub fn new(
        id: impl Into<String>,
        source: impl Into<String>,
        ty: impl Into<String>,
    ) -> Result<Self, EnvelopeError> {
        let ev = CloudEvent {
            id: id.into(),
            source: source.into(),
            ty: ty.into(),
            datacontenttype: None,
            dataschema: None,
            subject: None,
            time: None,
            extensions: BTreeMap::new(),
            data: None,
        };
        ev.validate()?;
        Ok(ev)
    }

    /// The tenant stamped by the bus, if any.
    pub fn tenant(&self) -> Option<&str> {
        match self.extensions.get(TENANT_EXTENSION) {
            Some(ExtensionValue::String(s)) => Some(s),
            _ => None,
        }
    }

    /// Stamp the tenant extension (the tenant always comes from the credential).
    pub fn set_tenant(&mut self, tenant: &str) {
        self.extensions.insert(
            TENANT_EXTENSION.to_string(),
            ExtensionValue::String(tenant.to_string()),
        );
    }

    /// The value of any attribute (core or extension) in its string form.
    pub fn attribute(&self, name: &str) -> Option<String> {
        match name {
            "id" => Some(self.id.clone()),
            "source" => Some(self.source.clone()),
            "specversion" => Some(SPEC_VERSION.to_string()),
            "type" => Some(self.ty.clone()),
            "datacontenttype" => self.datacontenttype.clone(),
            "dataschema" => self.dataschema.clone(),
            "subject" => self.subject.clone(),
            "time" => self.time.clone(),
            other => self.extensions.get(other).map(ExtensionValue::as_string),
        }
    }

    /// Borrowing variant of [`CloudEvent::attribute`] for the string-valued attributes.
    pub fn attribute_str(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow;
        match name {
            "id" => Some(Cow::Borrowed(&self.id)),
            "source" => Some(Cow::Borrowed(&self.source)),
            "specversion" => Some(Cow::Borrowed(SPEC_VERSION)),
            "type" => Some(Cow::Borrowed(&self.ty)),
            "datacontenttype" => self.datacontenttype.as_deref().map(Cow::Borrowed),
            "dataschema" => self.dataschema.as_deref().map(Cow::Borrowed),
            "subject" => self.subject.as_deref().map(Cow::Borrowed),
            "time" => self.time.as_deref().map(Cow::Borrowed),
            other => match self.extensions.get(other)? {
                ExtensionValue::String(s) => Some(Cow::Borrowed(s)),
                v => Some(Cow::Owned(v.as_string())),
            },
        }
    }

    /// All attributes except `data`, as (name, string value) pairs, core attributes first.
    pub fn attributes(&self) -> Vec<(String, String)> {
        let mut out = Vec::with_capacity(8 + self.extensions.len());
        for name in CORE_ATTRIBUTES {
            if let Some(v) = self.attribute(name) {
                out.push((name.to_string(), v));
            }
        }
        for (k, v) in &self.extensions {
            out.push((k.clone(), v.as_string()));
        }
        out
    }

    /// Check every attribute against the CloudEvents 1.0 rules.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        crate::binding::validate_event(self)
    }

    /// The structured-mode JSON object of this event.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("specversion".into(), Value::String(SPEC_VERSION.into()));
        m.insert("id".into(), Value::String(self.id.clone()));
        m.insert("source".into(), Value::String(self.source.clone()));
        m.insert("type".into(), Value::String(self.ty.clone()));
        let opt = [
            ("datacontenttype", &self.datacontenttype),
            ("dataschema", &self.dataschema),
            ("subject", &self.subject),
            ("time", &self.time),
        ];
        for (k, v) in opt {
            if let Some(v) = v {
                m.insert(k.into(), Value::String(v.clone()));
            }
        }
        for (k, v) in &self.extensions {
            let jv = match v {
                ExtensionValue::Boolean(b) => Value::Bool(*b),
                ExtensionValue::Integer(i) => Value::from(*i),
                ExtensionValue::String(s) => Value::String(s.clone()),
            };
            m.insert(k.clone(), jv);
        }
        match &self.data {
            None => {}
            Some(Data::Json(v)) => {
                m.insert("data".into(), v.clone());
            }
            Some(Data::Text(t)) => {
                m.insert("data".into(), Value::String(t.clone()));
            }
            Some(Data::Binary(b)) => {
                m.insert(
                    "data_base64".into(),
                    Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
                );
            }
        }
        Value::Object(m)
    }

    /// The structured-mode JSON encoding of this event.
    pub fn to_structured_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_json()).unwrap_or_default()
    }
}

/// Whether a media type is JSON (`application/json`, `text/json`, or `…+json`).
pub fn is_json_media_type(ct: &str) -> bool {
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

/// Whether a media type is textual (`text/*`, XML), so data can travel as a JSON string.
pub fn is_text_media_type(ct: &str) -> bool {
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/") || essence == "application/xml" || essence.ends_with("+xml")
}
