//! Cost of schema validation per event, next to the cost of parsing the event's JSON
//! (which ingest does anyway), in the same process:
//!
//! ```sh
//! cargo run --release -p civicbus-schemas --bin schema-bench [ITERATIONS]
//! ```
//!
//! The event is a typical ~1 KiB BLDS `permit.issued`; the validator is compiled once,
//! as in the bus. Prints ns per event for: parsing the JSON (baseline), validating a
//! valid event through the enforcer (lookup + validation), and listing every violation
//! of an invalid one.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use civicbus_core::ports::DataValidator;
use civicbus_schemas::{Enforcer, SchemaRegistry, UnknownTypePolicy};
use serde_json::{Value, json};

fn event() -> Value {
    json!({
        "specversion": "1.0",
        "id": "dys-9003",
        "source": "/dysart/permitting",
        "type": "ca.haliburton.permitting.permit.issued",
        "subject": "BP-2026-0147",
        "time": "2026-11-25T14:03:00Z",
        "datacontenttype": "application/json",
        "data": {
            "PermitNum": "BP-2026-0147",
            "Description": "Single detached dwelling with attached garage, septic and well; lakefront lot with shoreline setback conditions",
            "AppliedDate": "2026-10-02",
            "IssuedDate": "2026-11-25",
            "StatusCurrent": "Issued",
            "StatusCurrentMapped": "Permit Issued",
            "OriginalAddress1": "1021 Kennisis Lake Rd",
            "OriginalCity": "Haliburton",
            "OriginalState": "ON",
            "OriginalZip": "K0M 1S0",
            "Jurisdiction": "dysart",
            "PermitType": "Building - Residential",
            "PermitTypeMapped": "Building",
            "PermitClassMapped": "Residential",
            "WorkClassMapped": "New",
            "EstProjectCost": "485000.00",
            "TotalSqFt": 2150,
            "HousingUnits": 1,
            "Fee": "2150.00",
            "PIN": "4624010001023000000",
            "Latitude": 45.0497,
            "Longitude": -78.5089,
            "ContractorCompanyName": "Highlands Custom Homes Ltd."
        }
    })
}

fn time<F: FnMut()>(iterations: u32, mut f: F) -> f64 {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(iterations)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: u32 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200_000);
    let registry = Arc::new(SchemaRegistry::load_with(true, Vec::new())?);
    let enforcer = Enforcer::new(registry, UnknownTypePolicy::Reject, BTreeMap::new());
    let text = event().to_string();
    let parsed: civicbus_core::CloudEvent =
        civicbus_core::binding::parse_structured(text.as_bytes(), &Default::default())?;
    let mut invalid = parsed.clone();
    if let Some(civicbus_core::Data::Json(d)) = invalid.data.as_mut() {
        d["Fee"] = json!(2150);
        d["PIN"] = json!("39112-0345");
    }
    if enforcer.check("dysart", &parsed).is_err() || enforcer.check("dysart", &invalid).is_ok() {
        return Err("the benchmark events are not what they should be".into());
    }

    let parse = time(iterations, || {
        black_box(
            civicbus_core::binding::parse_structured(
                black_box(text.as_bytes()),
                &Default::default(),
            )
            .ok(),
        );
    });
    let valid = time(iterations, || {
        black_box(enforcer.check("dysart", black_box(&parsed)).is_ok());
    });
    let rejected = time(iterations, || {
        black_box(enforcer.check("dysart", black_box(&invalid)).err());
    });
    println!(
        "event: {} bytes structured, validator compiled once, {iterations} iterations",
        text.len()
    );
    println!("{:<48} {:>12} {:>10}", "step", "ns/event", "ratio");
    println!(
        "{:<48} {:>12.0} {:>10}",
        "parse the CloudEvent JSON (baseline)", parse, "1.00x"
    );
    println!(
        "{:<48} {:>12.0} {:>9.2}x",
        "validate a valid event (lookup + schema)",
        valid,
        valid / parse
    );
    println!(
        "{:<48} {:>12.0} {:>9.2}x",
        "reject an invalid one (every violation listed)",
        rejected,
        rejected / parse
    );
    println!("reproduce: cargo run --release -p civicbus-schemas --bin schema-bench {iterations}");
    Ok(())
}
