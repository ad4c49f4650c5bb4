//! The `civicbus` binary's offline commands: `config example`, `config check` (exit codes
//! and report), `token generate`, `endpoints list|enable` (on a SQLite store), and
//! `--help` everywhere.

use std::path::Path;
use std::process::{Command, Output};

use civicbus_server::auth::TokenSet;
use civicbus_server::config::{self, EXAMPLE};

/// Run `civicbus` with `args` and no `CIVICBUS_*` (or any other) variable set.
fn civicbus(args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_civicbus"))
        .args(args)
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .expect("civicbus runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("temp file writes");
    path.to_string_lossy().into_owned()
}

#[test]
fn config_example_prints_the_example() {
    let o = civicbus(&["config", "example"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), EXAMPLE);
}

#[test]
fn config_check_accepts_the_example_with_warnings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write(dir.path(), "civicbus.toml", EXAMPLE);
    let o = civicbus(&["config", "check", &file], &[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("warning: tenants[0].tokens[0].env: environment variable CIVICBUS_TOKEN_COUNTY is not set"),
        "{out}"
    );
    assert!(!out.contains("error:"), "{out}");
    assert_eq!(out.lines().last(), Some(format!("{file}: ok").as_str()));
}

#[test]
fn config_check_reads_the_environment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write(dir.path(), "civicbus.toml", EXAMPLE);
    let vars = [
        ("CIVICBUS_TOKEN_COUNTY", "cbt_1"),
        ("CIVICBUS_TOKEN_ALGONQUIN_HIGHLANDS", "cbt_2"),
        ("CIVICBUS_TOKEN_DYSART", "cbt_3"),
        ("CIVICBUS_TOKEN_HIGHLANDS_EAST", "cbt_4"),
        ("CIVICBUS_TOKEN_MINDEN_HILLS", "cbt_5"),
        (
            "CIVICBUS_SECRET_RECORDS",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ),
        (
            "CIVICBUS_SECRET_FINANCE",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ),
        (
            "CIVICBUS_SECRET_MINDEN_PERMITTING",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ),
    ];
    let o = civicbus(&["config", "check", &file], &vars);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(stdout(&o), format!("{file}: ok\n"));

    // An override from the environment is checked like the file.
    let o = civicbus(
        &["config", "check", &file],
        &[("CIVICBUS_BROKER_URL", "http://mq.example")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("error: broker.url: must be an amqp:// or amqps:// URL"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("CIVICBUS_BROKER_URL"), "{}", stdout(&o));
}

#[test]
fn config_check_lists_every_error_and_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = r#"
[api]
lissten = "0.0.0.0:8080"

[[tenants]]
id = "county"

[[subscriptions]]
id = "gis"
tenant = "dysart"
[subscriptions.webhook]
url = "ftp://gis.example"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
"#;
    let file = write(dir.path(), "bad.toml", text);
    let o = civicbus(&["config", "check", &file], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 3, "{out}");
    for path in [
        "api.lissten",
        "subscriptions[0].tenant",
        "subscriptions[0].webhook.url",
    ] {
        assert!(
            errors
                .iter()
                .any(|l| l.starts_with(&format!("error: {path}: "))),
            "{path} in {out}"
        );
    }
    assert_eq!(
        out.lines().last(),
        Some(format!("{file}: 3 error(s)").as_str())
    );
}

#[test]
fn config_check_of_a_missing_file_says_how_to_make_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("absent.toml");
    let file = file.to_string_lossy();
    let o = civicbus(&["config", "check", &file], &[]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("cannot read"), "{out}");
    assert!(out.contains("civicbus config example >"), "{out}");
}

#[test]
fn token_generate_prints_a_token_and_its_hash() {
    let o = civicbus(&["token", "generate"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} line in {out}"))
            .to_string()
    };
    let token = field("token:");
    let sha256 = field("sha256:");
    assert!(token.starts_with("cbt_") && token.len() > 40, "{token}");
    assert_eq!(sha256, hex::encode(config::token_hash(&token)));

    // The printed configuration line works as printed.
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("tokens = "))
        .expect("a tokens line");
    let doc = format!("[[tenants]]\nid = \"dysart\"\n{}\n", line.trim());
    let l = config::load_str(&doc, &Default::default());
    assert!(l.problems.is_empty(), "{:?}", l.problems);
    let resolved = config::resolve(&l.config.expect("config"), &Default::default());
    let tokens = TokenSet::new(&resolved.tokens);
    assert_eq!(
        tokens.authenticate(&token).map(|p| p.tenant.as_str()),
        Some("dysart")
    );

    // Each run makes a new token.
    let again = stdout(&civicbus(&["token", "generate"], &[]));
    assert!(!again.contains(&token));
}

