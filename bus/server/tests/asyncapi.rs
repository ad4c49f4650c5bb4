//! The AsyncAPI 3.0 document of the bus: its shape for a configuration with a webhook and
//! an AMQP subscription (queues with AMQP bindings, messages for the catalogue's types,
//! no credentials, no `$ref` leaving the document), and a check by the official AsyncAPI
//! parser (`scripts/asyncapi/validate.mjs`, `@asyncapi/parser`) of the document for the
//! example configuration — which also checks, with Ajv, that the draft-07 conversion of
//! each catalogue schema accepts the catalogue's `valid-*` examples and refuses its
//! `invalid-*` ones.
//!
//! The second test needs Node.js and `npm ci --prefix scripts/asyncapi`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use civicbus_schemas::Catalogue;
use civicbus_server::asyncapi;
use civicbus_server::config::{self, Config, EXAMPLE};
use serde_json::{Value, json};

const BROKER_PASSWORD: &str = "s3cret-broker-pw";
const WEBHOOK_PASSWORD: &str = "hook-pa55";
const QUERY_TOKEN: &str = "q-token-123";
const SIGNING_SECRET: &str = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw==";
const TOKEN_SHA256: &str = "3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a";

fn test_config() -> Config {
    let toml = format!(
        r#"
[api]
listen = "127.0.0.1:18080"

[broker]
url = "amqp://civicbus-svc:{BROKER_PASSWORD}@rabbit.example:5672/civic"
prefix = "t1."

[[tenants]]
id = "county"
name = "County of Haliburton"
amqp_users = ["county-gis"]
tokens = [{{ name = "county-gis", sha256 = "{TOKEN_SHA256}" }}]

[[tenants]]
id = "dysart"
name = "Municipality of Dysart et al"
amqp_users = ["dysart-permitting"]

[[subscriptions]]
id = "records-permits"
tenant = "dysart"
filters = [{{ exact = {{ type = "ca.haliburton.permitting.permit.issued" }} }}]
[subscriptions.webhook]
url = "https://hookuser-x9:{WEBHOOK_PASSWORD}@records.example:8443/hooks/permits?token={QUERY_TOKEN}#frag"
secrets = ["{SIGNING_SECRET}"]

[[subscriptions]]
id = "gis-work"
tenant = "county"
filters = [{{ prefix = {{ type = "ca.haliburton.workorder." }} }}]
[subscriptions.amqp]
exchange = "gis.in"
"#
    );
    let loaded = config::load_str(&toml, &BTreeMap::new());
    assert!(
        !loaded.has_errors(),
        "the test configuration has errors: {:?}",
        loaded.problems
    );
    loaded.config.expect("the test configuration loads")
}

fn catalogue() -> Catalogue {
    Catalogue::load_with(true, &[]).expect("the built-in catalogue loads")
}

/// Every string value under a `$ref` key.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if k == "$ref" {
                    if let Some(r) = child.as_str() {
                        out.push(r.to_string());
                    }
                } else {
                    refs(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|c| refs(c, out)),
        _ => {}
    }
}

/// Every object key anywhere in `v`.
fn all_keys(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                out.insert(k.clone());
                all_keys(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|c| all_keys(c, out)),
        _ => {}
    }
}

