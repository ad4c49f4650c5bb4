//! `civicbus transform new | build | test`: the integrator's tools for plugins.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::Context as _;
use clap::Args;
use serde_json::Value;

/// The target plugins are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// The SDK and the WIT contract, embedded so that `transform new` works anywhere.
static SDK: include_dir::Dir<'static> =
    include_dir::include_dir!("$CARGO_MANIFEST_DIR/../../transforms/sdk/src");
static SDK_MANIFEST: &str = include_str!("../../../transforms/sdk/Cargo.toml");
static SDK_README: &str = include_str!("../../../transforms/sdk/README.md");
static WIT: &str = include_str!("../../../transforms/wit/transform.wit");

/// `civicbus transform new NAME`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// Plugin (crate) name: lower-case letters, digits and `-`.
    pub name: String,
    /// Parent directory (default: the current one).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

/// `civicbus transform build [DIR]`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The plugin crate (default: the current directory).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

/// `civicbus transform test PLUGIN.wasm --input EVENT.json`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The plugin component.
    pub plugin: PathBuf,
    /// A structured-mode CloudEvent (JSON) to transform.
    #[arg(long)]
    pub input: PathBuf,
    /// The expected output: a JSON array of structured CloudEvents (exit 1 on a
    /// difference).
    #[arg(long)]
    pub expect: Option<PathBuf>,
    /// The plugin's static configuration: JSON text, or `@FILE`.
    #[arg(long, default_value = "{}")]
    pub plugin_config: String,
    /// civicbus configuration whose `[transforms]` limits and `[schemas]` to use
    /// (default: the defaults and the shipped catalogue).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Scaffold a plugin crate that builds as is: the SDK and WIT vendored under
/// `civicbus/`, a working example mapping with a native test.
pub fn new(args: &NewArgs) -> anyhow::Result<()> {
    if !valid_name(&args.name) {
        anyhow::bail!(
            "`{}` is not a plugin name: use lower-case letters, digits and `-`, starting with a letter (e.g. permit-to-record)",
            args.name
        );
    }
    let root = args.dir.join(&args.name);
    if root.exists() {
        anyhow::bail!(
            "{} exists already; pick another name or --dir",
            root.display()
        );
    }
    let ident: String = args
        .name
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    write(
        &root.join("Cargo.toml"),
        &format!(
            r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
# cdylib is the WebAssembly component; rlib lets native tests use the crate.
crate-type = ["cdylib", "rlib"]

[dependencies]
civicbus-transform-sdk = {{ path = "civicbus/sdk" }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
panic = "abort"

# A workspace of its own (the vendored SDK is part of it).
[workspace]
"#,
            name = args.name
        ),
    )?;
    write(
        &root.join("src/lib.rs"),
        &TEMPLATE.replace("PluginName", &ident),
    )?;
    write(
        &root.join("tests/input.json"),
        &serde_json::to_string_pretty(&sample_input())?,
    )?;
    write(
        &root.join("README.md"),
        &format!(
            "# {name}\n\nA civicbus transform plugin (see `civicbus/sdk/README.md`).\n\n\
             ```sh\ncargo test                              # native tests of the mapping\n\
             civicbus transform build                # the component, its size and digest\n\
             civicbus transform test target/wasm32-wasip2/release/{file}.wasm --input tests/input.json\n```\n",
            name = args.name,
            file = args.name.replace('-', "_")
        ),
    )?;
    write(&root.join(".gitignore"), "/target\n")?;
    // The SDK, vendored: its manifest, sources and README, and the WIT next to it (the
    // SDK finds it at ../wit).
    write(&root.join("civicbus/sdk/Cargo.toml"), SDK_MANIFEST)?;
    write(&root.join("civicbus/sdk/README.md"), SDK_README)?;
    for file in SDK.files() {
        let text = file.contents_utf8().unwrap_or_default();
        write(&root.join("civicbus/sdk/src").join(file.path()), text)?;
    }
    write(&root.join("civicbus/wit/transform.wit"), WIT)?;
    println!("created {} (plugin `{}`)", root.display(), args.name);
    println!("next:");
    println!("  cd {}", root.display());
    println!("  cargo test                 # the mapping, natively");
    println!("  civicbus transform build   # the WebAssembly component");
    println!(
        "  civicbus transform test target/{TARGET}/release/{}.wasm --input tests/input.json",
        args.name.replace('-', "_")
    );
    Ok(())
}

fn sample_input() -> Value {
    serde_json::json!({
        "specversion": "1.0",
        "id": "dys-9003",
        "source": "/dysart/permitting",
        "type": "ca.haliburton.permitting.permit.issued",
        "subject": "BP-2026-0147",
        "time": "2026-11-25T14:03:00Z",
        "datacontenttype": "application/json",
        "data": {
            "PermitNum": "BP-2026-0147",
            "Jurisdiction": "dysart",
            "Description": "Single detached dwelling",
            "IssuedDate": "2026-11-25",
            "PermitTypeMapped": "Building",
            "OriginalAddress1": "1021 Kennisis Lake Rd",
            "OriginalCity": "Haliburton",
            "PIN": "4624010001023000000",
            "Fee": "2150.00"
        }
    })
}

/// The scaffold's mapping: a permit issued tags its parcel in the GIS.
const TEMPLATE: &str = r#"//! A civicbus transform plugin: a permit issued tags its parcel in the GIS
//! (`ca.haliburton.permitting.permit.issued` → `ca.haliburton.gis.parcel.updated`).
//! Replace the mapping with your own; keep it deterministic (no clocks, no randomness).

use civicbus_transform_sdk::{Error, Event, Transform, bail, catalogue_schema, parse_config};
use serde::Deserialize;
use serde_json::json;

const INPUT: &str = "ca.haliburton.permitting.permit.issued";
const OUTPUT: &str = "ca.haliburton.gis.parcel.updated";

/// Static configuration (the `config` table of the plugin in civicbus.toml), as JSON.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `source` of the outputs (default: the input's).
    #[serde(default)]
    source: Option<String>,
}

