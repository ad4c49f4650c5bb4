//! `civicbus config check` as a specification: the example loads, a document with many
//! mistakes gets every one reported with its key path (a golden file of the rendered
//! report), and `CIVICBUS_*` variables override scalar keys.
//!
//! `UPDATE_GOLDEN=1 cargo test -p civicbus-server --test config_check` rewrites the
//! golden file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use civicbus_server::auth::TokenSet;
use civicbus_server::config::{self, ConfigProblem, EXAMPLE, Loaded, load_str};

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn no_env() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn errors(l: &Loaded) -> Vec<&ConfigProblem> {
    l.problems.iter().filter(|p| !p.warning).collect()
}

fn warnings(l: &Loaded) -> Vec<&ConfigProblem> {
    l.problems.iter().filter(|p| p.warning).collect()
}

fn render(l: &Loaded) -> String {
    l.problems.iter().map(|p| format!("{p}\n")).collect()
}

fn paths(problems: &[&ConfigProblem]) -> BTreeSet<String> {
    problems.iter().map(|p| p.path.clone()).collect()
}

fn set(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|p| p.to_string()).collect()
}

/// Compare `actual` with `tests/golden/<name>`; `UPDATE_GOLDEN=1` rewrites the file.
fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("golden file writes");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs (UPDATE_GOLDEN=1 rewrites it)\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// The variables the example configuration names, all set to working values.
fn example_env() -> BTreeMap<String, String> {
    env(&[
        ("CIVICBUS_TOKEN_COUNTY", "cbt_county"),
        ("CIVICBUS_TOKEN_ALGONQUIN_HIGHLANDS", "cbt_ah"),
        ("CIVICBUS_TOKEN_DYSART", "cbt_dysart"),
        ("CIVICBUS_TOKEN_HIGHLANDS_EAST", "cbt_he"),
        ("CIVICBUS_TOKEN_MINDEN_HILLS", "cbt_mh"),
        (
            "CIVICBUS_SECRET_RECORDS",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ),
        (
            "CIVICBUS_SECRET_FINANCE",
            "whsec_dGhlIGZpbmFuY2Ugc2VjcmV0IGtleQ==",
        ),
        (
            "CIVICBUS_SECRET_MINDEN_PERMITTING",
            "whsec_bWluZGVuIHBlcm1pdHRpbmcga2V5",
        ),
    ])
}

// ---------------------------------------------------------------------------------------
// The example
// ---------------------------------------------------------------------------------------

#[test]
fn example_loads_with_only_unset_variable_warnings() {
    let l = load_str(EXAMPLE, &no_env());
    assert!(errors(&l).is_empty(), "{}", render(&l));
    let config = l.config.as_ref().expect("the example deserialises");
    assert_eq!(config.tenants.len(), 5);
    assert_eq!(config.subscriptions.len(), 4);
    for w in warnings(&l) {
        assert!(
            w.message.contains("is not set"),
            "only unset variables are warned about: {w}"
        );
    }
    // Every token and every signing secret of the example comes from a variable.
    assert_eq!(warnings(&l).len(), 5 + 3, "{}", render(&l));
}

#[test]
fn example_with_its_variables_set_has_no_problem_and_resolves() {
    let vars = example_env();
    let l = load_str(EXAMPLE, &vars);
    assert!(l.problems.is_empty(), "{}", render(&l));
    let config = l.config.expect("the example deserialises");
    let resolved = config::resolve(&config, &vars);
    assert_eq!(resolved.tokens.len(), 5);
    assert_eq!(resolved.subscriptions.len(), 4);
    assert_eq!(
        resolved
            .amqp_users
            .get("dysart-permitting")
            .map(String::as_str),
        Some("dysart")
    );
    let tokens = TokenSet::new(&resolved.tokens);
    let who = tokens
        .authenticate("cbt_dysart")
        .expect("Dysart's token works");
    assert_eq!(
        (who.tenant.as_str(), who.name.as_str()),
        ("dysart", "dysart-permitting")
    );
    assert!(tokens.authenticate("cbt_nobody").is_none());
}

