//! `ca.haliburton.gis.asset.edited` (Esri feature JSON, civic address layer) →
//! `ca.haliburton.gis.address.updated` (or `…address.created` for an add): a GeoJSON
//! Feature (RFC 7946) with a WGS84 Point and the civic address attributes.
//!
//! The county GIS poller publishes every edited feature of every asset layer as
//! `gis.asset.edited`; this plugin keeps the civic address layer's and drops the others
//! (zero events). Deletes and retired addresses give zero events as well: retirements
//! travel as `gis.address.retired` from the addressing workflow, with their reason.
//!
//! Geometry must be a point in WGS84 (`wkid` 4326, x = longitude, y = latitude) or Web
//! Mercator (102100 / 3857, converted); ask the feature service for `outSR=4326` otherwise.
//! Coordinates are rounded to 7 decimals (about 1 cm).
//!
//! Configuration (all optional):
//!
//! ```json
//! {
//!   "layerName": "Civic Address Points",
//!   "fields": { "street": "st_name" }
//! }
//! ```
//!
//! `fields` maps an address property to the layer's attribute name; the defaults are
//! `address_id`, `civic_num`, `civic_sfx`, `street_name`, `unit_num`, `municipality`,
//! `community`, `postal_code`, `roll_number`, `addr_status`, `full_address`,
//! `effective_date` (epoch milliseconds, as Esri writes dates).

use std::collections::BTreeMap;

use civicbus_transform_sdk::{Error, Event, Transform, bail, catalogue_schema, log, parse_config};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The input type.
pub const ASSET_EDITED: &str = "ca.haliburton.gis.asset.edited";
/// The output type for an updated address.
pub const ADDRESS_UPDATED: &str = "ca.haliburton.gis.address.updated";
/// The output type for a new address.
pub const ADDRESS_CREATED: &str = "ca.haliburton.gis.address.created";

/// Address properties and the layer attribute each is read from by default.
const DEFAULT_FIELDS: [(&str, &str); 12] = [
    ("id", "address_id"),
    ("civicNumber", "civic_num"),
    ("civicNumberSuffix", "civic_sfx"),
    ("street", "street_name"),
    ("unit", "unit_num"),
    ("municipality", "municipality"),
    ("community", "community"),
    ("postalCode", "postal_code"),
    ("arn", "roll_number"),
    ("status", "addr_status"),
    ("fullAddress", "full_address"),
    ("effectiveDate", "effective_date"),
];

/// Lower-tier municipalities: tenant id and the names the layer may use.
const MUNICIPALITIES: [(&str, &[&str]); 4] = [
    (
        "algonquin-highlands",
        &["algonquin highlands", "township of algonquin highlands"],
    ),
    (
        "dysart",
        &["dysart", "dysart et al", "municipality of dysart et al"],
    ),
    (
        "highlands-east",
        &["highlands east", "municipality of highlands east"],
    ),
    (
        "minden-hills",
        &["minden hills", "township of minden hills"],
    ),
];

/// The plugin configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// The civic address layer's name; features of other layers are dropped.
    #[serde(default = "default_layer")]
    pub layer_name: String,
    /// Attribute names by address property, overriding the defaults.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

fn default_layer() -> String {
    "Civic Address Points".into()
}

/// The `gis.asset.edited` members the mapping reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct AssetEdited {
    pub layer_name: String,
    #[serde(default)]
    pub edit_type: Option<String>,
    #[serde(default)]
    pub municipality: Option<String>,
    #[serde(default)]
    pub spatial_reference: Option<SpatialReference>,
    pub attributes: Map<String, Value>,
    #[serde(default)]
    pub geometry: Option<Map<String, Value>>,
}

/// Esri spatialReference.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct SpatialReference {
    pub wkid: u32,
    #[serde(default)]
    pub latest_wkid: Option<u32>,
}

/// The plugin.
#[derive(Debug)]
pub struct EsriToAddress {
    layer_name: String,
    fields: BTreeMap<&'static str, String>,
}

