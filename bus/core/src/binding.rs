//! Protocol bindings: parse structured, batch and binary-mode CloudEvents and validate them.
//!
//! The HTTP binding's binary mode uses `ce-` headers; on RabbitMQ (AMQP 0-9-1) civicbus
//! accepts the prefixes `cloudEvents_`, `cloudEvents:`, `ce-` and `ce_`. Parsers take the
//! body bytes and already-decoded header strings, so they are shared by every transport.

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::envelope::{
    CORE_ATTRIBUTES, CloudEvent, Data, ExtensionValue, SPEC_VERSION, is_json_media_type,
    is_text_media_type,
};
use crate::error::{EnvelopeError, EnvelopeErrorKind as K};

/// Limits applied while parsing, before anything is allocated per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Deepest nesting of JSON arrays and objects accepted anywhere in the body.
    pub max_json_depth: usize,
    /// Most events in one batch.
    pub max_batch_events: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_json_depth: 32,
            max_batch_events: 100,
        }
    }
}

/// Which header prefixes a binary-mode parser recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderPrefixes {
    /// HTTP: `ce-` only (case-insensitive).
    Http,
    /// AMQP: `cloudEvents_`, `cloudEvents:`, `ce-`, `ce_` (case-insensitive).
    Amqp,
}

impl HeaderPrefixes {
    /// The attribute name a header carries, if the header is a CloudEvents attribute.
    pub fn attribute_name(self, header: &str) -> Option<String> {
        let lower = header.to_ascii_lowercase();
        let prefixes: &[&str] = match self {
            HeaderPrefixes::Http => &["ce-"],
            HeaderPrefixes::Amqp => &["cloudevents_", "cloudevents:", "ce-", "ce_"],
        };
        prefixes
            .iter()
            .find_map(|p| lower.strip_prefix(p))
            .filter(|rest| !rest.is_empty())
            .map(str::to_string)
    }
}

