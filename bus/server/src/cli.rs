//! CLI commands other than `demo`: serve, publish, config check, token generate.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::app;
use crate::auth::{generate_secret, generate_signing_key, generate_token};
use crate::config::{self, process_env, token_hash};

/// Run an async command on a fresh multi-threaded runtime; errors print and exit 1.
pub fn block_on<F>(fut: F) -> ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `civicbus config check FILE`.
pub fn config_check(file: &Path) -> ExitCode {
    let loaded = config::load_file(file, &process_env());
    for p in &loaded.problems {
        println!("{p}");
    }
    if loaded.has_errors() {
        let n = loaded.problems.iter().filter(|p| !p.warning).count();
        println!("{}: {n} error(s)", file.display());
        ExitCode::FAILURE
    } else {
        println!("{}: ok", file.display());
        ExitCode::SUCCESS
    }
}

/// `civicbus token generate [--secret | --signing-key]`.
pub fn token_generate(secret: bool, signing_key: bool) {
    if signing_key {
        let (sk, pk) = generate_signing_key();
        println!("signing key: {sk}");
        println!("public key:  {pk}");
        println!();
        println!(
            "Keep the signing key with civicbus only, in a variable named in the subscription:"
        );
        println!("  [subscriptions.webhook]");
        println!(
            "  secrets_env = [\"CIVICBUS_SECRET_<NAME>\"]   # with CIVICBUS_SECRET_<NAME>=<the signing key>"
        );
        println!(
            "Give the public key to the subscriber: it verifies the v1a signatures and cannot sign."
        );
    } else if secret {
        let s = generate_secret();
        println!("secret: {s}");
        println!();
        println!("Give it to the subscriber to verify signatures, and put it in the subscription:");
        println!("  [subscriptions.webhook]");
        println!(
            "  secrets_env = [\"CIVICBUS_SECRET_<NAME>\"]   # with CIVICBUS_SECRET_<NAME>={s}"
        );
    } else {
        let t = generate_token();
        let h = hex::encode(token_hash(&t));
        println!("token:  {t}");
        println!("sha256: {h}");
        println!();
        println!("Give the token to the publishing system (Authorization: Bearer <token>) and");
        println!("put only the hash in the tenant's configuration:");
        println!("  tokens = [{{ name = \"<credential name>\", sha256 = \"{h}\" }}]");
    }
}

/// `civicbus serve --config FILE`.
pub async fn serve(path: PathBuf) -> anyhow::Result<()> {
    let env = process_env();
    let loaded = config::load_file(&path, &env);
    for p in &loaded.problems {
        if p.warning {
            tracing::warn!("{p}");
        } else {
            eprintln!("{p}");
        }
    }
    let cfg = match (loaded.has_errors(), loaded.config) {
        (false, Some(c)) => c,
        _ => anyhow::bail!(
            "{} has errors (listed above); fix them and check with `civicbus config check {}`",
            path.display(),
            path.display()
        ),
    };
    let resolved = config::resolve(&cfg, &env);
    let bus = app::start(&cfg, resolved).await?;
    tracing::info!(api = %bus.api_addr(), "civicbus is serving; SIGTERM or Ctrl-C stops it");
    wait_for_signal().await;
    tracing::info!("shutting down: intake stopped, finishing in-flight work");
    bus.stop().await;
    tracing::info!("stopped");
    Ok(())
}

/// Wait for SIGTERM or SIGINT.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Binding mode for `civicbus publish`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PublishMode {
    /// `application/cloudevents+json`.
    Structured,
    /// `ce-*` headers, body = data.
    Binary,
}