impl EsriToAddress {
    /// The plugin with a parsed configuration.
    pub fn new(config: Config) -> Result<Self, String> {
        let mut fields: BTreeMap<&'static str, String> = DEFAULT_FIELDS
            .iter()
            .map(|(p, a)| (*p, a.to_string()))
            .collect();
        for (property, attribute) in config.fields {
            let Some((p, _)) = DEFAULT_FIELDS.iter().find(|(p, _)| *p == property) else {
                return Err(format!(
                    "configuration: fields.{property} is not an address property (one of {})",
                    DEFAULT_FIELDS.map(|(p, _)| p).join(", ")
                ));
            };
            fields.insert(p, attribute);
        }
        Ok(EsriToAddress {
            layer_name: config.layer_name,
            fields,
        })
    }

    /// The mapping: zero or one address event for one feature edit.
    pub fn map(&self, input: &Event) -> Result<Option<Event>, Error> {
        if input.ty != ASSET_EDITED {
            bail!("expected {ASSET_EDITED}, got {}", input.ty);
        }
        let edit: AssetEdited = input.data_json()?;
        if edit.layer_name != self.layer_name {
            log::debug!(
                "layer {} is not {}: dropped",
                edit.layer_name,
                self.layer_name
            );
            return Ok(None);
        }
        let out_type = match edit.edit_type.as_deref() {
            None | Some("update") => ADDRESS_UPDATED,
            Some("add") => ADDRESS_CREATED,
            Some("delete") => {
                log::info!(
                    "address feature deleted in the GIS ({}); retirements are announced by the addressing workflow",
                    input.subject.as_deref().unwrap_or("?")
                );
                return Ok(None);
            }
            Some(other) => bail!("data.editType `{other}` is not add, update or delete"),
        };
        let attrs = &edit.attributes;

        let status = match self.text(attrs, "status")?.map(|s| s.to_ascii_lowercase()) {
            Some(s) if s == "active" || s == "proposed" => s,
            Some(s) if s == "retired" => {
                log::info!(
                    "address is retired: no {out_type}; the addressing workflow announces gis.address.retired"
                );
                return Ok(None);
            }
            Some(s) => bail!(
                "attribute {}: `{s}` is not Active, Proposed or Retired",
                self.fields["status"]
            ),
            None => bail!(
                "attribute {} (address status) is missing",
                self.fields["status"]
            ),
        };
        let id = match attrs.get(&self.fields["id"]) {
            Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= 64 => {
                Value::String(s.clone())
            }
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => {
                Value::Number(n.clone())
            }
            Some(other) => bail!(
                "attribute {}: {other} is not an address id",
                self.fields["id"]
            ),
            None => bail!("attribute {} (address id) is missing", self.fields["id"]),
        };
        let civic_number = match attrs.get(&self.fields["civicNumber"]) {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            _ => None,
        }
        .filter(|n| (1..=999_999).contains(n))
        .ok_or_else(|| {
            Error::terminal(format!(
                "attribute {} is not a civic number (1-999999)",
                self.fields["civicNumber"]
            ))
        })?;
        let street = self.text(attrs, "street")?.ok_or_else(|| {
            Error::terminal(format!(
                "attribute {} (street) is missing",
                self.fields["street"]
            ))
        })?;
        let municipality = match self
            .text(attrs, "municipality")?
            .or(edit.municipality.clone())
        {
            Some(m) => tenant_of(&m).ok_or_else(|| {
                Error::terminal(format!(
                    "municipality `{m}` is not a lower-tier municipality of the county"
                ))
            })?,
            None => bail!(
                "attribute {} (municipality) is missing",
                self.fields["municipality"]
            ),
        };

        let mut props = Map::new();
        props.insert("civicNumber".into(), json!(civic_number));
        let suffix = self
            .text(attrs, "civicNumberSuffix")?
            .map(|s| s.to_ascii_uppercase());
        if let Some(s) = &suffix {
            if !(s == "1/2" || (s.len() == 1 && s.as_bytes()[0].is_ascii_uppercase())) {
                bail!(
                    "attribute {}: `{s}` is not a civic number suffix (A-Z or 1/2)",
                    self.fields["civicNumberSuffix"]
                );
            }
            props.insert("civicNumberSuffix".into(), json!(s));
        }
        props.insert("street".into(), json!(street));
        let unit = self.text(attrs, "unit")?;
        if let Some(u) = &unit {
            props.insert("unit".into(), json!(u));
        }
        props.insert("municipality".into(), json!(municipality));
        let community = self.text(attrs, "community")?;
        if let Some(c) = &community {
            props.insert("community".into(), json!(c));
        }
        let postal = match self.text(attrs, "postalCode")? {
            Some(p) => Some(postal_code(&p).ok_or_else(|| {
                Error::terminal(format!(
                    "attribute {}: `{p}` is not a Canadian postal code",
                    self.fields["postalCode"]
                ))
            })?),
            None => None,
        };
        if let Some(p) = &postal {
            props.insert("postalCode".into(), json!(p));
        }
        let arn = match attrs.get(&self.fields["arn"]) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(s.trim().to_string()),
            Some(Value::Number(n)) => n.as_u64().map(|n| n.to_string()),
            Some(_) => None,
        };
        if let Some(arn) = arn {
            if arn.len() != 19 || !arn.bytes().all(|b| b.is_ascii_digit()) {
                bail!(
                    "attribute {}: `{arn}` is not a 19-digit roll number",
                    self.fields["arn"]
                );
            }
            props.insert("arn".into(), json!(arn));
        }
        props.insert("status".into(), json!(status));
        let full = match self.text(attrs, "fullAddress")? {
            Some(f) => f,
            None => {
                let mut f = String::new();
                if let Some(u) = &unit {
                    f.push_str(&format!("{u}-"));
                }
                f.push_str(&format!(
                    "{civic_number}{} {street}",
                    suffix.as_deref().unwrap_or("")
                ));
                if let Some(c) = &community {
                    f.push_str(&format!(", {c} ON"));
                }
                if let Some(p) = &postal {
                    f.push_str(&format!(" {p}"));
                }
                f
            }
        };
        props.insert("fullAddress".into(), json!(full));
        match attrs.get(&self.fields["effectiveDate"]) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_i64().is_some() => {
                let ms = n.as_i64().unwrap_or_default();
                props.insert("effectiveDate".into(), json!(date_of_epoch_millis(ms)));
            }
            Some(other) => bail!(
                "attribute {}: {other} is not an Esri date (epoch milliseconds)",
                self.fields["effectiveDate"]
            ),
        }

        let (lon, lat) = self.point(&edit)?;
        let feature = json!({
            "type": "Feature",
            "id": id,
            "geometry": { "type": "Point", "coordinates": [lon, lat] },
            "properties": props,
        });
        let subject = match &id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Event::derive(input, out_type)
            .subject(subject)
            .dataschema(catalogue_schema(out_type, 1))
            .json(&feature)
            .map(Some)
    }

    /// A non-empty text attribute (numbers are taken as their text).
    fn text(&self, attrs: &Map<String, Value>, property: &str) -> Result<Option<String>, Error> {
        let name = &self.fields[property];
        match attrs.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => bail!("attribute {name}: {other} is not text"),
        }
    }

    /// The address point as WGS84 (longitude, latitude).
    fn point(&self, edit: &AssetEdited) -> Result<(f64, f64), Error> {
        let Some(g) = &edit.geometry else {
            bail!("the address feature has no geometry");
        };
        let (Some(x), Some(y)) = (
            g.get("x").and_then(Value::as_f64),
            g.get("y").and_then(Value::as_f64),
        ) else {
            bail!("the address geometry is not an Esri point {{x, y}}");
        };
        let sr = match g.get("spatialReference") {
            Some(v) => serde_json::from_value::<SpatialReference>(v.clone())
                .map_err(|e| Error::terminal(format!("data.geometry.spatialReference: {e}")))?,
            None => edit.spatial_reference.ok_or_else(|| {
                Error::terminal(
                    "data.spatialReference is missing; the point's coordinate system is unknown",
                )
            })?,
        };
        let (lon, lat) = match sr.latest_wkid.unwrap_or(sr.wkid) {
            4326 => (x, y),
            3857 | 102100 => web_mercator_to_wgs84(x, y),
            other => bail!(
                "spatial reference {other} is not WGS84 (4326) or Web Mercator (3857); ask the feature service for outSR=4326"
            ),
        };
        if !(-180.0..=180.0).contains(&lon) || !(-90.0..=90.0).contains(&lat) {
            bail!("point ({lon}, {lat}) is outside WGS84 longitude/latitude");
        }
        Ok((round7(lon), round7(lat)))
    }
}