#[test]
fn token_generate_secret_prints_a_valid_signing_secret() {
    let o = civicbus(&["token", "generate", "--secret"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret:"))
        .map(str::trim)
        .expect("a secret line");
    assert!(secret.starts_with("whsec_"), "{secret}");
    civicbus_webhook::validate_secret(secret).expect("a valid Standard Webhooks secret");
}

#[test]
fn token_generate_signing_key_prints_a_key_pair() {
    let o = civicbus(&["token", "generate", "--signing-key"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} line in {out}"))
            .to_string()
    };
    let signing_key = field("signing key:");
    let public_key = field("public key:");
    assert!(signing_key.starts_with("whsk_"), "{signing_key}");
    assert!(public_key.starts_with("whpk_"), "{public_key}");
    civicbus_webhook::validate_secret(&signing_key).expect("a valid ed25519 signing key");
    assert_eq!(
        civicbus_webhook::public_key(&signing_key).expect("public key"),
        public_key
    );
    // The public key verifies what the signing key signs.
    let now = chrono::Utc::now().timestamp();
    let sig = civicbus_webhook::sign(&signing_key, "msg_1", now, b"{}").expect("signs");
    assert!(sig.starts_with("v1a,"), "{sig}");
    let mut h = http::HeaderMap::new();
    h.insert("webhook-id", "msg_1".parse().expect("hv"));
    h.insert("webhook-timestamp", now.to_string().parse().expect("hv"));
    h.insert("webhook-signature", sig.parse().expect("hv"));
    civicbus_webhook::verify(
        &[&public_key],
        &h,
        b"{}",
        civicbus_webhook::DEFAULT_TOLERANCE,
    )
    .expect("verifies with the public key");
    // The secret key is printed once, and only on its own line; nothing goes to stderr.
    assert_eq!(out.matches(&signing_key[5..]).count(), 1, "{out}");
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    // The printed configuration hint names a variable, not the key.
    assert!(
        out.contains("secrets_env = [\"CIVICBUS_SECRET_<NAME>\"]"),
        "{out}"
    );
    // Each run makes a new key.
    let again = stdout(&civicbus(&["token", "generate", "--signing-key"], &[]));
    assert!(!again.contains(&signing_key[5..]));
}

#[test]
fn help_works_for_every_command() {
    for args in [
        &[][..],
        &["serve"],
        &["demo"],
        &["publish"],
        &["config"],
        &["config", "example"],
        &["config", "check"],
        &["token"],
        &["token", "generate"],
        &["endpoints"],
        &["endpoints", "list"],
        &["endpoints", "enable"],
        &["schema"],
        &["schema", "list"],
        &["schema", "validate"],
        &["schema", "check"],
        &["schema", "asyncapi"],
    ] {
        let mut with_help = args.to_vec();
        with_help.push("--help");
        let o = civicbus(&with_help, &[]);
        assert_eq!(o.status.code(), Some(0), "{with_help:?}: {}", stderr(&o));
        let out = stdout(&o);
        assert!(out.contains("Usage: civicbus"), "{with_help:?}: {out}");
    }
    let o = civicbus(&["help", "config", "check"], &[]);
    assert_eq!(o.status.code(), Some(0));
    let o = civicbus(&["--version"], &[]);
    assert!(stdout(&o).starts_with("civicbus "), "{}", stdout(&o));
}

#[test]
fn usage_mistakes_exit_2() {
    for args in [
        &["frobnicate"][..],
        &["config"],
        &["config", "check"],
        &["token", "generate", "--colour"],
        &["token", "generate", "--secret", "--signing-key"],
    ] {
        let o = civicbus(args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("Usage:"), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn endpoints_list_and_enable_on_the_store_of_the_configuration() {
    use civicbus_core::ports::{DisableEndpoint, DisableReason, EventStore};
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write(dir.path(), "civicbus.toml", EXAMPLE);
    let db = dir.path().join("store.db");
    let url = format!("sqlite://{}", db.display());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = civicbus_store::SqlStore::connect(&url)
            .await
            .expect("store");
        store
            .endpoint_failing("dysart.permits-mirror", "dysart", chrono::Utc::now())
            .await
            .expect("failing");
        let disabled = DisableEndpoint {
            subscription: "county.records-filing".into(),
            tenant: "county".into(),
            reason: DisableReason::Gone,
            error: "HTTP 410 from https://records.example/hooks".into(),
            response_code: Some(410),
            failing_since: None,
            at: chrono::Utc::now(),
        };
        assert!(store.disable_endpoint(&disabled).await.expect("disable"));
        store.close().await;
    });
    let vars = [("CIVICBUS_STORE_URL", url.as_str())];

    let o = civicbus(&["endpoints", "list", "--config", &file], &vars);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("SUBSCRIPTION"), "{out}");
    assert!(
        lines[1].starts_with("county.records-filing  disabled (gone)"),
        "{out}"
    );
    assert!(lines[1].contains("HTTP 410"), "{out}");
    assert!(
        lines[2].starts_with("dysart.permits-mirror  failing"),
        "{out}"
    );

    let o = civicbus(
        &["endpoints", "list", "--config", &file, "--tenant", "dysart"],
        &vars,
    );
    assert_eq!(stdout(&o).lines().count(), 2, "{}", stdout(&o));

    let enable = [
        "endpoints",
        "enable",
        "county.records-filing",
        "--config",
        &file,
        "--actor",
        "operator:test",
    ];
    let o = civicbus(&enable, &vars);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("county.records-filing: enabled"),
        "{}",
        stdout(&o)
    );
    let o = civicbus(&enable, &vars);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("not disabled"), "{}", stdout(&o));

    let o = civicbus(
        &["endpoints", "enable", "county.nope", "--config", &file],
        &vars,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("civicbus endpoints list"),
        "{}",
        stderr(&o)
    );

    let o = civicbus(&["endpoints", "list", "--config", &file], &vars);
    assert!(
        stdout(&o).contains("county.records-filing  ok"),
        "{}",
        stdout(&o)
    );

    // The enabling is audited with the operator as actor.
    rt.block_on(async {
        let store = civicbus_store::SqlStore::connect(&url)
            .await
            .expect("store");
        let log = store.audit_entries(0, 100).await.expect("audit");
        let last = log.last().expect("entries");
        assert_eq!(
            (last.action.as_str(), last.actor.as_str()),
            ("endpoint-enabled", "operator:test")
        );
        store.close().await;
    });
}

