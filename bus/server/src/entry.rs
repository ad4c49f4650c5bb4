//! The `civicbus` command line: parsing and dispatch.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{cli, config, telemetry};

/// civicbus: an event bus for the business systems of a county and its municipalities.
#[derive(Debug, Parser)]
#[command(name = "civicbus", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "CIVICBUS_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the bus: HTTP API, AMQP ingress, router and deliveries.
    Serve {
        /// Configuration file.
        #[arg(long, short, env = "CIVICBUS_CONFIG", default_value = "civicbus.toml")]
        config: PathBuf,
    },
    /// Run a demonstration: real events through the local RabbitMQ to simulated municipal
    /// systems, on a throw-away SQLite store.
    Demo {
        /// RabbitMQ URL.
        #[arg(
            long,
            env = "CIVICBUS_BROKER_URL",
            default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
        )]
        broker_url: String,
        /// Keep the SQLite store (its path is printed) instead of deleting it.
        #[arg(long)]
        keep: bool,
        /// Where the example transform plugins are (`permit-to-record.wasm` maps the
        /// county records system's permits; skipped if missing).
        #[arg(long, default_value = "transforms/examples/target/plugins")]
        plugins: PathBuf,
    },
    /// Publish an event to a running bus over HTTP.
    Publish(cli::PublishArgs),
    /// Configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Credentials and signing secrets.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The schema catalogue: list, validate data, check compatibility, AsyncAPI.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// Transform plugins: scaffold, build and test them.
    Transform {
        #[command(subcommand)]
        command: TransformCommand,
    },
    /// Subscriber endpoints: which are failing or disabled, and enabling them again.
    Endpoints {
        #[command(subcommand)]
        command: EndpointsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum SchemaCommand {
    /// List every event type and version in the catalogue, and which subscriptions use it.
    List(cli::SchemaListArgs),
    /// Validate a file holding an event's `data` (or a whole structured CloudEvent)
    /// against the catalogue, listing every violation.
    Validate(cli::SchemaValidateArgs),
    /// Compare two versions of a schema and list what would break subscribers (exit 1
    /// if anything does).
    Check(cli::SchemaCheckArgs),
    /// Write an AsyncAPI 3.0 document of the bus's channels and messages.
    Asyncapi(cli::SchemaAsyncapiArgs),
}

#[derive(Debug, Subcommand)]
enum TransformCommand {
    /// Scaffold a plugin crate (SDK vendored, an example mapping and its test).
    New(crate::transform_cli::NewArgs),
    /// Build a plugin crate for wasm32-wasip2 (adding the target if missing); print the
    /// component's path, size and digest.
    Build(crate::transform_cli::BuildArgs),
    /// Run a plugin on an event in the production sandbox, validate the outputs against
    /// the schemas, compare them with the expected ones (exit 1 on any difference).
    Test(crate::transform_cli::TestArgs),
}

#[derive(Debug, Subcommand)]
enum EndpointsCommand {
    /// List every endpoint the store keeps health for (failing or disabled), as a table.
    List(cli::EndpointsListArgs),
    /// Enable a disabled endpoint: deliveries are attempted again (within 5 s). Replay its
    /// dead letters (reason endpoint-disabled) to deliver what was held back.
    Enable(cli::EndpointsEnableArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print a complete, commented example configuration.
    Example,
    /// Check a configuration file and report every error with its key path.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The file to check.
    file: PathBuf,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Generate an API token and print it with the SHA-256 to put in the configuration.
    Generate {
        /// Generate a webhook signing secret (`whsec_…`, HMAC `v1` signatures) instead.
        #[arg(long)]
        secret: bool,
        /// Generate an ed25519 webhook signing key (`whsk_…`, `v1a` signatures) and its
        /// public key (`whpk_…`, for the subscriber) instead.
        #[arg(long, conflicts_with = "secret")]
        signing_key: bool,
    },
}

/// Parse the command line and run the command.
pub fn main_entry() -> ExitCode {
    let cli = Cli::parse();
    let json = matches!(cli.log_format, LogFormat::Json);
    match cli.command {
        Command::Config { command } => match command {
            ConfigCommand::Example => {
                print!("{}", config::EXAMPLE);
                ExitCode::SUCCESS
            }
            ConfigCommand::Check(args) => cli::config_check(&args.file),
        },
        Command::Token { command } => match command {
            TokenCommand::Generate {
                secret,
                signing_key,
            } => {
                cli::token_generate(secret, signing_key);
                ExitCode::SUCCESS
            }
        },
        Command::Serve { config } => {
            telemetry::init(json, "info");
            cli::block_on(cli::serve(config))
        }
        Command::Demo {
            broker_url,
            keep,
            plugins,
        } => {
            telemetry::init(json, "warn");
            cli::block_on(crate::demo::run(broker_url, keep, plugins))
        }
        Command::Schema { command } => match command {
            SchemaCommand::List(args) => cli::exit(cli::schema_list(&args)),
            SchemaCommand::Validate(args) => cli::schema_validate(&args),
            SchemaCommand::Check(args) => cli::schema_check(&args),
            SchemaCommand::Asyncapi(args) => cli::exit(cli::schema_asyncapi(&args)),
        },
        Command::Transform { command } => match command {
            TransformCommand::New(args) => cli::exit(crate::transform_cli::new(&args)),
            TransformCommand::Build(args) => cli::exit(crate::transform_cli::build(&args)),
            TransformCommand::Test(args) => {
                telemetry::init(json, "warn");
                crate::transform_cli::test(&args)
            }
        },
        Command::Endpoints { command } => {
            telemetry::init(json, "warn");
            match command {
                EndpointsCommand::List(args) => cli::block_on(cli::endpoints_list(args)),
                EndpointsCommand::Enable(args) => cli::block_on(cli::endpoints_enable(args)),
            }
        }
        Command::Publish(args) => {
            telemetry::init(json, "warn");
            cli::block_on(cli::publish(args))
        }
    }
}