impl Transform for EsriToAddress {
    fn init(config: &str) -> Result<Self, String> {
        EsriToAddress::new(parse_config(config)?)
    }

    fn transform(&self, input: Event) -> Result<Vec<Event>, Error> {
        Ok(self.map(&input)?.into_iter().collect())
    }
}

civicbus_transform_sdk::export!(EsriToAddress);

/// A tenant id from a tenant id or a municipality's name (case-insensitive).
fn tenant_of(name: &str) -> Option<&'static str> {
    let lower = name.trim().to_ascii_lowercase();
    MUNICIPALITIES
        .iter()
        .find(|(id, names)| *id == lower || names.contains(&lower.as_str()))
        .map(|(id, _)| *id)
}

/// `K0M1S0` / `k0m 1s0` → `K0M 1S0`; `None` if it is not a Canadian postal code.
fn postal_code(s: &str) -> Option<String> {
    let compact: String = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let b = compact.as_bytes();
    let ok = b.len() == 6
        && b.iter().enumerate().all(|(i, c)| {
            if i % 2 == 0 {
                c.is_ascii_uppercase()
            } else {
                c.is_ascii_digit()
            }
        });
    ok.then(|| format!("{} {}", &compact[..3], &compact[3..]))
}

/// Spherical (Web) Mercator metres to WGS84 degrees.
fn web_mercator_to_wgs84(x: f64, y: f64) -> (f64, f64) {
    const R: f64 = 6_378_137.0;
    let lon = (x / R).to_degrees();
    let lat = (2.0 * (y / R).exp().atan() - std::f64::consts::FRAC_PI_2).to_degrees();
    (lon, lat)
}