/// Arguments of `civicbus publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Base URL of the bus's API.
    #[arg(long, env = "CIVICBUS_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API token of the publishing tenant.
    #[arg(long, env = "CIVICBUS_TOKEN", hide_env_values = true)]
    pub token: String,
    /// A JSON file holding one structured event, or an array of them (sent as a batch).
    #[arg(long, short, conflicts_with_all = ["ty", "source", "data"])]
    pub file: Option<PathBuf>,
    /// Event type, e.g. ca.haliburton.permitting.permit.issued.
    #[arg(long = "type", requires = "source")]
    pub ty: Option<String>,
    /// Event source, e.g. /dysart/permitting.
    #[arg(long)]
    pub source: Option<String>,
    /// Event id (default: a new UUID).
    #[arg(long)]
    pub id: Option<String>,
    /// Subject (business key).
    #[arg(long)]
    pub subject: Option<String>,
    /// Data as JSON text.
    #[arg(long)]
    pub data: Option<String>,
    /// Binding mode for an event given by flags.
    #[arg(long, value_enum, default_value_t = PublishMode::Structured)]
    pub mode: PublishMode,
}

/// `civicbus publish`.
pub async fn publish(args: PublishArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let url = format!("{}/v1/events", args.url.trim_end_matches('/'));
    let request = if let Some(file) = &args.file {
        let text =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let value: Value = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not valid JSON", file.display()))?;
        let ct = if value.is_array() {
            civicbus_core::envelope::BATCH_CONTENT_TYPE
        } else {
            civicbus_core::envelope::STRUCTURED_CONTENT_TYPE
        };
        client.post(&url).header("content-type", ct).body(text)
    } else {
        let (Some(ty), Some(source)) = (&args.ty, &args.source) else {
            anyhow::bail!("give --file, or --type and --source (see `civicbus publish --help`)");
        };
        let id = args
            .id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let data: Option<Value> = match &args.data {
            Some(d) => Some(serde_json::from_str(d).context("--data is not valid JSON")?),
            None => None,
        };
        match args.mode {
            PublishMode::Structured => {
                let mut ev = serde_json::json!({
                    "specversion": "1.0", "id": id, "source": source, "type": ty,
                    "time": chrono::Utc::now().to_rfc3339(),
                });
                if let Some(s) = &args.subject {
                    ev["subject"] = Value::String(s.clone());
                }
                if let Some(d) = data {
                    ev["datacontenttype"] = Value::String("application/json".into());
                    ev["data"] = d;
                }
                client
                    .post(&url)
                    .header(
                        "content-type",
                        civicbus_core::envelope::STRUCTURED_CONTENT_TYPE,
                    )
                    .body(ev.to_string())
            }
            PublishMode::Binary => {
                let mut rb = client
                    .post(&url)
                    .header("ce-specversion", "1.0")
                    .header("ce-id", civicbus_core::binding::percent_encode(&id))
                    .header("ce-source", civicbus_core::binding::percent_encode(source))
                    .header("ce-type", civicbus_core::binding::percent_encode(ty))
                    .header("ce-time", chrono::Utc::now().to_rfc3339());
                if let Some(s) = &args.subject {
                    rb = rb.header("ce-subject", civicbus_core::binding::percent_encode(s));
                }
                match data {
                    Some(d) => rb
                        .header("content-type", "application/json")
                        .body(d.to_string()),
                    None => rb,
                }
            }
        }
    };
    let resp = request
        .bearer_auth(&args.token)
        .send()
        .await
        .with_context(|| {
            format!(
                "cannot reach civicbus at {}: is `civicbus serve` running?",
                args.url
            )
        })?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if status.is_success() {
        println!("{status}: {body}");
        Ok(())
    } else {
        let detail = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_string))
            .unwrap_or(body);
        anyhow::bail!("the bus answered {status}: {detail}")
    }
}

/// `civicbus endpoints list`.
#[derive(Debug, Args)]
pub struct EndpointsListArgs {
    /// Configuration file (for the store's URL).
    #[arg(long, short, env = "CIVICBUS_CONFIG", default_value = "civicbus.toml")]
    pub config: PathBuf,
    /// Only this tenant's subscriptions.
    #[arg(long)]
    pub tenant: Option<String>,
}

/// `civicbus endpoints enable KEY`.
#[derive(Debug, Args)]
pub struct EndpointsEnableArgs {
    /// The subscription, as `<tenant>.<id>`.
    pub subscription: String,
    /// Configuration file (for the store's URL).
    #[arg(long, short, env = "CIVICBUS_CONFIG", default_value = "civicbus.toml")]
    pub config: PathBuf,
    /// Who is enabling it, for the audit log (default `operator:$USER`).
    #[arg(long)]
    pub actor: Option<String>,
}