#[test]
fn example_documents_every_default() {
    // The example shows every scalar key with its default: loading it gives the defaults.
    let l = load_str(EXAMPLE, &example_env());
    let c = l.config.expect("the example deserialises");
    let d = config::Config::default();
    assert_eq!(c.api, d.api);
    assert_eq!(c.broker, d.broker);
    assert_eq!(c.store, d.store);
    assert_eq!(c.limits, d.limits);
    assert_eq!(c.delivery, d.delivery);
}

// ---------------------------------------------------------------------------------------
// Many errors at once
// ---------------------------------------------------------------------------------------

/// One document with a mistake of every kind `config check` knows.
const MANY_ERRORS: &str = r#"
[api]
lissten = "0.0.0.0:8080"          # typo of `listen`
request_timeout = "10 parsecs"    # not a duration

[broker]
prefetch = "x"                    # not a number

[delivery.retry]
initial_backoff = "0s"            # zero

[telemetry]                       # no such section
otlp = true

[[tenants]]
id = "county"
tokens = [
  { name = "county-gis", sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", env = "CIVICBUS_TOKEN_COUNTY" },
  { name = "county-erp", sha256 = "not-hex" },
]
shares = [{ type_prefix = "ca.haliburton.gis.", with = ["minden", "*"] }]

[[tenants]]
id = "county"                     # defined twice
name = "County again"

[[tenants]]
id = "Dysart_Et_Al"               # upper case and '_'

[[subscriptions]]
id = "records-permits"
tenant = "dysrat"                 # no such tenant
[subscriptions.webhook]
url = "ftp://records.example/events"
secrets = ["hunter2"]

[[subscriptions]]
id = "finance-permit-fees"
tenant = "county"
[subscriptions.webhook]
url = "https://finance.example/events"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
retries = 3                       # no such key

[[subscriptions]]
id = "gis-parcel-tags"
tenant = "county"
filters = [{ regex = { type = "^ca\\.haliburton" } }]

[[subscriptions]]
id = "permitting-addresses"
tenant = "county"
filters = [{ any = [] }]
[subscriptions.webhook]
url = "https://permitting.example/events"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
[subscriptions.amqp]
exchange = "amq.topic"
"#;

#[test]
fn every_error_is_reported_with_its_key_path() {
    let l = load_str(MANY_ERRORS, &no_env());
    assert!(
        l.config.is_none(),
        "a document with unreadable keys gives no config"
    );
    assert_eq!(
        paths(&errors(&l)),
        set(&[
            "api.lissten",
            "api.request_timeout",
            "broker.prefetch",
            "delivery.retry.initial_backoff",
            "telemetry",
            "tenants[0].tokens[0]",
            "tenants[0].tokens[1].sha256",
            "tenants[0].shares[0].with[0]",
            "tenants[1].id",
            "tenants[2].id",
            "subscriptions[0].tenant",
            "subscriptions[0].webhook.url",
            "subscriptions[0].webhook.secrets[0]",
            "subscriptions[1].webhook.retries",
            "subscriptions[2].filters[0]",
            "subscriptions[2]",
            "subscriptions[3].filters[0].any",
            "subscriptions[3]",
        ]),
        "{}",
        render(&l)
    );
    assert!(warnings(&l).is_empty(), "{}", render(&l));
    // One problem per mistake: nothing is reported twice.
    assert_eq!(errors(&l).len(), 18, "{}", render(&l));
    golden("config_check.txt", &render(&l));
}

#[test]
fn problems_render_on_one_line_each() {
    let l = load_str(MANY_ERRORS, &no_env());
    for p in &l.problems {
        let line = p.to_string();
        assert!(!line.contains('\n'), "one line: {line:?}");
        assert!(line.starts_with("error: ") || line.starts_with("warning: "));
        assert!(!p.message.is_empty(), "{line}");
    }
}

#[test]
fn an_unreadable_element_does_not_shift_the_paths_of_the_next() {
    let doc = r#"
[[tenants]]
id = "county"

[[subscriptions]]
id = "first"
tenant = "county"
webhook = "https://not-a-table.example"

[[subscriptions]]
id = "second"
tenant = "county"
[subscriptions.webhook]
url = "mailto:gis@county.example"
"#;
    let l = load_str(doc, &no_env());
    assert_eq!(
        paths(&errors(&l)),
        set(&["subscriptions[0].webhook", "subscriptions[1].webhook.url"]),
        "{}",
        render(&l)
    );
}

#[test]
fn a_subscription_of_a_tenant_that_could_not_be_read_is_not_an_orphan() {
    let doc = r#"
[[tenants]]
id = "county"
name = 7

[[subscriptions]]
id = "gis"
tenant = "county"
[subscriptions.amqp]
exchange = "amq.topic"
"#;
    let l = load_str(doc, &no_env());
    assert_eq!(
        paths(&errors(&l)),
        set(&["tenants[0].name"]),
        "{}",
        render(&l)
    );
}

#[test]
fn a_key_of_the_wrong_type_is_reported_once() {
    for (doc, path) in [
        (
            "[[tenants]]\nid = \"county\"\ntokens = [{ name = \"gis\", sha256 = 5 }]\n",
            "tenants[0].tokens[0].sha256",
        ),
        ("[[tenants]]\nid = 5\n", "tenants[0].id"),
        (
            "[[tenants]]\nid = \"county\"\n[[subscriptions]]\nid = \"gis\"\ntenant = \"county\"\namqp = \"amq.topic\"\n",
            "subscriptions[0].amqp",
        ),
    ] {
        let l = load_str(doc, &no_env());
        assert_eq!(paths(&errors(&l)), set(&[path]), "{doc}\n{}", render(&l));
        assert_eq!(errors(&l).len(), 1, "{doc}\n{}", render(&l));
    }
}

#[test]
fn a_missing_required_key_names_it() {
    let l = load_str("[[subscriptions]]\nid = \"gis\"\n", &no_env());
    let e = errors(&l);
    assert_eq!(paths(&e), set(&["subscriptions[0]"]), "{}", render(&l));
    assert!(e[0].message.contains("tenant"), "{}", e[0]);
}

#[test]
fn text_that_is_not_toml_is_one_error() {
    let l = load_str("[api\nlisten = ", &no_env());
    assert_eq!(l.problems.len(), 1);
    assert!(
        l.problems[0].message.starts_with("not valid TOML"),
        "{}",
        l.problems[0]
    );
    assert!(l.config.is_none());
}

#[test]
fn one_token_for_two_credentials_is_an_error() {
    let hash = hex::encode(config::token_hash("cbt_shared"));
    let doc = format!(
        r#"
[[tenants]]
id = "county"
tokens = [{{ name = "county-gis", sha256 = "{hash}" }}]

[[tenants]]
id = "dysart"
tokens = [
  {{ name = "dysart-permitting", env = "DYSART_TOKEN" }},
  {{ name = "dysart-finance", sha256 = "{upper}" }},
]
"#,
        upper = hash.to_ascii_uppercase()
    );
    let l = load_str(&doc, &env(&[("DYSART_TOKEN", "cbt_shared")]));
    assert_eq!(
        paths(&errors(&l)),
        set(&["tenants[1].tokens[0].env", "tenants[1].tokens[1].sha256"]),
        "{}",
        render(&l)
    );
    assert!(!render(&l).contains("cbt_shared"), "the token is not shown");
}

// ---------------------------------------------------------------------------------------
// Webhook signing secrets and keys
// ---------------------------------------------------------------------------------------

/// An ed25519 signing key (`whsk_`, 32 bytes of 0x11).
const SIGNING_KEY: &str = "whsk_ERERERERERERERERERERERERERERERERERERERERERE=";

fn webhook_doc(secrets: &str) -> String {
    format!(
        r#"
[[tenants]]
id = "county"

[[subscriptions]]
id = "records"
tenant = "county"
[subscriptions.webhook]
url = "https://records.example/events"
{secrets}
"#
    )
}

#[test]
fn whsk_signing_keys_are_accepted_beside_whsec_secrets() {
    let doc = webhook_doc(&format!(
        "secrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\", \"{SIGNING_KEY}\"]\n\
         secrets_env = [\"CIVICBUS_SECRET_RECORDS_NEXT\"]"
    ));
    let next = civicbus_webhook::encode_signing_key(&[0x22; 32]);
    let vars = env(&[("CIVICBUS_SECRET_RECORDS_NEXT", &next)]);
    let l = load_str(&doc, &vars);
    assert!(l.problems.is_empty(), "{}", render(&l));
    let resolved = config::resolve(&l.config.expect("config"), &vars);
    let civicbus_core::SinkSpec::Webhook(w) = &resolved.subscriptions[0].sink else {
        panic!("a webhook subscription");
    };
    assert_eq!(
        w.secrets,
        vec![
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string(),
            SIGNING_KEY.to_string(),
            next,
        ]
    );
}

#[test]
fn bad_whsk_keys_are_errors_that_do_not_show_them() {
    let short = format!("whsk_{}", "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"); // 27 bytes
    let public = "whpk_ERERERERERERERERERERERERERERERERERERERERERE=";
    let doc = webhook_doc(&format!(
        "secrets = [\"{short}\", \"{public}\", \"whsk_not*base64\"]\n\
         secrets_env = [\"CIVICBUS_SECRET_RECORDS\"]"
    ));
    let vars = env(&[("CIVICBUS_SECRET_RECORDS", "whsk_QUJD")]);
    let l = load_str(&doc, &vars);
    let e = errors(&l);
    assert_eq!(
        paths(&e),
        set(&[
            "subscriptions[0].webhook.secrets[0]",
            "subscriptions[0].webhook.secrets[1]",
            "subscriptions[0].webhook.secrets[2]",
            "subscriptions[0].webhook.secrets_env[0]",
        ]),
        "{}",
        render(&l)
    );
    let text = render(&l);
    assert!(text.contains("decodes to 27 bytes"), "{text}");
    assert!(text.contains("public key (`whpk_`)"), "{text}");
    assert!(text.contains("not valid standard base64"), "{text}");
    assert!(text.contains("CIVICBUS_SECRET_RECORDS: "), "{text}");
    assert!(
        text.contains("civicbus token generate --signing-key"),
        "{text}"
    );
    for leaked in ["QUFBQUFBQUFB", "ERERERERERER", "not*base64", "QUJD"] {
        assert!(!text.contains(leaked), "{leaked} shown: {text}");
    }
}

// ---------------------------------------------------------------------------------------
// Warnings
// ---------------------------------------------------------------------------------------

#[test]
fn a_share_prefix_without_a_final_dot_is_a_warning() {
    let doc = r#"
[[tenants]]
id = "county"
shares = [
  { type_prefix = "ca.haliburton.gis", with = ["*"] },
  { type_prefix = "ca.haliburton.records.", with = ["*"] },
]
"#;
    let l = load_str(doc, &no_env());
    assert!(errors(&l).is_empty(), "{}", render(&l));
    let w = warnings(&l);
    assert_eq!(
        paths(&w),
        set(&["tenants[0].shares[0].type_prefix"]),
        "{}",
        render(&l)
    );
    assert!(
        w[0].message.contains("ca.haliburton.gisarchive."),
        "{}",
        w[0]
    );
    assert!(w[0].message.contains("`ca.haliburton.gis.`"), "{}", w[0]);
    assert!(l.config.is_some(), "a warning does not stop loading");
}

// ---------------------------------------------------------------------------------------
// Environment overrides
// ---------------------------------------------------------------------------------------

#[test]
fn environment_overrides_scalar_keys() {
    let vars = env(&[
        (
            "CIVICBUS_BROKER_URL",
            "amqps://civicbus:s3cret@mq.county.example:5671/prod",
        ),
        ("CIVICBUS_API_LISTEN", "0.0.0.0:9000"),
        ("CIVICBUS_LIMITS_MAX_JSON_DEPTH", "12"),
        ("CIVICBUS_API_REQUEST_TIMEOUT", "2s"),
        ("CIVICBUS_STORE_URL", "postgres://civicbus@db/civicbus"),
        // A string key whose value looks like a number stays a string.
        ("CIVICBUS_BROKER_PREFIX", "2026"),
        // Variables of other sections, or not of the configuration, are left alone.
        ("CIVICBUS_TOKEN_COUNTY", "cbt_county"),
        ("CIVICBUS_SECRET_UNUSED", "not-a-secret"),
        ("CIVICBUS_LOG_FORMAT", "json"),
        ("CIVICBUS_CONFIG", "/etc/civicbus.toml"),
        ("CIVICBUS_TENANTS_ID", "x"),
        ("OTHER_BROKER_URL", "http://nope"),
    ]);
    let l = load_str(EXAMPLE, &vars);
    assert!(errors(&l).is_empty(), "{}", render(&l));
    let c = l.config.expect("config");
    assert_eq!(
        c.broker.url,
        "amqps://civicbus:s3cret@mq.county.example:5671/prod"
    );
    assert_eq!(c.api.listen.to_string(), "0.0.0.0:9000");
    assert_eq!(c.limits.max_json_depth, 12);
    assert_eq!(c.api.request_timeout, Duration::from_secs(2));
    assert_eq!(c.store.url, "postgres://civicbus@db/civicbus");
    assert_eq!(c.broker.prefix, "2026");
    assert_eq!(c.tenants.len(), 5);
}

#[test]
fn environment_overrides_apply_without_the_section_in_the_file() {
    let vars = env(&[("CIVICBUS_DELIVERY_CONCURRENCY", "3")]);
    let l = load_str("", &vars);
    assert!(errors(&l).is_empty(), "{}", render(&l));
    assert_eq!(l.config.expect("config").delivery.concurrency, 3);
}

#[test]
fn a_bad_environment_value_is_reported_with_its_variable() {
    let vars = env(&[
        ("CIVICBUS_LIMITS_MAX_JSON_DEPTH", "deep"),
        ("CIVICBUS_API_LISSTEN", "0.0.0.0:9000"),
        ("CIVICBUS_BROKER_URL", "http://mq.example"),
        ("CIVICBUS_DELIVERY_CONCURRENCY", "0"),
    ]);
    let l = load_str("", &vars);
    let e = errors(&l);
    assert_eq!(
        paths(&e),
        set(&[
            "limits.max_json_depth",
            "api.lissten",
            "broker.url",
            "delivery.concurrency",
        ]),
        "{}",
        render(&l)
    );
    for p in e {
        let var = match p.path.as_str() {
            "limits.max_json_depth" => "CIVICBUS_LIMITS_MAX_JSON_DEPTH",
            "api.lissten" => "CIVICBUS_API_LISSTEN",
            "broker.url" => "CIVICBUS_BROKER_URL",
            _ => "CIVICBUS_DELIVERY_CONCURRENCY",
        };
        assert!(
            p.message.contains(var),
            "the problem names the variable that set the value: {p}"
        );
    }
}

#[test]
fn endpoint_health_defaults_and_per_subscription_overrides() {
    let doc = format!(
        "[delivery.health]\nfailure_threshold = 3\nopen_for = \"1m\"\n{}\
         [subscriptions.health]\nopen_for = \"5s\"\nmax_open_for = \"30s\"\n",
        webhook_doc("secrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]")
    );
    let l = load_str(&doc, &no_env());
    assert!(l.problems.is_empty(), "{}", render(&l));
    let resolved = config::resolve(&l.config.expect("config"), &no_env());
    let h = resolved.health_of("county.records");
    assert_eq!(h.failure_threshold, 3, "from [delivery.health]");
    assert_eq!(h.open_for, Duration::from_secs(5));
    assert_eq!(h.max_open_for, Duration::from_secs(30));

    let bad = format!(
        "[delivery.health]\nopen_for = \"0s\"\n{}\
         [subscriptions.health]\nopen_for = \"1m\"\nmax_open_for = \"10s\"\n",
        webhook_doc("secrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]")
    );
    let l = load_str(&bad, &no_env());
    assert_eq!(
        paths(&errors(&l)),
        set(&[
            "delivery.health.open_for",
            "subscriptions[0].health.max_open_for"
        ]),
        "{}",
        render(&l)
    );
}