/// Round to 7 decimals (about 1 cm), so native and WebAssembly maths agree.
fn round7(v: f64) -> f64 {
    (v * 1e7).round() / 1e7
}

/// The UTC calendar date (YYYY-MM-DD) of an instant in epoch milliseconds.
fn date_of_epoch_millis(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_from_epoch_millis() {
        assert_eq!(date_of_epoch_millis(0), "1970-01-01");
        assert_eq!(date_of_epoch_millis(1_795_534_930_000), "2026-11-24");
        assert_eq!(date_of_epoch_millis(1_796_083_200_000), "2026-12-01");
        assert_eq!(date_of_epoch_millis(951_782_400_000), "2000-02-29");
        assert_eq!(date_of_epoch_millis(-1), "1969-12-31");
    }

    #[test]
    fn web_mercator() {
        let (lon, lat) = web_mercator_to_wgs84(-8_740_127.368, 5_628_923.712);
        assert!((round7(lon) - -78.5139).abs() < 1e-6, "{lon}");
        assert!((round7(lat) - 45.047).abs() < 1e-6, "{lat}");
    }

    #[test]
    fn postal_codes_and_municipalities() {
        assert_eq!(postal_code("k0m1s0").as_deref(), Some("K0M 1S0"));
        assert_eq!(postal_code("K0M 1S0").as_deref(), Some("K0M 1S0"));
        assert_eq!(postal_code("K0M 1S"), None);
        assert_eq!(tenant_of("Dysart et al"), Some("dysart"));
        assert_eq!(tenant_of("minden-hills"), Some("minden-hills"));
        assert_eq!(tenant_of("county"), None);
    }

    #[test]
    fn unknown_field_mapping_is_refused() {
        let err = EsriToAddress::init(r#"{"fields": {"streetName": "st"}}"#).expect_err("bad");
        assert!(err.contains("fields.streetName"), "{err}");
    }
}
