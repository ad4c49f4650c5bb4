//! The example plugin of README.md ("A complete plugin"), compiled and tested as it is
//! written there; `readme_block_matches` keeps the two copies the same.
#![allow(clippy::unwrap_used)]

// README block start
use civicbus_transform_sdk::{Error, Event, Transform, bail, catalogue_schema, log, parse_config};
use serde::Deserialize;
use serde_json::json;

const PERMIT_ISSUED: &str = "ca.haliburton.permitting.permit.issued";
const PARCEL_UPDATED: &str = "ca.haliburton.gis.parcel.updated";

/// Static configuration, e.g. `{"source": "/county/gis/permit-tags"}`; all optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `source` of the outputs (default: the input's).
    #[serde(default)]
    source: Option<String>,
}

/// The BLDS permit fields this plugin reads; serde ignores the others.
#[derive(Deserialize)]
struct Permit {
    #[serde(rename = "PermitNum")]
    permit_num: String,
    /// BLDS PIN: in Ontario, the 19-digit assessment roll number.
    #[serde(rename = "PIN")]
    roll_number: String,
    #[serde(rename = "IssuedDate")]
    issued_date: String,
    #[serde(rename = "Jurisdiction", default)]
    jurisdiction: Option<String>,
}

/// A permit issued → its parcel tagged `permit:<PermitNum>` in the GIS
/// (`ca.haliburton.gis.parcel.updated`, attributes only).
pub struct PermitParcelTag {
    config: Config,
}

impl Transform for PermitParcelTag {
    fn init(config: &str) -> Result<Self, String> {
        Ok(PermitParcelTag {
            config: parse_config(config)?,
        })
    }

    fn transform(&self, input: Event) -> Result<Vec<Event>, Error> {
        if input.ty != PERMIT_ISSUED {
            bail!("expected {PERMIT_ISSUED}, got {}", input.ty);
        }
        let permit: Permit = input.data_json()?; // terminal error naming the field if it does not fit
        let Some(municipality) = permit.jurisdiction.as_deref().or(input.tenant()) else {
            bail!("permit {} names no municipality", permit.permit_num);
        };
        log::debug!(
            "tagging parcel {} with permit {}",
            permit.roll_number,
            permit.permit_num
        );
        let parcel = json!({
            "type": "Feature",
            "id": permit.roll_number,
            "geometry": null,
            "properties": {
                "arn": permit.roll_number,
                "municipality": municipality,
                "tags": [format!("permit:{}", permit.permit_num)],
                "effectiveDate": permit.issued_date,
            }
        });
        let mut out = Event::derive(&input, PARCEL_UPDATED)
            .subject(&permit.roll_number)
            .dataschema(catalogue_schema(PARCEL_UPDATED, 1));
        if let Some(source) = &self.config.source {
            out = out.source(source);
        }
        Ok(vec![out.json(&parcel)?])
    }
}

civicbus_transform_sdk::export!(PermitParcelTag);

#[cfg(test)]
mod tests {
    use super::*;

    const INPUT: &str = r#"{
        "specversion": "1.0", "id": "dys-778", "source": "/dysart/permitting",
        "type": "ca.haliburton.permitting.permit.issued", "subject": "DYS-BP-2026-0142",
        "time": "2026-05-14T10:02:11-04:00", "tenant": "dysart",
        "data": { "PermitNum": "DYS-BP-2026-0142", "PIN": "4624010003145000000",
                  "IssuedDate": "2026-05-14", "Description": "New cottage",
                  "PermitTypeMapped": "Building", "OriginalAddress1": "1042 Kashagawigamog Lake Rd",
                  "OriginalCity": "Haliburton" }
    }"#;

    #[test]
    fn tags_the_parcel() {
        let plugin = PermitParcelTag::init(r#"{"source": "/county/gis/permit-tags"}"#).unwrap();
        let input = Event::from_structured_str(INPUT).unwrap();
        // `run` is what the exported component does: transform, then check the outputs.
        let out = civicbus_transform_sdk::run(&plugin, input).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id, "dys-778:ca.haliburton.gis.parcel.updated");
        assert_eq!(out[0].subject.as_deref(), Some("4624010003145000000"));
        assert_eq!(out[0].causationid(), Some("dys-778"));
        let data = out[0].data_value().unwrap();
        assert_eq!(data["properties"]["tags"][0], "permit:DYS-BP-2026-0142");
        assert_eq!(data["properties"]["municipality"], "dysart");
    }

    #[test]
    fn a_permit_without_a_roll_number_is_dead_lettered() {
        let plugin = PermitParcelTag::init("{}").unwrap();
        let input =
            Event::from_structured_str(&INPUT.replace(r#""PIN": "4624010003145000000","#, ""))
                .unwrap();
        let err = civicbus_transform_sdk::run(&plugin, input).unwrap_err();
        assert!(err.is_terminal());
        assert_eq!(err.message(), "data: missing field `PIN`");
    }
}
// README block end

/// The README's `src/lib.rs` block is this file between the markers.
#[test]
fn readme_block_matches() {
    let readme = include_str!("../README.md");
    let start = readme
        .find("```rust\nuse civicbus_transform_sdk::")
        .expect("README has the lib.rs block")
        + "```rust\n".len();
    let len = readme[start..].find("```\n").expect("block end");
    let this = include_str!("readme_example.rs");
    let from = this.find("// README block start\n").expect("start marker")
        + "// README block start\n".len();
    let to = this.find("// README block end").expect("end marker");
    assert_eq!(
        readme[start..start + len].trim(),
        this[from..to].trim(),
        "README.md and tests/readme_example.rs differ"
    );
}