#[test]
fn schema_list_validate_and_check() {
    // The shipped catalogue, with the subscriptions of the example configuration.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write(dir.path(), "civicbus.toml", EXAMPLE);
    let o = civicbus(&["schema", "list", "--config", &file], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("TYPE"), "{out}");
    let issued = out
        .lines()
        .find(|l| l.starts_with("ca.haliburton.permitting.permit.issued "))
        .expect("permit.issued listed");
    assert!(
        issued.contains("v1") && issued.contains("dysart.records-permits"),
        "{issued}"
    );
    assert!(
        out.contains("ca.haliburton.finance.journal.posted"),
        "{out}"
    );

    // Validate: a whole event, and bare data with --type.
    let good = write(
        dir.path(),
        "good.json",
        r#"{"PermitNum":"BP-1","Fee":"12.00","FeeAssessedDate":"2026-11-20"}"#,
    );
    let o = civicbus(
        &[
            "schema",
            "validate",
            "--type",
            "ca.haliburton.permitting.permit.fee-assessed",
            &good,
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let bad = write(
        dir.path(),
        "bad.json",
        r#"{"specversion":"1.0","id":"1","source":"/x","type":"ca.haliburton.permitting.permit.fee-assessed","data":{"Fee":12}}"#,
    );
    let o = civicbus(&["schema", "validate", &bad], &[]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("/Fee:") && out.contains("(type)"), "{out}");
    assert!(out.contains("(required)"), "{out}");
    let o = civicbus(
        &["schema", "validate", "--type", "ca.haliburton.nope", &good],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));

    // Check: a compatible and a breaking change.
    let old = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../schemas/permitting/ca.haliburton.permitting.permit.fee-assessed.v1.json"),
    )
    .expect("schema");
    let old_file = write(dir.path(), "old.json", &old);
    let mut doc: serde_json::Value = serde_json::from_str(&old).expect("json");
    doc["properties"]["Remarks"] =
        serde_json::json!({ "title": "Remarks", "description": "Free text.", "type": "string" });
    let added = write(dir.path(), "added.json", &doc.to_string());
    let o = civicbus(&["schema", "check", &old_file, &added], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("note /properties/Remarks"),
        "{}",
        stdout(&o)
    );
    doc["required"]
        .as_array_mut()
        .expect("required")
        .push("Remarks".into());
    let breaking = write(dir.path(), "breaking.json", &doc.to_string());
    let o = civicbus(&["schema", "check", &old_file, &breaking], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("BREAKING /properties/Remarks"),
        "{}",
        stdout(&o)
    );
}