/// Open the store named by the configuration file at `path`.
async fn open_store(path: &Path) -> anyhow::Result<civicbus_store::SqlStore> {
    let loaded = config::load_file(path, &process_env());
    let cfg = match (loaded.has_errors(), loaded.config) {
        (false, Some(c)) => c,
        _ => anyhow::bail!(
            "{} has errors; see `civicbus config check {}`",
            path.display(),
            path.display()
        ),
    };
    civicbus_store::SqlStore::connect(&cfg.store.url)
        .await
        .context("cannot open the store")
}

fn rfc3339(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "-".into())
}

/// `civicbus endpoints list`: a plain table, one endpoint per line.
pub async fn endpoints_list(args: EndpointsListArgs) -> anyhow::Result<()> {
    let store = open_store(&args.config).await?;
    let endpoints = store.endpoints(args.tenant.as_deref()).await?;
    store.close().await;
    if endpoints.is_empty() {
        println!("no endpoint has failed or been disabled");
        return Ok(());
    }
    let rows: Vec<[String; 5]> = endpoints
        .iter()
        .map(|e| {
            let (status, since, why) = match &e.disabled {
                Some(d) => (
                    format!("disabled ({})", d.reason.as_str()),
                    rfc3339(Some(d.at)),
                    d.error.chars().take(100).collect::<String>(),
                ),
                None if e.failing_since.is_some() => (
                    "failing".to_string(),
                    rfc3339(e.failing_since),
                    String::new(),
                ),
                None => ("ok".to_string(), "-".to_string(), String::new()),
            };
            [
                e.subscription.clone(),
                status,
                rfc3339(e.failing_since),
                since,
                why,
            ]
        })
        .collect();
    print_table(
        &[
            "SUBSCRIPTION",
            "STATUS",
            "FAILING SINCE",
            "DISABLED AT",
            "LAST ERROR",
        ],
        &rows,
    );
    Ok(())
}

/// `civicbus endpoints enable KEY`.
pub async fn endpoints_enable(args: EndpointsEnableArgs) -> anyhow::Result<()> {
    let store = open_store(&args.config).await?;
    let actor = args.actor.clone().unwrap_or_else(|| {
        format!(
            "operator:{}",
            std::env::var("USER").unwrap_or_else(|_| "unknown".into())
        )
    });
    let state = store.endpoint(&args.subscription).await?;
    let changed = store
        .set_endpoint_enabled(&args.subscription, &actor)
        .await?;
    store.close().await;
    match (changed, state) {
        (true, _) => {
            println!(
                "{}: enabled; deliveries resume within 5 s. Replay its dead letters with reason \
                 endpoint-disabled to deliver what was held back.",
                args.subscription
            );
            Ok(())
        }
        (false, Some(_)) => {
            println!("{}: not disabled; nothing to do", args.subscription);
            Ok(())
        }
        (false, None) => anyhow::bail!(
            "no endpoint health is kept for `{}`; check the key (`<tenant>.<id>`) with `civicbus endpoints list`",
            args.subscription
        ),
    }
}

/// Print `rows` under `header` as a plain, space-aligned table.
pub fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Print an error and exit 1, or exit 0.
pub fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Where a schema command finds the catalogue.
#[derive(Debug, Args)]
pub struct CatalogueArgs {
    /// Configuration file: its `[schemas]` (and subscriptions, for `list`). Without it,
    /// the catalogue shipped with civicbus plus `--dir`s.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// More catalogue directories.
    #[arg(long = "dir")]
    pub dirs: Vec<PathBuf>,
}

/// `civicbus schema list`.
#[derive(Debug, Args)]
pub struct SchemaListArgs {
    #[command(flatten)]
    /// Where the catalogue is.
    pub catalogue: CatalogueArgs,
}

