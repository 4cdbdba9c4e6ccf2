//! serin's command line: `serin controller` runs the operator, `serin crd` prints
//! its CRDs, `serin self-test` checks an installed serin (the chart's `helm test`).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};
use serin::controller::client::Pace;
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
    /// Check an installed serin: its CRDs Established and current, the
    /// controller's Lease held, the metrics endpoint answering. Exits 1 on a failure.
    SelfTest(SelfTestArgs),
}

#[derive(clap::Args)]
struct SelfTestArgs {
    /// Namespace of the controller's Lease; with --lease-name.
    #[arg(long, env = "SERIN_LEASE_NAMESPACE", requires = "lease_name")]
    lease_namespace: Option<String>,
    /// The controller's Lease; not checked when absent (no leader election).
    #[arg(long, env = "SERIN_LEASE_NAME", requires = "lease_namespace")]
    lease_name: Option<String>,
    /// serin's /metrics, e.g. http://serin-metrics.serin-system.svc:8080/metrics.
    #[arg(long, env = "SERIN_METRICS_URL")]
    metrics_url: Option<String>,
}

/// Every flag has an environment variable, for 12-factor configuration.
#[derive(clap::Args)]
struct ControllerArgs {
    #[arg(long, env = "SERIN_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Watch only this namespace (default: all).
    #[arg(long, env = "SERIN_NAMESPACE")]
    namespace: Option<String>,
    /// Releases reconciled at once. Rounds mostly wait on the API server, and
    /// the client's pace (below) is what bounds the load.
    #[arg(long, env = "SERIN_CONCURRENCY", default_value_t = 32)]
    concurrency: u16,
    /// Requests per second the controller sends to the API server, on average
    /// (the Lease's renewals are not counted against it).
    #[arg(long, env = "SERIN_KUBE_API_QPS", default_value_t = 100.0)]
    kube_api_qps: f32,
    /// Requests the controller may send at once above that pace.
    #[arg(long, env = "SERIN_KUBE_API_BURST", default_value_t = 200)]
    kube_api_burst: u32,
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
    /// Server-side apply serin's CRDs (field manager "serin") and wait until
    /// they are Established before starting; `helm upgrade` never updates CRDs.
    /// A CRD a newer serin applied is left alone.
    #[arg(long, env = "SERIN_APPLY_CRDS", default_value_t = false, action = ArgAction::Set)]
    apply_crds: bool,
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
            let pace = Pace {
                qps: args.kube_api_qps,
                burst: args.kube_api_burst,
            };
            let clients = controller::client::build(config, &metrics, pace)?;
            if args.apply_crds {
                controller::crds::apply(&clients.controller, serin::api::crds()).await?;
            }
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
            controller::run(clients, metrics, options).await?;
        }
        Command::SelfTest(args) => {
            let client = kube::Client::try_default().await?;
            let targets = controller::selftest::Targets {
                lease: args.lease_namespace.zip(args.lease_name),
                metrics_url: args.metrics_url,
            };
            let checks = controller::selftest::run(&client, &targets).await;
            let mut failed = 0;
            for check in &checks {
                match &check.result {
                    Ok(detail) => println!("ok    {}: {detail}", check.what),
                    Err(why) => {
                        failed += 1;
                        println!("FAIL  {}: {why}", check.what);
                    }
                }
            }
            if failed > 0 {
                println!("{failed} of {} checks failed", checks.len());
                std::process::exit(1);
            }
            println!("all {} checks passed", checks.len());
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