/// Reject JSON nested deeper than `max` without building it.
///
/// Runs in one pass over the bytes, ignoring brackets inside strings.
pub fn check_json_depth(body: &[u8], max: usize, field: &str) -> Result<(), EnvelopeError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(EnvelopeError::new(
                        K::TooDeep,
                        field,
                        format!(
                            "JSON is nested more than {max} levels deep; flatten the document or raise limits.max_json_depth"
                        ),
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn parse_json(body: &[u8], limits: &ParseLimits, field: &str) -> Result<Value, EnvelopeError> {
    check_json_depth(body, limits.max_json_depth, field)?;
    serde_json::from_slice(body).map_err(|e| {
        // serde_json's message ends with " at line L column C"; say the position once.
        let full = e.to_string();
        let what = full
            .rsplit_once(" at line ")
            .map_or(full.as_str(), |(what, _)| what);
        EnvelopeError::new(
            K::MalformedJson,
            field,
            format!(
                "not valid JSON: {what} at line {}, column {}; fix the syntax there",
                e.line(),
                e.column()
            ),
        )
    })
}

/// Parse a structured-mode event (`application/cloudevents+json`).
pub fn parse_structured(body: &[u8], limits: &ParseLimits) -> Result<CloudEvent, EnvelopeError> {
    match parse_json(body, limits, "")? {
        Value::Object(map) => event_from_object(map),
        other => Err(EnvelopeError::new(
            K::MalformedJson,
            "",
            format!(
                "a structured CloudEvent must be a JSON object, got {}; send one event as an object or use application/cloudevents-batch+json for an array",
                json_kind(&other)
            ),
        )),
    }
}

/// Parse a batch (`application/cloudevents-batch+json`): a JSON array of structured events.
///
/// Errors name the position of the bad event, e.g. `[3].source`.
pub fn parse_batch(body: &[u8], limits: &ParseLimits) -> Result<Vec<CloudEvent>, EnvelopeError> {
    let items = match parse_json(body, limits, "")? {
        Value::Array(items) => items,
        other => {
            return Err(EnvelopeError::new(
                K::InvalidBatch,
                "",
                format!(
                    "a CloudEvents batch must be a JSON array of events, got {}; wrap the events in [ ]",
                    json_kind(&other)
                ),
            ));
        }
    };
    if items.len() > limits.max_batch_events {
        return Err(EnvelopeError::new(
            K::InvalidBatch,
            "",
            format!(
                "batch holds {} events, more than the limit of {}; split it into smaller batches",
                items.len(),
                limits.max_batch_events
            ),
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(map) => event_from_object(map).map_err(|e| e.at_index(i)),
            other => Err(EnvelopeError::new(
                K::MalformedJson,
                format!("[{i}]"),
                format!(
                    "each batch entry must be a JSON object, got {}; send every event of the batch as a structured CloudEvent object",
                    json_kind(&other)
                ),
            )),
        })
        .collect()
}

/// Parse a binary-mode event: attributes from headers, data from the body.
///
/// `headers` are (name, decoded value) pairs; `content_type` becomes `datacontenttype`.
/// HTTP header values are percent-decoded here as the HTTP binding requires.
pub fn parse_binary<'a, I>(
    headers: I,
    prefixes: HeaderPrefixes,
    content_type: Option<&str>,
    body: &[u8],
    limits: &ParseLimits,
) -> Result<CloudEvent, EnvelopeError>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    // attribute -> value, and attribute -> the header it came from (for error fields).
    let mut attrs: BTreeMap<String, String> = BTreeMap::new();
    let mut sent_as: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let Some(attr) = prefixes.attribute_name(name) else {
            continue;
        };
        let value = match prefixes {
            HeaderPrefixes::Http => percent_decode(value).ok_or_else(|| {
                EnvelopeError::new(
                    K::InvalidAttribute,
                    name,
                    "header value is not valid percent-encoded UTF-8; encode the value as UTF-8 and percent-encode each byte outside printable ASCII (e.g. é as %C3%A9)",
                )
            })?,
            HeaderPrefixes::Amqp => value.to_string(),
        };
        if let Some(first) = sent_as.get(&attr) {
            return Err(EnvelopeError::new(
                K::InvalidAttribute,
                name,
                format!("attribute `{attr}` is given twice (also as header {first}); send it once"),
            ));
        }
        sent_as.insert(attr.clone(), name.to_string());
        attrs.insert(attr, value);
    }
    // Whether `datacontenttype` comes from the message's own content type (which wins over
    // a `datacontenttype` header).
    let ct_from_message = content_type.filter(|s| !s.is_empty());
    // The header (or property) an attribute came from, or the one that should carry it.
    let header_of = |attr: &str| -> String {
        if attr == "datacontenttype" && ct_from_message.is_some() {
            return match prefixes {
                HeaderPrefixes::Http => "content-type".to_string(),
                HeaderPrefixes::Amqp => "content_type".to_string(),
            };
        }
        sent_as
            .get(attr)
            .cloned()
            .unwrap_or_else(|| match prefixes {
                HeaderPrefixes::Http => format!("ce-{attr}"),
                HeaderPrefixes::Amqp => format!("cloudEvents_{attr}"),
            })
    };
    let mut take = |attr: &str| attrs.remove(attr);
    let specversion = take("specversion");
    let id = take("id");
    let source = take("source");
    let ty = take("type");
    let subject = take("subject");
    let time = take("time");
    let dataschema = take("dataschema");
    let header_ct = take("datacontenttype");

    let require = |v: Option<String>, attr: &str| {
        v.ok_or_else(|| {
            let header = header_of(attr);
            EnvelopeError::new(
                K::MissingAttribute,
                header.clone(),
                format!("required attribute `{attr}` is missing; add the header {header}"),
            )
        })
    };
    let specversion = require(specversion, "specversion")?;
    check_specversion(&specversion, &header_of("specversion"))?;
    let id = require(id, "id")?;
    let source = require(source, "source")?;
    let ty = require(ty, "type")?;

    let datacontenttype = ct_from_message.map(str::to_string).or(header_ct);
    let data = if body.is_empty() {
        None
    } else {
        Some(data_from_bytes(body, datacontenttype.as_deref(), limits)?)
    };
    let mut extensions = BTreeMap::new();
    for (attr, value) in attrs {
        check_extension_name(&attr, &header_of(&attr))?;
        extensions.insert(attr, ExtensionValue::String(value));
    }
    let ev = CloudEvent {
        id,
        source,
        ty,
        datacontenttype,
        dataschema,
        subject,
        time,
        extensions,
        data,
    };
    validate_event(&ev).map_err(|mut e| {
        if !e.field.is_empty() && e.field != "data" {
            e.field = header_of(&e.field);
        }
        e
    })?;
    Ok(ev)
}