/// The fields of the input this plugin reads.
#[derive(Deserialize)]
struct Permit {
    #[serde(rename = "PermitNum")]
    permit_num: String,
    #[serde(rename = "PIN")]
    roll_number: String,
    #[serde(rename = "IssuedDate")]
    issued_date: String,
    #[serde(rename = "Jurisdiction")]
    jurisdiction: String,
}

/// The plugin.
pub struct PluginName {
    config: Config,
}

impl Transform for PluginName {
    fn init(config: &str) -> Result<Self, String> {
        Ok(PluginName {
            config: parse_config(config)?,
        })
    }

    fn transform(&self, input: Event) -> Result<Vec<Event>, Error> {
        if input.ty != INPUT {
            // Not for this plugin: filter it out.
            return Ok(vec![]);
        }
        let permit: Permit = input.data_json()?;
        if permit.jurisdiction == "county" {
            bail!("permit {} names the county, not a municipality", permit.permit_num);
        }
        let parcel = json!({
            "type": "Feature",
            "id": permit.roll_number,
            "geometry": null,
            "properties": {
                "arn": permit.roll_number,
                "municipality": permit.jurisdiction,
                "tags": [format!("permit:{}", permit.permit_num)],
                "effectiveDate": permit.issued_date,
            }
        });
        let mut out = Event::derive(&input, OUTPUT)
            .subject(&permit.roll_number)
            .dataschema(catalogue_schema(OUTPUT, 1));
        if let Some(source) = &self.config.source {
            out = out.source(source);
        }
        Ok(vec![out.json(&parcel)?])
    }
}

civicbus_transform_sdk::export!(PluginName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permit_tags_its_parcel() {
        let text = std::fs::read_to_string("tests/input.json").expect("tests/input.json");
        let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let input = Event::from_structured_json(&json).expect("a CloudEvent");
        let plugin = PluginName::init("{}").expect("init");
        let out = civicbus_transform_sdk::run(&plugin, input).expect("transformed");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].ty, OUTPUT);
        assert_eq!(out[0].causationid(), Some("dys-9003"));
    }
}
"#;

/// Make sure the wasm target is installed (rustup), then build the crate in release and
/// print the component's path, size and digest.
pub fn build(args: &BuildArgs) -> anyhow::Result<()> {
    let manifest = args.dir.join("Cargo.toml");
    if !manifest.is_file() {
        anyhow::bail!(
            "{} has no Cargo.toml; give the plugin crate's directory (or create one with `civicbus transform new NAME`)",
            args.dir.display()
        );
    }
    ensure_target()?;
    let status = Command::new("cargo")
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(&manifest)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        anyhow::bail!("cargo build failed ({status})");
    }
    let meta = Command::new("cargo")
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .context("cannot run cargo metadata")?;
    let meta: Value = serde_json::from_slice(&meta.stdout).context("cargo metadata output")?;
    let target_dir = PathBuf::from(meta["target_directory"].as_str().unwrap_or("target"));
    let manifest_abs = std::fs::canonicalize(&manifest).unwrap_or(manifest.clone());
    let package = meta["packages"]
        .as_array()
        .and_then(|ps| {
            ps.iter().find(|p| {
                p["manifest_path"]
                    .as_str()
                    .is_some_and(|m| Path::new(m) == manifest_abs)
            })
        })
        .context("the crate is not in cargo metadata")?;
    let lib = package["targets"]
        .as_array()
        .and_then(|ts| {
            ts.iter().find(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
            })
        })
        .context(
            "the crate has no cdylib target; set `crate-type = [\"cdylib\", \"rlib\"]` in [lib]",
        )?;
    let file = format!(
        "{}.wasm",
        lib["name"].as_str().unwrap_or_default().replace('-', "_")
    );
    let wasm = target_dir.join(TARGET).join("release").join(file);
    let bytes = std::fs::read(&wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
    println!("plugin: {}", wasm.display());
    println!("size:   {} bytes", bytes.len());
    println!("digest: {}", civicbus_transform_host::digest(&bytes));
    println!(
        "use it:  [[plugins]] name = \"{}\", path = \"{}\", digest = \"{}\"",
        package["name"].as_str().unwrap_or_default(),
        wasm.display(),
        civicbus_transform_host::digest(&bytes)
    );
    Ok(())
}

