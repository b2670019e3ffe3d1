//! The `triage` binary: the server, and the command-line tools that share
//! its configuration.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use triage::config::Config;

#[derive(Parser)]
#[command(name = "triage", version, about = "Cost-aware LLM router for customer support")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web server (the default).
    Serve,
    /// Load and validate the configuration, print it (secrets hidden), exit.
    CheckConfig,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("triage: {e}");
            return ExitCode::from(2);
        }
    };
    triage::server::init_tracing(&config);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => match triage::server::serve(config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("triage: {e}");
                ExitCode::FAILURE
            }
        },
        Command::CheckConfig => {
            match toml_string(&config) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("{e}"),
            }
            ExitCode::SUCCESS
        }
    }
}

fn toml_string(config: &Config) -> Result<String, String> {
    serde_json::to_string_pretty(config).map_err(|e| e.to_string())
}