/// Decode a binary-mode body into [`Data`] according to its content type.
pub fn data_from_bytes(
    body: &[u8],
    content_type: Option<&str>,
    limits: &ParseLimits,
) -> Result<Data, EnvelopeError> {
    match content_type {
        // CloudEvents reads data without a content type as JSON; say so when it is not.
        None => parse_json(body, limits, "data").map(Data::Json).map_err(|mut e| {
            if e.kind == K::MalformedJson {
                e.message = format!(
                    "the body has no content type, so it is read as JSON, but it is {}; declare its content type (e.g. text/plain) or send valid JSON",
                    e.message
                        .split_once("; ")
                        .map_or(e.message.as_str(), |(what, _)| what)
                );
            }
            e
        }),
        Some(ct) if is_json_media_type(ct) => Ok(Data::Json(parse_json(body, limits, "data")?)),
        Some(ct) if is_text_media_type(ct) => match std::str::from_utf8(body) {
            Ok(s) => Ok(Data::Text(s.to_string())),
            Err(_) => Err(EnvelopeError::new(
                K::InvalidAttribute,
                "data",
                format!(
                    "content type {ct} is textual but the body is not valid UTF-8; send UTF-8 text, or declare a binary content type such as application/octet-stream"
                ),
            )),
        },
        Some(_) => Ok(Data::Binary(Bytes::copy_from_slice(body))),
    }
}

fn check_specversion(v: &str, field: &str) -> Result<(), EnvelopeError> {
    if v == SPEC_VERSION {
        Ok(())
    } else {
        Err(EnvelopeError::new(
            K::InvalidAttribute,
            field,
            format!("specversion `{v}` is not supported; send \"1.0\""),
        ))
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn string_attr(
    map: &mut Map<String, Value>,
    name: &str,
    required: bool,
) -> Result<Option<String>, EnvelopeError> {
    match map.remove(name) {
        None | Some(Value::Null) if required => Err(EnvelopeError::new(
            K::MissingAttribute,
            name,
            format!("required attribute `{name}` is missing; add it to the event"),
        )),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(EnvelopeError::new(
            K::InvalidAttribute,
            name,
            format!(
                "`{name}` must be a string, got {}; send it as a JSON string",
                json_kind(&other)
            ),
        )),
    }
}

fn event_from_object(mut map: Map<String, Value>) -> Result<CloudEvent, EnvelopeError> {
    let specversion = string_attr(&mut map, "specversion", true)?.unwrap_or_default();
    check_specversion(&specversion, "specversion")?;
    let id = string_attr(&mut map, "id", true)?.unwrap_or_default();
    let source = string_attr(&mut map, "source", true)?.unwrap_or_default();
    let ty = string_attr(&mut map, "type", true)?.unwrap_or_default();
    let datacontenttype = string_attr(&mut map, "datacontenttype", false)?;
    let dataschema = string_attr(&mut map, "dataschema", false)?;
    let subject = string_attr(&mut map, "subject", false)?;
    let time = string_attr(&mut map, "time", false)?;
    let data = map.remove("data");
    let data_base64 = map.remove("data_base64");
    let data = match (data, data_base64) {
        (Some(d), Some(b)) if !d.is_null() && !b.is_null() => {
            return Err(EnvelopeError::new(
                K::InvalidAttribute,
                "data_base64",
                "an event carries either `data` or `data_base64`, not both; remove one of them",
            ));
        }
        (_, Some(Value::String(b64))) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| {
                    EnvelopeError::new(
                        K::InvalidAttribute,
                        "data_base64",
                        format!("not valid base64 ({e}); encode binary data with standard base64"),
                    )
                })?;
            Some(Data::Binary(Bytes::from(bytes)))
        }
        (_, Some(other)) if !other.is_null() => {
            return Err(EnvelopeError::new(
                K::InvalidAttribute,
                "data_base64",
                format!(
                    "`data_base64` must be a base64 string, got {}; encode binary data with standard base64 and send it as a JSON string",
                    json_kind(&other)
                ),
            ));
        }
        (Some(Value::Null), _) | (None, _) => None,
        (Some(Value::String(s)), _)
            if datacontenttype
                .as_deref()
                .is_some_and(|ct| !is_json_media_type(ct)) =>
        {
            Some(Data::Text(s))
        }
        (Some(v), _) => Some(Data::Json(v)),
    };
    let mut extensions = BTreeMap::new();
    for (name, value) in map {
        check_extension_name(&name, &name)?;
        let ext = match value {
            Value::Null => continue,
            Value::Bool(b) => ExtensionValue::Boolean(b),
            Value::String(s) => ExtensionValue::String(s),
            Value::Number(n) => match n.as_i64().filter(|i| i32::try_from(*i).is_ok()) {
                Some(i) => ExtensionValue::Integer(i),
                None => {
                    return Err(EnvelopeError::new(
                        K::InvalidAttribute,
                        name.clone(),
                        format!(
                            "extension attribute `{name}` is {n}, but extension integers must be whole numbers within the 32-bit signed range; send other numbers as strings"
                        ),
                    ));
                }
            },
            other => {
                return Err(EnvelopeError::new(
                    K::InvalidAttribute,
                    name.clone(),
                    format!(
                        "extension attribute `{name}` must be a string, integer or boolean, got {}; put structured values in `data`",
                        json_kind(&other)
                    ),
                ));
            }
        };
        extensions.insert(name, ext);
    }
    let ev = CloudEvent {
        id,
        source,
        ty,
        datacontenttype,
        dataschema,
        subject,
        time,
        extensions,
        data,
    };
    validate_event(&ev)?;
    Ok(ev)
}

