//! `ca.haliburton.permitting.permit.issued` → `ca.haliburton.records.record.declared`.
//!
//! When a permit is issued, the permit document becomes a record in the shared records
//! system: classified in TOMRMS as P10 (Building Permits) with retention P (permanent), and
//! described with CMIS properties and Dublin Core. The document itself travels by
//! reference: the output's `dataref` extension (and `contentRef`) point to the permit in
//! the municipality's permitting system.
//!
//! Configuration (all optional):
//!
//! ```json
//! {
//!   "documentUrl": "https://permits.example.ca/permit/{PermitNum}",
//!   "documentUrlBySource": { "/dysart/permitting": "https://permits.dysartetal.ca/permit/{PermitNum}" },
//!   "municipality": "dysart",
//!   "secondaryCode": "P10", "secondaryTitle": "Building Permits",
//!   "retention": "P", "retentionByLaw": "2024-31",
//!   "mimeType": "application/pdf",
//!   "declaredBy": "civicbus",
//!   "source": "/county/records"
//! }
//! ```
//!
//! The document URL comes from `documentUrlBySource[input source]`, else `documentUrl`,
//! else the permit's BLDS `Link`; `{PermitNum}` and `{municipality}` are replaced
//! (the permit number percent-encoded). The municipality is the permit's `Jurisdiction`,
//! else `municipality` from the configuration, else the event's `tenant`.

use std::collections::BTreeMap;

use civicbus_transform_sdk::{Error, Event, Transform, bail, catalogue_schema, log, parse_config};
use serde::{Deserialize, Serialize};

/// The input type.
pub const PERMIT_ISSUED: &str = "ca.haliburton.permitting.permit.issued";
/// The output type.
pub const RECORD_DECLARED: &str = "ca.haliburton.records.record.declared";

/// The partners' tenant ids, with the names their records carry.
const MUNICIPALITIES: [(&str, &str); 5] = [
    ("county", "County of Haliburton"),
    ("algonquin-highlands", "Township of Algonquin Highlands"),
    ("dysart", "Municipality of Dysart et al"),
    ("highlands-east", "Municipality of Highlands East"),
    ("minden-hills", "Township of Minden Hills"),
];

/// The plugin configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// URL template of the permit document.
    #[serde(default)]
    pub document_url: Option<String>,
    /// URL templates by input `source`.
    #[serde(default)]
    pub document_url_by_source: BTreeMap<String, String>,
    /// Municipality when the permit has no `Jurisdiction`.
    #[serde(default)]
    pub municipality: Option<String>,
    /// TOMRMS secondary code.
    #[serde(default = "default_secondary_code")]
    pub secondary_code: String,
    /// TOMRMS secondary title.
    #[serde(default = "default_secondary_title")]
    pub secondary_title: String,
    /// Retention code.
    #[serde(default = "default_retention")]
    pub retention: String,
    /// Retention by-law.
    #[serde(default)]
    pub retention_by_law: Option<String>,
    /// Media type of the permit document.
    #[serde(default = "default_mime_type")]
    pub mime_type: String,
    /// `declaredBy` of the record.
    #[serde(default = "default_declared_by")]
    pub declared_by: String,
    /// `source` of the output (default: the input's).
    #[serde(default)]
    pub source: Option<String>,
}

fn default_secondary_code() -> String {
    "P10".into()
}
fn default_secondary_title() -> String {
    "Building Permits".into()
}
fn default_retention() -> String {
    "P".into()
}
fn default_mime_type() -> String {
    "application/pdf".into()
}
fn default_declared_by() -> String {
    "civicbus".into()
}

/// The BLDS permit fields the mapping reads (the schema allows more).
#[derive(Debug, Deserialize)]
#[allow(missing_docs)]
pub struct Permit {
    #[serde(rename = "PermitNum")]
    pub permit_num: String,
    #[serde(rename = "Description")]
    pub description: String,
    #[serde(rename = "IssuedDate")]
    pub issued_date: String,
    #[serde(rename = "PermitTypeMapped")]
    pub permit_type_mapped: String,
    #[serde(rename = "OriginalAddress1")]
    pub original_address1: String,
    #[serde(rename = "OriginalCity")]
    pub original_city: String,
    #[serde(rename = "PIN")]
    pub pin: String,
    #[serde(rename = "Jurisdiction", default)]
    pub jurisdiction: Option<String>,
    #[serde(rename = "Link", default)]
    pub link: Option<String>,
}

