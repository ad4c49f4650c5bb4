//! `civicbus demo`: the bus on a throw-away SQLite store against the local RabbitMQ, with
//! simulated municipal systems subscribed, fed realistic events over HTTP.
//!
//! Flow 1 (domain.md): a permit issued in Dysart's permitting system → the county's shared
//! records system declares the record → finance receipts the fee → GIS tags the parcel
//! (over AMQP). Flow 2: the county GIS updates an address → Minden Hills' permitting system
//! receives it (county GIS events are shared with every partner). Along the way: an event
//! from another municipality that Dysart's subscribers must not see, and a malformed event
//! that is refused with a problem+json naming the field.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use civicbus_broker::{Broker, BrokerOptions, Topology};
use civicbus_core::Filter;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::app;
use crate::auth::generate_secret;
use crate::config::{
    AmqpSinkConfig, Config, ShareConfig, SubscriptionConfig, TenantConfig, WebhookConfig,
    WebhookMode, resolve,
};
use crate::sim::WebhookSimulator;

const TENANTS: [(&str, &str); 5] = [
    ("county", "County of Haliburton"),
    ("algonquin-highlands", "Township of Algonquin Highlands"),
    ("dysart", "Municipality of Dysart et al"),
    ("highlands-east", "Municipality of Highlands East"),
    ("minden-hills", "Township of Minden Hills"),
];

fn exact_type(ty: &str) -> Filter {
    Filter::Exact(BTreeMap::from([("type".to_string(), ty.to_string())]))
}

fn attr(kind: fn(BTreeMap<String, String>) -> Filter, name: &str, v: &str) -> Filter {
    kind(BTreeMap::from([(name.to_string(), v.to_string())]))
}