/// Install the wasm target with rustup if this toolchain does not have it.
pub fn ensure_target() -> anyhow::Result<()> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .context("cannot run rustc")?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    if Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .is_dir()
    {
        return Ok(());
    }
    eprintln!("installing the {TARGET} target (rustup target add {TARGET})");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .context("the wasm32-wasip2 target is missing and rustup cannot be run to add it")?;
    if !status.success() {
        anyhow::bail!("`rustup target add {TARGET}` failed ({status})");
    }
    Ok(())
}

/// Run a plugin on one event in the production sandbox, validate the outputs against the
/// schema catalogue, and compare them with the expected ones. Exit 0 if all is well, 1
/// if not, 2 if the command could not run.
pub fn test(args: &TestArgs) -> ExitCode {
    match run_test(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_test(args: &TestArgs) -> anyhow::Result<bool> {
    let (cfg, catalogue) = crate::cli::load_catalogue(&crate::cli::CatalogueArgs {
        config: args.config.clone(),
        dirs: Vec::new(),
    })?;
    let host_config = cfg
        .as_ref()
        .map(|c| c.transforms.host_config())
        .unwrap_or_default();
    let host = civicbus_transform_host::TransformHost::new(host_config)
        .map_err(|e| anyhow::anyhow!("cannot start the sandbox: {e}"))?;
    let plugin_config = match args.plugin_config.strip_prefix('@') {
        Some(file) => {
            std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?
        }
        None => args.plugin_config.clone(),
    };
    let name = args
        .plugin
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plugin")
        .to_string();
    let plugin = host
        .load(&name, &args.plugin, &plugin_config)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!("plugin {name} {}", plugin.digest());
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let input = civicbus_core::binding::parse_structured(text.as_bytes(), &Default::default())
        .map_err(|e| anyhow::anyhow!("{} is not a CloudEvent: {e}", args.input.display()))?;
    let outputs = match plugin.transform(&input) {
        Ok(o) => o,
        Err(e) => {
            println!(
                "transform failed ({}{}): {e}",
                e.label(),
                if e.is_retryable() {
                    ", retryable"
                } else {
                    ", terminal: the event would be dead-lettered"
                }
            );
            return Ok(false);
        }
    };
    let mut ok = true;
    for (i, out) in outputs.iter().enumerate() {
        match catalogue.lookup(&out.ty, out.dataschema.as_deref()) {
            civicbus_schemas::Lookup::Found(schema) => {
                let data = match &out.data {
                    Some(civicbus_core::Data::Json(v)) => v.clone(),
                    None => Value::Null,
                    Some(_) => Value::String("(not JSON)".into()),
                };
                for v in schema.violations(&data) {
                    ok = false;
                    let at = if v.pointer.is_empty() {
                        "/"
                    } else {
                        &v.pointer
                    };
                    println!(
                        "output [{i}] breaks {}: {at}: {} ({})",
                        schema.id, v.message, v.keyword
                    );
                }
            }
            _ => {
                ok = false;
                println!(
                    "output [{i}]: no schema for type `{}`: the bus would refuse it",
                    out.ty
                );
            }
        }
    }
    let actual = Value::Array(outputs.iter().map(|o| o.to_json()).collect());
    let pretty = serde_json::to_string_pretty(&actual)?;
    match &args.expect {
        None => println!("{pretty}"),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let expected: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            if expected == actual {
                println!("{} output(s) as expected", outputs.len());
            } else {
                ok = false;
                println!("outputs differ from {}:", path.display());
                let want = serde_json::to_string_pretty(&expected)?;
                print_diff(&want, &pretty);
            }
        }
    }
    Ok(ok)
}

/// A plain line diff: `-` expected, `+` actual.
fn print_diff(expected: &str, actual: &str) {
    let (a, b): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    // Longest common subsequence, enough for event-sized documents.
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            println!("+{}", b[j]);
            j += 1;
        } else {
            println!("-{}", a[i]);
            i += 1;
        }
    }
}
