//! serin's command line: `serin controller` runs the operator, `serin crd` prints
//! its CRDs, `serin self-test` checks an installed serin (the chart's `helm test`).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{ArgAction, CommandFactory, Parser, Subcommand, ValueEnum};
use serin::controller::client::Pace;
use serin::controller::leader::LeaseConfig;
use serin::controller::shard::Shard;
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
    /// With --shards N above 1, each shard's Lease is checked (<lease-name>-shard-<I>-of-<N>).
    #[arg(long, env = "SERIN_SHARDS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    shards: u32,
    /// serin's /metrics, e.g. http://serin-metrics.serin-system.svc:8080/metrics.
    #[arg(long, env = "SERIN_METRICS_URL")]
    metrics_url: Option<String>,
}

/// Every flag has an environment variable, for 12-factor configuration.
#[derive(clap::Args)]
struct ControllerArgs {
    #[arg(long, env = "SERIN_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Watch only these namespaces, comma-separated or repeated (default: all).
    #[arg(
        long = "namespace",
        env = "SERIN_NAMESPACE",
        value_delimiter = ',',
        value_name = "NAMESPACE"
    )]
    namespaces: Vec<String>,
    /// Split the Releases between this many controllers, each with a Lease of its own.
    #[arg(long, env = "SERIN_SHARDS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    shards: u32,
    /// This controller's shard: 0 to --shards minus 1.
    #[arg(long, env = "SERIN_SHARD_INDEX", default_value_t = 0)]
    shard_index: u32,
    /// Releases reconciled at once. Rounds mostly wait on the API server, and
    /// the client's pace (below) is what bounds the load.
    #[arg(long, env = "SERIN_CONCURRENCY", default_value_t = 32)]
    concurrency: u16,
    /// Watch the Secrets of these namespaces, for Releases whose
    /// `configSnapshots.secrets` copies them: a change rolls out. Needs list
    /// and watch on Secrets there (the chart's `configSnapshots.secrets`).
    #[arg(
        long,
        env = "SERIN_SNAPSHOT_SECRETS_IN",
        value_delimiter = ',',
        value_name = "NAMESPACE"
    )]
    snapshot_secrets_in: Vec<String>,
    /// Kinds that Releases' `trafficRouting.generic` drives, watched so that a
    /// hand edit of their weights is put back at once, as
    /// `group/version/resource` (e.g. `traefik.io/v1alpha1/traefikservices`).
    /// Needs list and watch on them (the chart's `trafficRouting.generic`).
    #[arg(
        long,
        env = "SERIN_WATCH_GENERIC",
        value_delimiter = ',',
        value_name = "GROUP/VERSION/RESOURCE"
    )]
    watch_generic: Vec<String>,
    /// Requests per second the controller sends to the API server, on average
    /// (the Lease's renewals are not counted against it).
    #[arg(long, env = "SERIN_KUBE_API_QPS", default_value_t = 200.0)]
    kube_api_qps: f32,
    /// Requests the controller may send at once above that pace.
    #[arg(long, env = "SERIN_KUBE_API_BURST", default_value_t = 400)]
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
    /// Namespace of the Lease (default: the first watched namespace, else "default").
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// With --shards above 1, shard I's Lease is <lease-name>-shard-<I>-of-<N>.
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

/// The namespaces to watch, each once; an empty entry (`a,,b`, or an empty
/// SERIN_NAMESPACE) names none, so none at all means all.
fn distinct(namespaces: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    namespaces
        .into_iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty() && seen.insert(n.clone()))
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    match Cli::parse().command {
        Command::Controller(args) => {
            let shard = Shard::new(args.shard_index, args.shards).unwrap_or_else(|error| {
                Cli::command()
                    .error(clap::error::ErrorKind::ArgumentConflict, error)
                    .exit()
            });
            telemetry::init_logs(matches!(args.log_format, LogFormat::Json));
            let metrics = Arc::new(Metrics::new());
            metrics.shard(shard.index(), shard.count());
            let config = kube::Config::infer().await?;
            let pace = Pace {
                qps: args.kube_api_qps,
                burst: args.kube_api_burst,
            };
            let clients = controller::client::build(config, &metrics, pace)?;
            if args.apply_crds {
                controller::crds::apply(&clients.controller, serin::api::crds()).await?;
            }
            let namespaces = distinct(args.namespaces.clone());
            let lease = args.leader_elect.then(|| LeaseConfig {
                namespace: args
                    .lease_namespace
                    .clone()
                    .or_else(|| namespaces.first().cloned())
                    .unwrap_or_else(|| "default".into()),
                name: shard.lease_name(&args.lease_name),
                identity: args.identity.clone(),
                duration_seconds: args.lease_duration_seconds,
            });
            let options = Options {
                namespaces,
                shard,
                concurrency: args.concurrency,
                metrics_addr: args.metrics_addr,
                health_addr: args.health_addr,
                lease,
                snapshot_secrets_in: args.snapshot_secrets_in.clone(),
                watch_generic: args.watch_generic.clone(),
            };
            controller::run(clients, metrics, options).await?;
        }
        Command::SelfTest(args) => {
            let client = kube::Client::try_default().await?;
            let shards = Shard::new(0, args.shards)?;
            let targets = controller::selftest::Targets {
                leases: (args.lease_namespace.zip(args.lease_name).into_iter())
                    .flat_map(|(namespace, name)| {
                        shards.siblings().map(move |s| (namespace.clone(), s.lease_name(&name)))
                    })
                    .collect(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn controller_args(args: &[&str]) -> ControllerArgs {
        let cli = Cli::try_parse_from([&["serin", "controller"], args].concat()).unwrap();
        match cli.command {
            Command::Controller(args) => args,
            _ => unreachable!("parsed as the controller"),
        }
    }

    #[test]
    fn namespaces_are_watched_once_each_and_empty_entries_name_none() {
        let list = |given: &[&str]| distinct(given.iter().map(|n| n.to_string()).collect());
        assert_eq!(list(&["a", "", "b", "a", " b "]), ["a", "b"]);
        assert!(list(&[""]).is_empty(), "an empty SERIN_NAMESPACE means all");
    }

    #[test]
    fn namespaces_are_a_comma_separated_list_or_repeated() {
        assert!(controller_args(&[]).namespaces.is_empty(), "all namespaces");
        assert_eq!(controller_args(&["--namespace", "a"]).namespaces, ["a"]);
        assert_eq!(
            controller_args(&["--namespace", "a,b", "--namespace", "c"]).namespaces,
            ["a", "b", "c"]
        );
    }

    #[test]
    fn shards_are_one_and_more() {
        let args = controller_args(&["--shards", "3", "--shard-index", "2"]);
        assert_eq!((args.shards, args.shard_index), (3, 2));
        assert!(Cli::try_parse_from(["serin", "controller", "--shards", "0"]).is_err());
    }
}