/// Run the demo. Fails (non-zero exit) if RabbitMQ is unreachable or a delivery is missing.
pub async fn run(broker_url: String, keep: bool, plugins: PathBuf) -> anyhow::Result<()> {
    let prefix = format!("civicbus-demo-{}.", std::process::id());
    // Reachability first, with advice.
    let probe = tokio::time::timeout(
        Duration::from_secs(10),
        Broker::connect(
            &broker_url,
            Topology::new(prefix.clone()),
            BrokerOptions::default(),
        ),
    )
    .await;
    let probe = match probe {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => bail!(
            "{e}\nThe demo needs RabbitMQ: start it with `rabbitmq-server -detached` (or `systemctl start rabbitmq-server`), or point CIVICBUS_BROKER_URL at one."
        ),
        Err(_) => bail!(
            "RabbitMQ did not answer within 10s; start it with `rabbitmq-server -detached` or set CIVICBUS_BROKER_URL"
        ),
    };

    let dir = tempfile::Builder::new()
        .prefix("civicbus-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let db_path = dir.path().join("civicbus.db");

    // Simulated subscribing systems.
    let records_secret = generate_secret();
    let finance_secret = generate_secret();
    let minden_secret = generate_secret();
    let records =
        WebhookSimulator::start("county records (TOMRMS)", vec![records_secret.clone()]).await?;
    let finance = WebhookSimulator::start("county finance", vec![finance_secret.clone()]).await?;
    let minden =
        WebhookSimulator::start("minden-hills permitting", vec![minden_secret.clone()]).await?;

    // GIS listens on RabbitMQ.
    let gis_queue = format!("{prefix}gis-inbox");
    let gis_key = format!("{prefix}gis.permits");
    probe
        .declare_quorum_queue(&gis_queue)
        .await
        .context("cannot declare the simulated GIS queue")?;
    probe
        .bind_queue(&gis_queue, "amq.topic", &gis_key)
        .await
        .context("cannot bind the simulated GIS queue")?;
    let gis_seen: Arc<Mutex<Vec<(String, String, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let gis_task = {
        let stream = probe
            .consume(&gis_queue, "demo-gis", 16)
            .await
            .context("cannot consume the simulated GIS queue")?;
        let seen = gis_seen.clone();
        tokio::spawn(async move {
            let mut stream = Box::pin(stream);
            while let Some(Ok(msg)) = stream.next().await {
                let ev = civicbus_core::wire::from_amqp(&msg, &Default::default()).ok();
                if let (Some(ev), Ok(mut s)) = (ev, seen.lock()) {
                    s.push((
                        msg.header("webhook-id").unwrap_or_default().to_string(),
                        ev.ty.clone(),
                        ev.subject.clone().unwrap_or_default(),
                    ));
                }
                let _ = msg.acker.ack().await;
            }
        })
    };

    // Configuration: the county and its partners, built in code with fresh credentials.
    let mut tokens = BTreeMap::new();
    let mut cfg = Config::default();
    cfg.api.listen = "127.0.0.1:0".parse().context("bad listen address")?;
    cfg.broker.url = broker_url.clone();
    cfg.broker.prefix = prefix.clone();
    cfg.store.url = format!("sqlite://{}", db_path.display());
    cfg.delivery.retry.initial_backoff = Duration::from_secs(1);
    cfg.delivery.retry.multiplier = 2.0;
    for (id, name) in TENANTS {
        let (mut t, token) = TenantConfig::with_new_token(id, name);
        if id == "county" {
            t.shares.push(ShareConfig {
                type_prefix: "ca.haliburton.gis.".into(),
                with: vec!["*".into()],
            });
        }
        if id == "dysart" {
            // Dysart's permits go to the county's shared records, finance and GIS.
            t.shares.push(ShareConfig {
                type_prefix: "ca.haliburton.permitting.".into(),
                with: vec!["county".into()],
            });
        }
        tokens.insert(id, token);
        cfg.tenants.push(t);
    }
    let webhook = |url: String, secret: &str, mode| WebhookConfig {
        url,
        secrets: vec![secret.to_string()],
        secrets_env: vec![],
        mode,
        timeout: Some(Duration::from_secs(5)),
    };
    cfg.subscriptions = vec![
        SubscriptionConfig {
            id: "records-permits".into(),
            tenant: "county".into(),
            filters: vec![
                exact_type("ca.haliburton.permitting.permit.issued"),
                attr(Filter::Exact, "tenant", "dysart"),
            ],
            concurrency: Some(4),
            webhook: Some(webhook(records.url(), &records_secret, WebhookMode::Binary)),
            amqp: None,
            retry: None,
            health: None,
            ordering: Default::default(),
            transforms: Vec::new(),
        },
        SubscriptionConfig {
            id: "finance-permit-fees".into(),
            tenant: "county".into(),
            filters: vec![
                attr(Filter::Prefix, "type", "ca.haliburton.permitting.permit."),
                Filter::Any(vec![
                    attr(Filter::Suffix, "type", ".fee-assessed"),
                    attr(Filter::Suffix, "type", ".issued"),
                ]),
            ],
            concurrency: None,
            webhook: Some(webhook(
                finance.url(),
                &finance_secret,
                WebhookMode::Structured,
            )),
            amqp: None,
            retry: None,
            health: None,
            ordering: Default::default(),
            transforms: Vec::new(),
        },
        SubscriptionConfig {
            id: "gis-parcel-tags".into(),
            tenant: "county".into(),
            filters: vec![exact_type("ca.haliburton.permitting.permit.issued")],
            concurrency: None,
            webhook: None,
            amqp: Some(AmqpSinkConfig {
                exchange: "amq.topic".into(),
                routing_key: Some(gis_key.clone()),
            }),
            retry: None,
            health: None,
            ordering: Default::default(),
            transforms: Vec::new(),
        },
        SubscriptionConfig {
            id: "permitting-addresses".into(),
            tenant: "minden-hills".into(),
            filters: vec![attr(Filter::Prefix, "type", "ca.haliburton.gis.address.")],
            concurrency: None,
            webhook: Some(webhook(minden.url(), &minden_secret, WebhookMode::Binary)),
            amqp: None,
            retry: None,
            health: None,
            ordering: Default::default(),
            transforms: Vec::new(),
        },
    ];
    // The county records system receives records declarations, mapped from the permits by
    // the example WebAssembly plugin `permit-to-record`, when it is built.
    let plugin = plugins.join("permit-to-record.wasm");
    let transformed = plugin.is_file();
    if transformed {
        cfg.transforms.cache_dir = Some(dir.path().join("wasm-cache"));
        cfg.plugins.push(crate::config::PluginConfig {
            name: "permit-to-record".into(),
            path: plugin.clone(),
            digest: None,
            config: Some(
                r#"documentUrl = "https://permits.{municipality}.example.ca/permits/{PermitNum}/document""#
                    .parse::<toml::Table>()
                    .context("demo plugin configuration")?,
            ),
        });
        if let Some(s) = cfg.subscriptions.first_mut() {
            s.transforms = vec!["permit-to-record".into()];
        }
    }
    let env = BTreeMap::new();
    let problems = crate::config::check(&cfg, &env);
    if let Some(p) = problems.iter().find(|p| !p.warning) {
        bail!("demo configuration is invalid: {p}");
    }
    let resolved = resolve(&cfg, &env);
    let keys: Vec<String> = resolved.subscriptions.iter().map(|s| s.key()).collect();
    let bus = app::start(&cfg, resolved).await?;
    let base = format!("http://{}", bus.api_addr());
    println!(
        "civicbus demo: bus at {base}, RabbitMQ prefix `{prefix}`, store {}",
        db_path.display()
    );
    if transformed {
        println!(
            "transform: county records receives records declarations mapped from Dysart's permits by {} (WebAssembly, sandboxed)",
            plugin.display()
        );
    } else {
        println!(
            "transform: skipped ({} not found; `bash transforms/examples/build.sh` builds it)",
            plugin.display()
        );
    }
    println!();

    let client = reqwest::Client::new();
    let mut outcome = Ok(());
    let events = demo_events();
    println!("PUBLISHED");
    table_row(&[("tenant", 16), ("type", 54), ("subject", 20), ("answer", 0)]);
    for (tenant, ev) in &events {
        let resp = client
            .post(format!("{base}/v1/events"))
            .bearer_auth(&tokens[tenant])
            .header("content-type", "application/cloudevents+json")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .body(ev.to_string())
            .send()
            .await
            .context("cannot reach the demo bus")?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let answer = if status.is_success() {
            status.to_string()
        } else {
            let fields: Vec<&str> = body["errors"]
                .as_array()
                .map(|e| e.iter().filter_map(|e| e["field"].as_str()).collect())
                .unwrap_or_default();
            let detail = body["detail"].as_str().unwrap_or("");
            if fields.len() > 1 {
                format!("{status}: {detail} [{}]", fields.join(", "))
            } else {
                format!("{status}: {detail}")
            }
        };
        println!(
            "{:<16} {:<54} {:<20} {}",
            tenant,
            ev["type"].as_str().unwrap_or("(none)"),
            ev["subject"].as_str().unwrap_or("-"),
            answer
        );
    }
    println!();

    // Expected: records 2 (issued), finance 3 (fee-assessed + 2 issued), GIS 2 (issued),
    // Minden Hills 1 (county address update).
    let wait = Duration::from_secs(30);
    let ok_records = records.wait_for(2, wait).await;
    let ok_finance = finance.wait_for(3, wait).await;
    let ok_minden = minden.wait_for(1, wait).await;
    let deadline = tokio::time::Instant::now() + wait;
    while gis_seen.lock().map(|s| s.len()).unwrap_or(0) < 2
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ok_gis = gis_seen.lock().map(|s| s.len() >= 2).unwrap_or(false);

    println!("DELIVERED");
    table_row(&[
        ("system", 26),
        ("via", 10),
        ("type", 54),
        ("subject", 20),
        ("webhook-id", 36),
        ("signature", 0),
    ]);
    for sim in [&records, &finance, &minden] {
        for r in sim.received() {
            let (ty, subject) = r
                .event
                .as_ref()
                .map(|e| (e.ty.clone(), e.subject.clone().unwrap_or_default()))
                .unwrap_or_default();
            println!(
                "{:<26} {:<10} {:<54} {:<20} {:<36} {}",
                r.system,
                format!("http/{}", &r.mode[..3]),
                ty,
                subject,
                r.webhook_id,
                if r.verified { "verified" } else { "INVALID" }
            );
        }
    }
    if let Ok(seen) = gis_seen.lock() {
        for (id, ty, subject) in seen.iter() {
            table_row(&[
                ("county GIS", 26),
                ("amqp", 10),
                (ty, 54),
                (subject, 20),
                (id, 36),
                ("-", 0),
            ]);
        }
    }
    println!();

    let store = bus.store();
    let archived = civicbus_core::ports::EventStore::count_events(store.as_ref(), None)
        .await
        .unwrap_or(0);
    println!(
        "archive: {archived} events in {}; audit chain: {}",
        db_path.display(),
        match store.verify_audit().await {
            Ok(v) if v.is_intact() => format!("intact ({} entries)", v.checked),
            Ok(_) => "BROKEN".to_string(),
            Err(e) => format!("cannot verify: {e}"),
        }
    );
    let leaked = records
        .received()
        .iter()
        .chain(finance.received().iter())
        .filter_map(|r| r.event.as_ref())
        .filter(|e| e.tenant() == Some("highlands-east"))
        .count();
    println!(
        "isolation: Highlands East's permit reached {leaked} of the county's subscriptions to Dysart permits (expected 0)"
    );

    if !(ok_records && ok_finance && ok_minden && ok_gis) || leaked > 0 {
        outcome = Err(anyhow::anyhow!(
            "some expected deliveries did not arrive within {}s (records {ok_records}, finance {ok_finance}, minden {ok_minden}, gis {ok_gis})",
            wait.as_secs()
        ));
    }

    bus.stop().await;
    gis_task.abort();
    let _ = probe.delete_queue(&gis_queue).await;
    let _ = probe.teardown(&keys).await;
    let _ = probe.close().await;
    if keep {
        let kept = dir.keep();
        println!("store kept in {}", kept.display());
    }
    if outcome.is_ok() {
        println!("demo: all expected deliveries arrived, signed and verified");
    }
    outcome
}

fn demo_events() -> Vec<(&'static str, Value)> {
    let now = chrono::Utc::now();
    let t = |mins: i64| (now - chrono::Duration::minutes(mins)).to_rfc3339();
    let permit = |num: &str, status: &str, mapped: &str, fee: &str, address: &str, arn: &str| {
        let mut data = json!({
            "PermitNum": num,
            "Description": "Single detached dwelling with attached garage",
            "AppliedDate": "2026-10-02",
            "FeeAssessedDate": "2026-11-20",
            "StatusCurrent": status,
            "StatusCurrentMapped": mapped,
            "OriginalAddress1": address,
            "OriginalCity": "Haliburton",
            "OriginalState": "ON",
            "OriginalZip": "K0M 1S0",
            "Jurisdiction": if num.starts_with("HE-") { "highlands-east" } else { "dysart" },
            "PermitType": "Building - Residential",
            "PermitTypeMapped": "Building",
            "PermitClassMapped": "Residential",
            "WorkClassMapped": "New",
            "EstProjectCost": "485000.00",
            "TotalSqFt": 2150,
            "HousingUnits": 1,
            "Fee": fee,
            "PIN": arn,
            "Latitude": 45.0497,
            "Longitude": -78.5089
        });
        if status == "Issued" {
            data["IssuedDate"] = Value::String(now.date_naive().to_string());
        }
        data
    };
    let ce = |id: &str, source: &str, ty: &str, subject: &str, data: Value, mins: i64| {
        json!({
            "specversion": "1.0",
            "id": id,
            "source": source,
            "type": ty,
            "subject": subject,
            "time": t(mins),
            "datacontenttype": "application/json",
            "data": data,
        })
    };
    vec![
        (
            "dysart",
            ce(
                "dys-9001",
                "/dysart/permitting",
                "ca.haliburton.permitting.permit.application-submitted",
                "BP-2026-0147",
                permit(
                    "BP-2026-0147",
                    "Submitted",
                    "Application Accepted",
                    "2150.00",
                    "1021 Kennisis Lake Rd",
                    "4624010001023000000",
                ),
                30,
            ),
        ),
        (
            "dysart",
            ce(
                "dys-9002",
                "/dysart/permitting",
                "ca.haliburton.permitting.permit.fee-assessed",
                "BP-2026-0147",
                permit(
                    "BP-2026-0147",
                    "Fees Due",
                    "Fees/Payment",
                    "2150.00",
                    "1021 Kennisis Lake Rd",
                    "4624010001023000000",
                ),
                20,
            ),
        ),
        (
            "dysart",
            ce(
                "dys-9003",
                "/dysart/permitting",
                "ca.haliburton.permitting.permit.issued",
                "BP-2026-0147",
                permit(
                    "BP-2026-0147",
                    "Issued",
                    "Permit Issued",
                    "2150.00",
                    "1021 Kennisis Lake Rd",
                    "4624010001023000000",
                ),
                10,
            ),
        ),
        (
            "dysart",
            ce(
                "dys-9010",
                "/dysart/permitting",
                "ca.haliburton.permitting.permit.issued",
                "BP-2026-0152",
                permit(
                    "BP-2026-0152",
                    "Issued",
                    "Permit Issued",
                    "980.00",
                    "77 Maple Ave",
                    "4624010002011000000",
                ),
                5,
            ),
        ),
        (
            "highlands-east",
            ce(
                "he-551",
                "/highlands-east/permitting",
                "ca.haliburton.permitting.permit.issued",
                "HE-2026-0031",
                permit(
                    "HE-2026-0031",
                    "Issued",
                    "Permit Issued",
                    "640.00",
                    "12 Glamorgan Rd",
                    "4616010004005000000",
                ),
                4,
            ),
        ),
        (
            "county",
            ce(
                "gis-77120",
                "/county/gis",
                "ca.haliburton.gis.address.updated",
                "4616020003007000000",
                json!({
                    "type": "Feature",
                    "id": "addr-55102",
                    "geometry": { "type": "Point", "coordinates": [-78.6339, 44.9551] },
                    "properties": {
                        "civicNumber": 7, "street": "Bobcaygeon Rd",
                        "municipality": "minden-hills", "community": "Minden",
                        "postalCode": "K0M 2K0",
                        "arn": "4616020003007000000", "status": "active"
                    }
                }),
                3,
            ),
        ),
        // Data that breaks its schema: the fee as a number (money is a decimal string)
        // and a land-registry PIN where BLDS's PIN holds the roll number. Refused with
        // 422, every violation listed.
        (
            "dysart",
            ce(
                "dys-bad-2",
                "/dysart/permitting",
                "ca.haliburton.permitting.permit.issued",
                "BP-2026-0198",
                {
                    let mut d = permit(
                        "BP-2026-0198",
                        "Issued",
                        "Permit Issued",
                        "0.00",
                        "3 Dysart Ave",
                        "4624010009001000000",
                    );
                    d["Fee"] = json!(2150);
                    d["PIN"] = json!("39112-0345");
                    d
                },
                2,
            ),
        ),
        // A malformed event: no `source`. The bus refuses it with a problem+json naming the field.
        (
            "dysart",
            json!({
                "specversion": "1.0", "id": "dys-bad-1",
                "type": "ca.haliburton.permitting.permit.issued", "subject": "BP-2026-0199"
            }),
        ),
    ]
}

/// Print one row of a plain table: each cell left-aligned in its width (0 = as is).
fn table_row(cells: &[(&str, usize)]) {
    let line: Vec<String> = cells
        .iter()
        .map(|(text, width)| format!("{text:<width$}"))
        .collect();
    println!("{}", line.join(" ").trim_end());
}

#[cfg(test)]
mod tests {
    use super::*;
    use civicbus_schemas::{Catalogue, Lookup};

    #[test]
    fn demo_events_match_the_catalogue_except_the_bad_ones() {
        let catalogue = Catalogue::load_with(true, &[]).expect("catalogue");
        for (_, ev) in demo_events() {
            let id = ev["id"].as_str().unwrap_or_default().to_string();
            let ty = ev["type"].as_str().unwrap_or_default();
            let Lookup::Found(schema) = catalogue.lookup(ty, None) else {
                panic!("{id}: no schema for {ty}")
            };
            let violations = schema.violations(&ev["data"]);
            if id.starts_with("dys-bad-2") {
                assert_eq!(violations.len(), 2, "{violations:?}");
            } else if !id.starts_with("dys-bad") {
                assert!(violations.is_empty(), "{id}: {violations:?}");
            }
        }
    }
}