/// The catalogue's example instances (`<domain>/examples/<type>.v<N>/{valid,invalid}-*.json`)
/// as `validate.mjs --instances` takes them: the schema is `components.schemas.<type>.v<N>`.
fn catalogue_instances() -> Vec<Value> {
    fn walk(dir: &Path, out: &mut Vec<Value>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            if !path.is_dir() {
                continue;
            }
            if path.file_name().is_some_and(|n| n == "examples") {
                for example_dir in std::fs::read_dir(&path).expect("examples dir").flatten() {
                    if !example_dir.path().is_dir() {
                        continue;
                    }
                    let schema = example_dir.file_name().to_string_lossy().to_string();
                    let mut files: Vec<PathBuf> = std::fs::read_dir(example_dir.path())
                        .expect("examples of a schema")
                        .flatten()
                        .map(|e| e.path())
                        .collect();
                    files.sort();
                    for file in files {
                        let name = file
                            .file_name()
                            .map(|n| n.to_string_lossy().to_string())
                            .unwrap_or_default();
                        let valid = if name.starts_with("valid-") {
                            true
                        } else if name.starts_with("invalid-") {
                            false
                        } else {
                            continue;
                        };
                        if !name.ends_with(".json") {
                            continue;
                        }
                        let text = std::fs::read_to_string(&file).expect("example reads");
                        let instance: Value = serde_json::from_str(&text)
                            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                        out.push(json!({
                            "schema": schema,
                            "name": format!("{schema}/{name}"),
                            "valid": valid,
                            "instance": instance,
                        }));
                    }
                }
            } else if !path
                .file_name()
                .is_some_and(|n| n == "src" || n == "target")
            {
                walk(&path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&civicbus_schemas::registry::builtin_dir(), &mut out);
    out
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn document_describes_queues_sinks_and_catalogue_messages() {
    let config = test_config();
    let catalogue = catalogue();
    let doc = asyncapi::document(&config, &catalogue);

    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(doc["info"]["title"], "civicbus");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    // Servers: the broker without credentials, the HTTP API.
    let rabbit = &doc["servers"]["rabbitmq"];
    assert_eq!(rabbit["host"], "rabbit.example:5672");
    assert_eq!(rabbit["protocol"], "amqp");
    assert_eq!(rabbit["protocolVersion"], "0-9-1");
    assert_eq!(doc["servers"]["api"]["host"], "127.0.0.1:18080");
    assert_eq!(doc["servers"]["api"]["protocol"], "http");

    // Messages: one per catalogue schema, headers and payload as CloudEvents.
    let messages = &doc["components"]["messages"];
    assert!(!catalogue.is_empty());
    for s in catalogue.schemas() {
        let key = format!("{}.v{}", s.ty, s.version);
        let m = &messages[&key];
        assert_eq!(m["name"], key.as_str(), "message {key}");
        assert_eq!(m["contentType"], "application/cloudevents+json");
        assert_eq!(
            m["headers"]["properties"]["cloudEvents_type"]["const"],
            s.ty.as_str()
        );
        assert_eq!(
            m["headers"]["properties"]["cloudEvents_dataschema"]["const"],
            s.id.as_str()
        );
        for h in [
            "cloudEvents_id",
            "cloudEvents_source",
            "cloudEvents_subject",
            "cloudEvents_tenant",
            "cloudEvents_time",
            "webhook-id",
        ] {
            assert!(
                m["headers"]["properties"].get(h).is_some(),
                "{key} lacks header {h}"
            );
        }
        assert_eq!(
            m["payload"]["schemaFormat"],
            "application/schema+json;version=draft-07"
        );
        let data_ref = m["payload"]["schema"]["properties"]["data"]["$ref"]
            .as_str()
            .expect("the payload's data refers to the event schema");
        assert_eq!(data_ref, format!("#/components/schemas/{key}/schema"));
        assert!(
            doc["components"]["schemas"][&key]["schema"].is_object(),
            "components.schemas.{key}"
        );
    }
    // The shared documents are there too.
    for id in catalogue.shared().keys() {
        let name = id
            .trim_start_matches("https://civicbus.haliburton.ca/schemas/")
            .replace('/', ".");
        assert!(
            doc["components"]["schemas"][&name]["schema"].is_object(),
            "shared schema {id} is not in components.schemas.{name}"
        );
    }

    // The bus's exchanges and queues, with the prefix.
    let channels = &doc["channels"];
    let ingress = &channels["ingress"]["bindings"]["amqp"];
    assert_eq!(ingress["is"], "routingKey");
    assert_eq!(ingress["exchange"]["name"], "t1.civicbus.ingress");
    assert_eq!(ingress["exchange"]["type"], "topic");
    assert_eq!(ingress["exchange"]["vhost"], "civic");
    assert_eq!(ingress["bindingVersion"], "0.3.0");
    assert_eq!(
        channels["events"]["bindings"]["amqp"]["exchange"]["name"],
        "t1.civicbus.events"
    );
    assert_eq!(channels["events"]["address"], "{tenant}.{type}");
    assert_eq!(channels["route"]["address"], "t1.civicbus.route");
    assert_eq!(channels["http.events"]["address"], "/v1/events");
    let all_types: BTreeSet<String> = catalogue
        .schemas()
        .map(|s| format!("{}.v{}", s.ty, s.version))
        .collect();
    assert!(keys(&channels["ingress"]["messages"]).is_superset(&all_types));

    // A channel per subscription queue and dead-letter queue, with AMQP bindings.
    for (key, sub) in [
        (
            "dysart.records-permits",
            "subscription.dysart.records-permits",
        ),
        ("county.gis-work", "subscription.county.gis-work"),
    ] {
        for (channel, queue) in [
            (sub.to_string(), format!("t1.civicbus.sub.{key}")),
            (format!("{sub}.dead"), format!("t1.civicbus.sub.{key}.dead")),
        ] {
            let c = &channels[&channel];
            assert_eq!(c["address"], queue.as_str(), "channel {channel}");
            let b = &c["bindings"]["amqp"];
            assert_eq!(b["is"], "queue", "channel {channel}");
            assert_eq!(b["queue"]["name"], queue.as_str());
            assert_eq!(b["queue"]["durable"], true);
            assert_eq!(b["bindingVersion"], "0.3.0");
        }
    }

    // The webhook subscription: only permit.issued, at its URL without credentials.
    let issued: BTreeSet<String> = catalogue
        .schemas()
        .filter(|s| s.ty == "ca.haliburton.permitting.permit.issued")
        .map(|s| format!("{}.v{}", s.ty, s.version))
        .collect();
    assert!(!issued.is_empty());
    let records = &channels["subscription.dysart.records-permits"];
    assert_eq!(keys(&records["messages"]), issued);
    let hook = &channels["subscription.dysart.records-permits.sink"];
    assert_eq!(
        hook["address"],
        "https://records.example:8443/hooks/permits"
    );
    assert_eq!(keys(&hook["messages"]), issued);
    let op = &doc["operations"]["subscription.dysart.records-permits.receive"];
    assert_eq!(op["action"], "receive");
    assert_eq!(
        op["channel"]["$ref"],
        "#/channels/subscription.dysart.records-permits.sink"
    );
    assert_eq!(op["bindings"]["http"]["method"], "POST");
    assert_eq!(op["messages"].as_array().map(Vec::len), Some(issued.len()));

    // The AMQP subscription: work orders only, on its exchange, routing key = type.
    let work: BTreeSet<String> = catalogue
        .schemas()
        .filter(|s| s.ty.starts_with("ca.haliburton.workorder."))
        .map(|s| format!("{}.v{}", s.ty, s.version))
        .collect();
    assert!(!work.is_empty());
    let gis = &channels["subscription.county.gis-work.sink"];
    assert_eq!(gis["address"], "{type}");
    assert_eq!(gis["bindings"]["amqp"]["is"], "routingKey");
    assert_eq!(gis["bindings"]["amqp"]["exchange"]["name"], "gis.in");
    assert_eq!(keys(&gis["messages"]), work);
    let op = &doc["operations"]["subscription.county.gis-work.receive"];
    assert_eq!(op["action"], "receive");
    assert_eq!(
        op["channel"]["$ref"],
        "#/channels/subscription.county.gis-work.sink"
    );

    // Systems send: one AMQP operation per RabbitMQ user, and the HTTP API.
    let op = &doc["operations"]["ingress.publish.dysart-permitting"];
    assert_eq!(op["action"], "send");
    assert_eq!(op["channel"]["$ref"], "#/channels/ingress");
    assert_eq!(op["bindings"]["amqp"]["userId"], "dysart-permitting");
    let op = &doc["operations"]["http.publish"];
    assert_eq!(op["action"], "send");
    assert_eq!(op["bindings"]["http"]["method"], "POST");

    // Every operation's messages are messages of its channel.
    for (name, op) in doc["operations"].as_object().expect("operations") {
        let channel = op["channel"]["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/channels/"))
            .expect("an operation refers to a channel");
        for m in op["messages"].as_array().expect("operation messages") {
            let r = m["$ref"].as_str().expect("a message reference");
            assert!(
                r.starts_with(&format!("#/channels/{channel}/messages/")),
                "operation {name} refers to {r}, not a message of {channel}"
            );
        }
    }

    // Self-contained: every `$ref` is local and resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in &all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("$ref {r} leaves the document"));
        let pointer = pointer.replace("%24", "$");
        assert!(doc.pointer(&pointer).is_some(), "$ref {r} does not resolve");
    }
    let text = serde_json::to_string_pretty(&doc).expect("the document serialises");
    assert!(
        !text.contains("\"$ref\": \"https://civicbus.haliburton.ca"),
        "an absolute catalogue $ref is left"
    );
    let mut names = BTreeSet::new();
    all_keys(&doc["components"]["schemas"], &mut names);
    for keyword in [
        "$defs",
        "$schema",
        "$id",
        "prefixItems",
        "dependentRequired",
    ] {
        assert!(
            !names.contains(keyword),
            "the 2020-12 keyword {keyword} is left in components.schemas"
        );
    }

    // No credentials anywhere.
    for secret in [
        BROKER_PASSWORD,
        "civicbus-svc",
        WEBHOOK_PASSWORD,
        "hookuser-x9",
        QUERY_TOKEN,
        "token=",
        "#frag",
        SIGNING_SECRET,
        "whsec_",
        TOKEN_SHA256,
    ] {
        assert!(!text.contains(secret), "the document contains `{secret}`");
    }
}

#[test]
fn example_configuration_validates_with_the_official_parser() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap_or(root);
    let scripts = root.join("scripts/asyncapi");
    assert!(
        scripts.join("node_modules/@asyncapi/parser").is_dir(),
        "{} is missing: run `npm ci --prefix scripts/asyncapi` (in {}) to install the AsyncAPI parser",
        scripts.join("node_modules").display(),
        root.display()
    );

    let loaded = config::load_str(EXAMPLE, &BTreeMap::new());
    let config = loaded.config.expect("the example configuration loads");
    let doc = asyncapi::document(&config, &catalogue());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("civicbus.asyncapi.json");
    std::fs::write(
        &file,
        serde_json::to_vec_pretty(&doc).expect("the document serialises"),
    )
    .expect("the document is written");
    let instances = catalogue_instances();
    assert!(
        !instances.is_empty(),
        "no example instances found below {}",
        civicbus_schemas::registry::builtin_dir().display()
    );
    let instances_file = dir.path().join("instances.json");
    std::fs::write(
        &instances_file,
        serde_json::to_vec(&instances).expect("the instances serialise"),
    )
    .expect("the instances are written");

    let output = Command::new("node")
        .arg(scripts.join("validate.mjs"))
        .arg(&file)
        .arg("--instances")
        .arg(&instances_file)
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node (install Node.js 18 or later): {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}{stderr}");
    assert!(
        output.status.success(),
        "@asyncapi/parser refuses the document ({}):\n{stdout}{stderr}",
        output.status
    );
    assert!(stdout.contains("valid AsyncAPI 3.0.0"), "{stdout}");
}

#[test]
fn an_empty_configuration_and_catalogue_still_describe_the_bus() {
    let doc = asyncapi::document(&Config::default(), &Catalogue::default());
    assert_eq!(doc["asyncapi"], "3.0.0");
    for channel in ["ingress", "ingress.queue", "events", "route", "http.events"] {
        assert!(doc["channels"][channel].is_object(), "channel {channel}");
    }
    // The default broker URL's guest:guest is not shown.
    assert_eq!(doc["servers"]["rabbitmq"]["host"], "127.0.0.1:5672");
    let text = serde_json::to_string(&doc).expect("the document serialises");
    assert!(!text.contains("guest"), "{text}");
    assert!(doc["operations"]["ingress.publish"].is_object());
}
