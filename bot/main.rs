//! The `klaxon` binary: parses the command line and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use klaxon::config::{self, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "klaxon",
    version,
    about = "Chat-ops bot for Slack incident channels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the webhook server, the scheduler and the Slack sender.
    Serve {
        /// Config file (default: klaxon.toml if present).
        #[arg(long, env = "KLAXON_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[arg(long, env = "KLAXON_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Validate config and templates; list every problem and exit non-zero if any.
    CheckConfig {
        /// Config file to check (positional or --config).
        #[arg(env = "KLAXON_CONFIG")]
        file: Option<PathBuf>,
        #[arg(long = "config", conflicts_with = "file")]
        config: Option<PathBuf>,
    },
    /// Play a whole incident locally: no Slack account needed.
    Demo {
        /// Keep serving the status page and the history afterwards, until Ctrl-C.
        #[arg(long)]
        keep: bool,
    },
}

fn load(config: Option<PathBuf>) -> Result<Settings, ExitCode> {
    let path = config::resolve_path(config.as_deref());
    config::load(path.as_deref(), &config::process_env).map_err(|e| {
        eprint!("{e}");
        ExitCode::from(2)
    })
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve { config } => {
            let settings = match load(config) {
                Ok(s) => s,
                Err(code) => return code,
            };
            klaxon::telemetry::init_logging(settings.log_format);
            let names: Vec<String> = std::env::vars_os()
                .filter_map(|(k, _)| k.into_string().ok())
                .collect();
            for name in config::unknown_variables(names.iter().map(String::as_str)) {
                tracing::warn!(
                    variable = name,
                    "Klaxon does not read this variable (misspelt?); README \"Configuration\" lists the ones it reads"
                );
            }
            rt.block_on(serve(settings))
        }
        Command::Migrate { config } => {
            let settings = match load(config) {
                Ok(s) => s,
                Err(code) => return code,
            };
            klaxon::telemetry::init_logging(settings.log_format);
            rt.block_on(migrate(settings))
        }
        Command::CheckConfig { file, config } => {
            return klaxon::server::check_config(file.or(config).as_deref());
        }
        Command::Demo { keep } => rt.block_on(klaxon::demo::run(keep)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("klaxon: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
    let app = klaxon::server::build(settings, None).await?;
    klaxon::server::run(app, listener, klaxon::server::shutdown_signal()).await
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    let store = klaxon::store::Store::connect(settings.database_url.expose_secret()).await?;
    store.migrate().await?;
    store.close().await;
    println!("migrations applied");
    Ok(())
}