/// `data` of `records.record.declared` (the catalogue's field names).
#[derive(Debug, Serialize)]
#[allow(missing_docs)]
pub struct RecordDeclared {
    #[serde(rename = "cmis:objectId")]
    pub object_id: String,
    #[serde(rename = "cmis:name")]
    pub name: String,
    #[serde(rename = "cmis:versionLabel")]
    pub version_label: String,
    #[serde(rename = "cmis:contentStreamMimeType")]
    pub mime_type: String,
    pub municipality: String,
    pub classification: Classification,
    pub retention: Retention,
    #[serde(rename = "dublinCore")]
    pub dublin_core: DublinCore,
    #[serde(rename = "contentRef")]
    pub content_ref: String,
    #[serde(rename = "declaredBy")]
    pub declared_by: String,
    #[serde(rename = "declaredAt", skip_serializing_if = "Option::is_none")]
    pub declared_at: Option<String>,
}

/// TOMRMS classification.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Classification {
    pub primary_class: String,
    pub secondary_code: String,
    pub secondary_title: String,
    pub file_code: String,
}

/// Retention.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Retention {
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_law: Option<String>,
}

/// Dublin Core description.
#[derive(Debug, Serialize)]
#[allow(missing_docs)]
pub struct DublinCore {
    pub title: String,
    pub creator: String,
    pub date: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub format: String,
    pub identifier: String,
    pub relation: Vec<String>,
}

/// The plugin.
#[derive(Debug)]
pub struct PermitToRecord {
    config: Config,
}

impl PermitToRecord {
    /// The plugin with a parsed configuration.
    pub fn new(config: Config) -> Result<Self, String> {
        let code = &config.secondary_code;
        let ok = code.len() == 3
            && code.as_bytes()[0].is_ascii_uppercase()
            && code.as_bytes()[1..].iter().all(u8::is_ascii_digit);
        if !ok {
            return Err(format!(
                "configuration: secondaryCode `{code}` is not a TOMRMS secondary such as P10"
            ));
        }
        if let Some(m) = &config.municipality
            && municipality_name(m).is_none()
        {
            return Err(format!(
                "configuration: municipality `{m}` is not a tenant id"
            ));
        }
        for t in config
            .document_url
            .iter()
            .chain(config.document_url_by_source.values())
        {
            if !(t.starts_with("https://") || t.starts_with("http://")) {
                return Err(format!(
                    "configuration: document URL `{t}` is not an http(s) URL"
                ));
            }
        }
        Ok(PermitToRecord { config })
    }

    /// The mapping: one record declared for one permit issued.
    pub fn map(&self, input: &Event) -> Result<Event, Error> {
        if input.ty != PERMIT_ISSUED {
            bail!("expected {PERMIT_ISSUED}, got {}", input.ty);
        }
        let permit: Permit = input.data_json()?;
        let municipality = permit
            .jurisdiction
            .clone()
            .or_else(|| self.config.municipality.clone())
            .or_else(|| input.tenant().map(str::to_string))
            .ok_or_else(|| Error::terminal("no municipality: the permit has no Jurisdiction, and neither the configuration nor the event's tenant names one"))?;
        let Some(municipality_name) = municipality_name(&municipality) else {
            bail!("municipality `{municipality}` is not a tenant id");
        };
        let url = self.document_url(input, &permit, &municipality)?;
        let c = &self.config;
        let extension = match c.mime_type.as_str() {
            "application/pdf" => ".pdf",
            "image/tiff" => ".tif",
            _ => "",
        };
        let type_title = format!("{} Permit", permit.permit_type_mapped);
        let object_id = format!("permit:{municipality}:{}", permit.permit_num);
        let record = RecordDeclared {
            name: truncate(
                &format!(
                    "{} {type_title} - {}{extension}",
                    permit.permit_num, permit.original_address1
                ),
                255,
                extension,
            ),
            object_id: object_id.clone(),
            version_label: "1.0".into(),
            mime_type: c.mime_type.clone(),
            municipality: municipality.clone(),
            classification: Classification {
                primary_class: c.secondary_code[..1].to_string(),
                secondary_code: c.secondary_code.clone(),
                secondary_title: c.secondary_title.clone(),
                file_code: truncate(
                    &format!("{}-{}", c.secondary_code, permit.permit_num),
                    100,
                    "",
                ),
            },
            retention: Retention {
                code: c.retention.clone(),
                by_law: c.retention_by_law.clone(),
            },
            dublin_core: DublinCore {
                title: truncate(
                    &format!(
                        "{} permit {}, {}, {}",
                        permit.permit_type_mapped,
                        permit.permit_num,
                        permit.original_address1,
                        permit.original_city
                    ),
                    500,
                    "",
                ),
                creator: format!("{municipality_name}, Building Department"),
                date: permit.issued_date.clone(),
                ty: "Text".into(),
                format: c.mime_type.clone(),
                identifier: permit.permit_num.clone(),
                relation: vec![
                    format!("PermitNum:{}", permit.permit_num),
                    format!("ARN:{}", permit.pin),
                ],
            },
            content_ref: url.clone(),
            declared_by: c.declared_by.clone(),
            declared_at: input.time.clone(),
        };
        log::debug!(
            "permit {} declared as record {object_id}",
            permit.permit_num
        );
        let mut out = Event::derive(input, RECORD_DECLARED)
            .subject(object_id)
            .dataschema(catalogue_schema(RECORD_DECLARED, 1))
            .extension("dataref", url);
        if let Some(source) = &c.source {
            out = out.source(source.clone());
        }
        out.json(&record)
    }

