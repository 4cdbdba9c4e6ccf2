//! serin's command line: `serin controller` runs the operator, `serin crd` prints its CRDs.
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "serin", version, about = "Progressive delivery for Kubernetes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Release controller against the current kube context.
    Controller {
        #[arg(long, env = "SERIN_LOG_FORMAT", value_enum, default_value = "text")]
        log_format: LogFormat,
        /// Watch only this namespace (default: all).
        #[arg(long, env = "SERIN_NAMESPACE")]
        namespace: Option<String>,
        /// Releases reconciled at once.
        #[arg(long, env = "SERIN_CONCURRENCY", default_value_t = 8)]
        concurrency: u16,
    },
    /// Print the CustomResourceDefinitions, or write one file each into a folder.
    Crd {
        #[arg(long, value_name = "DIR")]
        write: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    match Cli::parse().command {
        Command::Controller {
            log_format,
            namespace,
            concurrency,
        } => {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
            let logs = tracing_subscriber::fmt().with_env_filter(filter);
            match log_format {
                LogFormat::Json => logs.json().init(),
                LogFormat::Text => logs.init(),
            }
            let client = kube::Client::try_default().await?;
            serin::controller::run(client, namespace, concurrency).await;
        }
        Command::Crd { write: None } => print!("{}", serin::api::crds_yaml()),
        Command::Crd { write: Some(dir) } => {
            std::fs::create_dir_all(&dir)?;
            for (file, yaml) in serin::api::crd_files() {
                std::fs::write(dir.join(file), yaml)?;
            }
        }
    }
    Ok(())
}