/// `civicbus schema validate`.
#[derive(Debug, Args)]
pub struct SchemaValidateArgs {
    #[command(flatten)]
    /// Where the catalogue is.
    pub catalogue: CatalogueArgs,
    /// The event type (not needed for a whole CloudEvent).
    #[arg(long = "type")]
    pub ty: Option<String>,
    /// The `dataschema` URI to validate against (default: the type's latest version).
    #[arg(long)]
    pub dataschema: Option<String>,
    /// JSON file: the `data`, or a structured-mode CloudEvent.
    pub file: PathBuf,
}

/// The configuration (if named) and the catalogue it describes.
pub(crate) fn load_catalogue(
    args: &CatalogueArgs,
) -> anyhow::Result<(Option<config::Config>, civicbus_schemas::Catalogue)> {
    let cfg = match &args.config {
        None => None,
        Some(path) => {
            let loaded = config::load_file(path, &process_env());
            match (loaded.has_errors(), loaded.config) {
                (false, Some(c)) => Some(c),
                _ => anyhow::bail!(
                    "{} has errors; see `civicbus config check {}`",
                    path.display(),
                    path.display()
                ),
            }
        }
    };
    let (builtin, mut dirs) = match &cfg {
        Some(c) => (c.schemas.builtin, c.schemas.dirs.clone()),
        None => (true, Vec::new()),
    };
    dirs.extend(args.dirs.iter().cloned());
    let catalogue = civicbus_schemas::Catalogue::load_with(builtin, &dirs).map_err(|e| {
        anyhow::anyhow!(
            "the schema catalogue has errors:\n  {}",
            e.0.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n  ")
        )
    })?;
    Ok((cfg, catalogue))
}

/// `civicbus schema list`: a plain table of types, versions, titles and subscribers.
pub fn schema_list(args: &SchemaListArgs) -> anyhow::Result<()> {
    let (cfg, catalogue) = load_catalogue(&args.catalogue)?;
    let rows: Vec<[String; 4]> = catalogue
        .schemas()
        .map(|s| {
            let users = match &cfg {
                None => "-".to_string(),
                Some(c) => {
                    let keys: Vec<String> = c
                        .subscriptions
                        .iter()
                        .filter(|sub| civicbus_core::filter::may_match_type(&sub.filters, &s.ty))
                        .map(|sub| format!("{}.{}", sub.tenant, sub.id))
                        .collect();
                    if keys.is_empty() {
                        "(none)".to_string()
                    } else {
                        keys.join(", ")
                    }
                }
            };
            [
                s.ty.clone(),
                format!("v{}", s.version),
                s.title.clone(),
                users,
            ]
        })
        .collect();
    print_table(&["TYPE", "VERSION", "TITLE", "SUBSCRIPTIONS"], &rows);
    println!();
    println!(
        "{} event schemas; `$id` https://civicbus.haliburton.ca/schemas/<type>/v<version> is the `dataschema` to name a version",
        catalogue.len()
    );
    Ok(())
}