    fn document_url(
        &self,
        input: &Event,
        permit: &Permit,
        municipality: &str,
    ) -> Result<String, Error> {
        let template = self
            .config
            .document_url_by_source
            .get(&input.source)
            .or(self.config.document_url.as_ref());
        let url = match (template, &permit.link) {
            (Some(t), _) => t
                .replace("{PermitNum}", &percent_encode(&permit.permit_num))
                .replace("{municipality}", municipality),
            (None, Some(link)) => link.clone(),
            (None, None) => bail!(
                "no document URL for permit {}: the permit has no Link and the configuration has no documentUrl",
                permit.permit_num
            ),
        };
        if !(url.starts_with("https://") || url.starts_with("http://"))
            || url.chars().any(char::is_whitespace)
        {
            bail!("document URL `{url}` is not an http(s) URL");
        }
        Ok(url)
    }
}

impl Transform for PermitToRecord {
    fn init(config: &str) -> Result<Self, String> {
        PermitToRecord::new(parse_config(config)?)
    }

    fn transform(&self, input: Event) -> Result<Vec<Event>, Error> {
        Ok(vec![self.map(&input)?])
    }
}

civicbus_transform_sdk::export!(PermitToRecord);

fn municipality_name(tenant: &str) -> Option<&'static str> {
    MUNICIPALITIES
        .iter()
        .find(|(id, _)| *id == tenant)
        .map(|(_, name)| *name)
}

/// Percent-encode everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Cut `s` to at most `max` characters, then add `suffix` (kept whole).
fn truncate(s: &str, max: usize, suffix: &str) -> String {
    let body = s.strip_suffix(suffix).unwrap_or(s);
    let body: String = body
        .chars()
        .take(max.saturating_sub(suffix.chars().count()))
        .collect();
    format!("{body}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_is_checked_at_init() {
        assert!(PermitToRecord::init("").is_ok());
        let err = PermitToRecord::init(r#"{"secondaryCode": "P1"}"#).expect_err("bad code");
        assert!(err.contains("P1"), "{err}");
        let err =
            PermitToRecord::init(r#"{"documentUrl": "ftp://x/{PermitNum}"}"#).expect_err("bad url");
        assert!(err.contains("http"), "{err}");
        let err =
            PermitToRecord::init(r#"{"municipality": "haliburton"}"#).expect_err("bad tenant");
        assert!(err.contains("tenant"), "{err}");
        let err = PermitToRecord::init(r#"{"documentURL": "x"}"#).expect_err("typo");
        assert!(err.contains("unknown field `documentURL`"), "{err}");
    }

    #[test]
    fn url_template_encodes_the_permit_number() {
        assert_eq!(percent_encode("DYS-BP/2026 0142"), "DYS-BP%2F2026%200142");
        assert_eq!(truncate("abcdef.pdf", 6, ".pdf"), "ab.pdf");
    }
}
