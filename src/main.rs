//! serin's command line: `serin controller` runs the operator, `serin crd` prints its CRDs.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};
use serin::controller::leader::LeaseConfig;
use serin::controller::{self, Options};
use serin::telemetry::{self, Metrics};

#[derive(Parser)]
#[command(name = "serin", version, about = "Progressive delivery for Kubernetes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Release controller against the current kube context.
    Controller(ControllerArgs),
    /// Print the CustomResourceDefinitions, or write one file each into a folder.
    Crd {
        #[arg(long, value_name = "DIR")]
        write: Option<PathBuf>,
    },
}

/// Every flag has an environment variable, for 12-factor configuration.
#[derive(clap::Args)]
struct ControllerArgs {
    #[arg(long, env = "SERIN_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Watch only this namespace (default: all).
    #[arg(long, env = "SERIN_NAMESPACE")]
    namespace: Option<String>,
    /// Releases reconciled at once.
    #[arg(long, env = "SERIN_CONCURRENCY", default_value_t = 8)]
    concurrency: u16,
    /// Where /metrics is served.
    #[arg(long, env = "SERIN_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Where /healthz and /readyz are served.
    #[arg(long, env = "SERIN_HEALTH_ADDR", default_value = "0.0.0.0:8081")]
    health_addr: SocketAddr,
    /// Hold a Lease before writing anything, so that replicas take turns.
    #[arg(long, env = "SERIN_LEADER_ELECT", default_value_t = true, action = ArgAction::Set)]
    leader_elect: bool,
    /// Namespace of the Lease (default: the watched namespace, else "default").
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    #[arg(long, env = "SERIN_LEASE_NAME", default_value = "serin-controller")]
    lease_name: String,
    /// Seconds a Lease holder that stops renewing keeps it.
    #[arg(long, env = "SERIN_LEASE_DURATION", default_value_t = 15)]
    lease_duration_seconds: u64,
    /// This replica's name in the Lease (default: random).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    match Cli::parse().command {
        Command::Controller(args) => {
            telemetry::init_logs(matches!(args.log_format, LogFormat::Json));
            let metrics = Arc::new(Metrics::new());
            let config = kube::Config::infer().await?;
            let client = kube::client::ClientBuilder::try_from(config)?
                .with_layer(&metrics.count_requests())
                .build();
            let lease = args.leader_elect.then(|| LeaseConfig {
                namespace: args
                    .lease_namespace
                    .clone()
                    .or_else(|| args.namespace.clone())
                    .unwrap_or_else(|| "default".into()),
                name: args.lease_name.clone(),
                identity: args.identity.clone(),
                duration_seconds: args.lease_duration_seconds,
            });
            let options = Options {
                namespace: args.namespace,
                concurrency: args.concurrency,
                metrics_addr: args.metrics_addr,
                health_addr: args.health_addr,
                lease,
            };
            controller::run(client, metrics, options).await?;
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