fn check_extension_name(name: &str, field: &str) -> Result<(), EnvelopeError> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !ok {
        return Err(EnvelopeError::new(
            K::InvalidAttribute,
            field,
            format!(
                "`{name}` is not a valid CloudEvents attribute name; use only lower-case letters a-z and digits 0-9"
            ),
        ));
    }
    if name == "data" || name == "data_base64" {
        return Err(EnvelopeError::new(
            K::InvalidAttribute,
            field,
            format!(
                "`{name}` is reserved for the payload and cannot be an extension; send the payload as the body (binary mode) or in `data` (structured mode)"
            ),
        ));
    }
    if CORE_ATTRIBUTES.contains(&name) {
        return Err(EnvelopeError::new(
            K::InvalidAttribute,
            field,
            format!(
                "`{name}` is a CloudEvents context attribute and cannot also be an extension; set the attribute itself"
            ),
        ));
    }
    Ok(())
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Check an event's attributes against the CloudEvents 1.0 rules.
pub fn validate_event(ev: &CloudEvent) -> Result<(), EnvelopeError> {
    let non_empty = |v: &str, name: &str, hint: &str| {
        if v.is_empty() {
            Err(EnvelopeError::new(
                K::InvalidAttribute,
                name,
                format!("`{name}` must not be empty; {hint}"),
            ))
        } else if has_control(v) {
            Err(EnvelopeError::new(
                K::InvalidAttribute,
                name,
                format!(
                    "`{name}` contains control characters; remove tabs, line breaks and other control characters"
                ),
            ))
        } else {
            Ok(())
        }
    };
    non_empty(
        &ev.id,
        "id",
        "give each event an id unique within its source",
    )?;
    non_empty(
        &ev.source,
        "source",
        "name the producing system, e.g. /dysart/permitting",
    )?;
    if ev.source.contains(char::is_whitespace) {
        return Err(EnvelopeError::new(
            K::InvalidAttribute,
            "source",
            "`source` must be a URI-reference without spaces; percent-encode them (%20) or use a path such as /dysart/permitting",
        ));
    }
    non_empty(
        &ev.ty,
        "type",
        "use a reverse-DNS type, e.g. ca.haliburton.permitting.permit.issued",
    )?;
    if let Some(s) = &ev.subject {
        non_empty(s, "subject", "omit it or give the business key")?;
    }
    if let Some(t) = &ev.time
        && chrono::DateTime::parse_from_rfc3339(t).is_err()
    {
        return Err(EnvelopeError::new(
            K::InvalidAttribute,
            "time",
            format!("`{t}` is not an RFC 3339 timestamp; use e.g. 2026-11-25T14:03:00Z"),
        ));
    }
    if let Some(s) = &ev.dataschema
        && !is_absolute_uri(s)
    {
        return Err(EnvelopeError::new(
            K::InvalidAttribute,
            "dataschema",
            format!(
                "`{s}` is not an absolute URI; name the schema's $id, e.g. https://schemas.example/permit.issued/v1"
            ),
        ));
    }
    if let Some(ct) = &ev.datacontenttype
        && !is_media_type(ct)
    {
        let message = if ct.trim().is_empty() {
            "`datacontenttype` is empty; omit it or name the media type, e.g. application/json"
                .to_string()
        } else {
            format!("`{ct}` is not a media type (type/subtype); use e.g. application/json")
        };
        return Err(EnvelopeError::new(
            K::InvalidAttribute,
            "datacontenttype",
            message,
        ));
    }
    for (name, value) in &ev.extensions {
        check_extension_name(name, name)?;
        match value {
            ExtensionValue::String(s) if has_control(s) => {
                return Err(EnvelopeError::new(
                    K::InvalidAttribute,
                    name.clone(),
                    format!(
                        "`{name}` contains control characters; remove tabs, line breaks and other control characters"
                    ),
                ));
            }
            ExtensionValue::Integer(i) if i32::try_from(*i).is_err() => {
                return Err(EnvelopeError::new(
                    K::InvalidAttribute,
                    name.clone(),
                    format!(
                        "extension attribute `{name}` is {i}, but extension integers must be whole numbers within the 32-bit signed range; send other numbers as strings"
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
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

/// Decode `%XX` escapes (the HTTP binding's header encoding). `None` if not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Encode a header value per the HTTP binding: `%XX` for non-printable ASCII, space, `"`
/// and `%`, and for every byte of a non-ASCII character.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'"' && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