/// `civicbus schema validate`: exit 0 if valid, 1 with every violation if not.
pub fn schema_validate(args: &SchemaValidateArgs) -> ExitCode {
    let run = || -> anyhow::Result<bool> {
        let (_, catalogue) = load_catalogue(&args.catalogue)?;
        let text = std::fs::read_to_string(&args.file)
            .with_context(|| format!("cannot read {}", args.file.display()))?;
        let doc: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", args.file.display()))?;
        // A whole structured CloudEvent carries its type, dataschema and data.
        let is_event = doc.get("specversion").is_some() && doc.get("type").is_some();
        let ty = match (&args.ty, is_event) {
            (Some(t), _) => t.clone(),
            (None, true) => doc["type"].as_str().unwrap_or_default().to_string(),
            (None, false) => anyhow::bail!(
                "{} holds only data: name its type with --type",
                args.file.display()
            ),
        };
        let dataschema = args.dataschema.clone().or_else(|| {
            is_event
                .then(|| {
                    doc.get("dataschema")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .flatten()
        });
        let data = if is_event {
            doc.get("data").cloned().unwrap_or(Value::Null)
        } else {
            doc
        };
        let schema = match catalogue.lookup(&ty, dataschema.as_deref()) {
            civicbus_schemas::Lookup::Found(s) => s,
            civicbus_schemas::Lookup::UnknownType { closest } => anyhow::bail!(
                "no schema for type `{ty}`{}",
                if closest.is_empty() {
                    String::new()
                } else {
                    format!("; did you mean {}?", closest.join(", "))
                }
            ),
            civicbus_schemas::Lookup::UnknownSchema { uri, known } => anyhow::bail!(
                "`dataschema` {uri} is not in the catalogue (known for `{ty}`: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
            civicbus_schemas::Lookup::OtherType { schema } => anyhow::bail!(
                "`dataschema` {} is the schema of `{}`, not `{ty}`",
                schema.id,
                schema.ty
            ),
        };
        let violations = schema.violations(&data);
        if violations.is_empty() {
            println!("{}: valid against {}", args.file.display(), schema.id);
            return Ok(true);
        }
        println!(
            "{}: {} violation(s) of {}",
            args.file.display(),
            violations.len(),
            schema.id
        );
        for v in violations {
            let at = if v.pointer.is_empty() {
                "/"
            } else {
                v.pointer.as_str()
            };
            println!("  {at}: {} ({})", v.message, v.keyword);
        }
        Ok(false)
    };
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `civicbus schema check OLD NEW`.
#[derive(Debug, Args)]
pub struct SchemaCheckArgs {
    /// Where shared documents referenced by the schemas are found.
    #[command(flatten)]
    pub catalogue: CatalogueArgs,
    /// The version subscribers were built against.
    pub old: PathBuf,
    /// The proposed version.
    pub new: PathBuf,
}

/// `civicbus schema check OLD NEW`: one line per change; exit 1 if any breaks
/// subscribers, 2 if the files cannot be read.
pub fn schema_check(args: &SchemaCheckArgs) -> ExitCode {
    let run = || -> anyhow::Result<bool> {
        let read = |p: &Path| -> anyhow::Result<Value> {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", p.display()))
        };
        let old = read(&args.old)?;
        let new = read(&args.new)?;
        let (_, catalogue) = load_catalogue(&args.catalogue)?;
        let resolve = |uri: &str| catalogue.document(uri).cloned();
        let changes = civicbus_schemas::compat::check(&old, &new, &resolve);
        for c in &changes {
            println!("{c}");
        }
        let breaking = civicbus_schemas::compat::is_breaking(&changes);
        let n = changes.iter().filter(|c| c.breaking).count();
        if breaking {
            println!(
                "{}: {n} breaking change(s) for subscribers; publish it as a new major version (v<N+1>) instead",
                args.new.display()
            );
        } else {
            println!(
                "{}: compatible with {} ({} note(s))",
                args.new.display(),
                args.old.display(),
                changes.len()
            );
        }
        Ok(!breaking)
    };
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `civicbus schema asyncapi`.
#[derive(Debug, Args)]
pub struct SchemaAsyncapiArgs {
    /// Configuration file: channels, subscriptions and schema directories.
    #[arg(long, short, env = "CIVICBUS_CONFIG", default_value = "civicbus.toml")]
    pub config: PathBuf,
    /// Write the document here (default: standard output).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
}

/// `civicbus schema asyncapi`: the AsyncAPI 3.0 document (JSON) of the configured bus.
pub fn schema_asyncapi(args: &SchemaAsyncapiArgs) -> anyhow::Result<()> {
    let (cfg, catalogue) = load_catalogue(&CatalogueArgs {
        config: Some(args.config.clone()),
        dirs: Vec::new(),
    })?;
    let cfg = cfg.context("no configuration")?;
    let doc = crate::asyncapi::document(&cfg, &catalogue);
    let text = serde_json::to_string_pretty(&doc)?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, format!("{text}\n"))
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "wrote {} (AsyncAPI 3.0.0: {} channels, {} messages)",
                path.display(),
                doc["channels"].as_object().map_or(0, |c| c.len()),
                doc["components"]["messages"]
                    .as_object()
                    .map_or(0, |m| m.len())
            );
        }
        None => println!("{text}"),
    }
    Ok(())
}
