//! One table per scenario: a row per figure, a column per controller, and the
//! ratios serin/Deployment and serin/Argo (below 1: serin uses less).
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::json;

use super::Error;
use super::record::{PhaseRecord, Run};
use super::workload::{Controller, Scenario};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Where the runs' JSON files are; the table goes there too.
    #[arg(long)]
    out: PathBuf,
    /// Fail unless every controller the scenario supports ran, every workload
    /// completed in both phases and every figure is present.
    #[arg(long)]
    check: bool,
    /// A line under the title, e.g. which builds ran.
    #[arg(long)]
    note: Option<String>,
}

#[derive(Clone, Copy)]
enum Unit {
    MiB,
    Bytes,
    Seconds,
    Count,
    PerWorkload,
}

impl Unit {
    fn format(self, value: f64) -> String {
        match self {
            Unit::MiB => format!("{:.1} MiB", value / 1024.0),
            Unit::Bytes => format!("{value:.0} B"),
            Unit::Seconds => format!("{value:.2} s"),
            Unit::Count => format!("{value:.0}"),
            Unit::PerWorkload => format!("{value:.1}"),
        }
    }
}

struct Row {
    label: String,
    unit: Unit,
    /// Ratios make sense (not for counts of completed workloads).
    ratio: bool,
    values: BTreeMap<&'static str, Option<f64>>,
}

fn cpu(phase: &PhaseRecord, process: &str) -> Option<f64> {
    phase.cpu_seconds.get(process).copied()
}

fn per_workload(run: &Run, total: Option<f64>) -> Option<f64> {
    total.map(|t| t / run.n as f64)
}

/// The controller's figure plus kube-controller-manager's, whose ReplicaSet
/// controller does the pods' part for all three: the like-for-like total.
/// For Deployments the controller is kube-controller-manager already.
fn with_kcm(run: &Run, controller: Option<f64>, kcm: Option<f64>) -> Option<f64> {
    match run.controller {
        Controller::Deployment => controller,
        _ => Some(controller? + kcm?),
    }
}

/// Each figure, as a function of one run; None where the controller lacks it.
#[allow(clippy::type_complexity)]
fn figures() -> Vec<(&'static str, Unit, bool, Box<dyn Fn(&Run) -> Option<f64>>)> {
    let kib = |v: u64| Some(v as f64);
    vec![
        (
            "workloads complete after creation",
            Unit::Count,
            false,
            Box::new(|r| Some(r.create.completed as f64)),
        ),
        (
            "workloads complete after the update",
            Unit::Count,
            false,
            Box::new(|r| Some(r.update.completed as f64)),
        ),
        (
            "controller RSS, idle (no workloads)",
            Unit::MiB,
            true,
            Box::new(move |r| kib(r.idle_rss_kib)),
        ),
        (
            "controller RSS, steady (fleet created)",
            Unit::MiB,
            true,
            Box::new(move |r| kib(r.steady_rss_kib)),
        ),
        (
            "controller RSS, peak",
            Unit::MiB,
            true,
            Box::new(move |r| kib(r.create.peak_rss_kib.max(r.update.peak_rss_kib))),
        ),
        (
            "bytes per workload, (steady - idle) / N",
            Unit::Bytes,
            true,
            Box::new(|r| {
                (r.controller != Controller::Deployment)
                    .then(|| (r.steady_rss_kib as f64 - r.idle_rss_kib as f64) * 1024.0 / r.n as f64)
            }),
        ),
        (
            "controller CPU, creation",
            Unit::Seconds,
            true,
            Box::new(|r| cpu(&r.create, "controller")),
        ),
        (
            "controller CPU, mass update",
            Unit::Seconds,
            true,
            Box::new(|r| cpu(&r.update, "controller")),
        ),
        (
            "creation: until all complete",
            Unit::Seconds,
            true,
            Box::new(|r| r.create.seconds),
        ),
        (
            "update: until all complete",
            Unit::Seconds,
            true,
            Box::new(|r| r.update.seconds),
        ),
        (
            "update: p50 per workload",
            Unit::Seconds,
            true,
            Box::new(|r| r.update.p50_seconds),
        ),
        (
            "update: p90 per workload",
            Unit::Seconds,
            true,
            Box::new(|r| r.update.p90_seconds),
        ),
        (
            "update: p99 per workload",
            Unit::Seconds,
            true,
            Box::new(|r| r.update.p99_seconds),
        ),
        (
            "kube-apiserver CPU, creation",
            Unit::Seconds,
            true,
            Box::new(|r| cpu(&r.create, "kube-apiserver")),
        ),
        (
            "kube-apiserver CPU, mass update",
            Unit::Seconds,
            true,
            Box::new(|r| cpu(&r.update, "kube-apiserver")),
        ),
        (
            "etcd CPU, mass update",
            Unit::Seconds,
            true,
            Box::new(|r| cpu(&r.update, "etcd")),
        ),
        (
            "kube-controller-manager CPU, mass update",
            Unit::Seconds,
            true,
            Box::new(|r| cpu(&r.update, "kube-controller-manager")),
        ),
        (
            "controller + kube-controller-manager CPU, mass update",
            Unit::Seconds,
            true,
            Box::new(|r| {
                with_kcm(
                    r,
                    cpu(&r.update, "controller"),
                    cpu(&r.update, "kube-controller-manager"),
                )
            }),
        ),
        (
            "bench client CPU, mass update",
            Unit::Seconds,
            false,
            Box::new(|r| cpu(&r.update, "bench")),
        ),
        (
            "controller's requests per workload, creation",
            Unit::PerWorkload,
            true,
            Box::new(|r| per_workload(r, r.create.controller_requests.as_ref().map(|m| m.values().sum()))),
        ),
        (
            "controller's requests per workload, update",
            Unit::PerWorkload,
            true,
            Box::new(|r| per_workload(r, r.update.controller_requests.as_ref().map(|m| m.values().sum()))),
        ),
        (
            "API server requests per workload, all clients, creation",
            Unit::PerWorkload,
            true,
            Box::new(|r| per_workload(r, Some(r.create.apiserver_requests.values().sum()))),
        ),
        (
            "API server requests per workload, all clients, update",
            Unit::PerWorkload,
            true,
            Box::new(|r| per_workload(r, Some(r.update.apiserver_requests.values().sum()))),
        ),
        (
            "kube-controller-manager requests per workload, update",
            Unit::PerWorkload,
            true,
            Box::new(|r| per_workload(r, r.update.kcm_requests)),
        ),
        (
            "controller + kube-controller-manager requests per workload, update",
            Unit::PerWorkload,
            true,
            Box::new(|r| {
                let own = r.update.controller_requests.as_ref().map(|m| m.values().sum());
                per_workload(r, with_kcm(r, own, r.update.kcm_requests))
            }),
        ),
    ]
}

/// The update's heaviest API requests (verb and resource), per workload: the
/// union of each controller's TOP, heaviest first.
fn top_requests(runs: &BTreeMap<&'static str, Run>) -> Vec<Row> {
    const TOP: usize = 8;
    const MAX_ROWS: usize = 14;
    let mut keys = BTreeSet::new();
    for run in runs.values() {
        let mut requests: Vec<(&String, &f64)> = run.update.apiserver_requests.iter().collect();
        requests.sort_by(|a, b| b.1.total_cmp(a.1));
        keys.extend(requests.into_iter().take(TOP).map(|(k, _)| k.clone()));
    }
    let mut rows: Vec<Row> = keys
        .into_iter()
        .map(|key| Row {
            values: runs
                .iter()
                .map(|(c, run)| {
                    let n = run.update.apiserver_requests.get(&key).copied().unwrap_or(0.0);
                    (*c, Some(n / run.n as f64))
                })
                .collect(),
            label: format!("  update: {key}"),
            unit: Unit::PerWorkload,
            ratio: true,
        })
        .collect();
    let heaviest = |row: &Row| row.values.values().flatten().fold(0.0_f64, |m, v| m.max(*v));
    rows.sort_by(|a, b| heaviest(b).total_cmp(&heaviest(a)));
    rows.truncate(MAX_ROWS);
    rows
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() && b.is_finite() => Some(a / b),
        _ => None,
    }
}

pub fn run(args: &Args) -> Result<bool, Error> {
    let scenario = args.scenario;
    let mut runs = BTreeMap::new();
    for controller in Controller::ALL.into_iter().filter(|c| scenario.supports(*c)) {
        let file = args.out.join(format!("{}-{}.json", scenario.name(), controller.name()));
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                runs.insert(controller.name(), serde_json::from_str::<Run>(&text)?);
            }
            Err(error) => eprintln!("fleet: no {} run ({}: {error})", controller.title(), file.display()),
        }
    }
    let Some(first) = runs.values().next() else {
        return Err(format!("no runs of scenario {} in {}", scenario.name(), args.out.display()).into());
    };
    let (n, replicas) = (first.n, first.replicas);
    if runs.values().any(|r| r.n != n || r.replicas != replicas) {
        return Err("the runs have different N or REPLICAS: rerun them together".into());
    }

    let mut rows: Vec<Row> = figures()
        .into_iter()
        .map(|(label, unit, ratio, value)| Row {
            label: label.to_string(),
            unit,
            ratio,
            values: runs.iter().map(|(c, run)| (*c, value(run))).collect(),
        })
        .collect();
    let top = top_requests(&runs);
    let first_top = rows.len();
    rows.extend(top);

    let columns: Vec<Controller> = Controller::ALL.to_vec();
    let shown = |c: Controller, row: &Row| -> String {
        if !scenario.supports(c) {
            return "n/a".into();
        }
        match row.values.get(c.name()) {
            None => "not run".into(),
            Some(None) => "n/a".into(),
            Some(Some(v)) => row.unit.format(*v),
        }
    };
    let ratio_cell = |row: &Row, other: Controller| -> String {
        if !row.ratio || !scenario.supports(other) {
            return "n/a".into();
        }
        let value = |c: Controller| row.values.get(c.name()).copied().flatten();
        ratio(value(Controller::Serin), value(other)).map_or("-".into(), |r| format!("{r:.2}"))
    };

    let strategy = match scenario {
        Scenario::Rolling => "rolling update, maxSurge 1, maxUnavailable 0",
        Scenario::Canary => "canary, steps setWeight 50 + pause 2s, no traffic router; maxSurge 1, maxUnavailable 0",
    };
    let mut table = format!(
        "Fleet bench, {}: N = {n} workloads x {replicas} replicas; {strategy}\n\n",
        scenario.name()
    );
    if let Some(note) = &args.note {
        table.push_str(&format!("{note}\n\n"));
    }
    table.push_str("| figure | serin | Argo Rollouts | Deployment | serin/Deployment | serin/Argo |\n");
    table.push_str("|---|---|---|---|---|---|\n");
    for (i, row) in rows.iter().enumerate() {
        if i == first_top {
            table.push_str("| API server requests per workload during the update, by verb and resource (all clients) | | | | | |\n");
        }
        let cells: Vec<String> = columns.iter().map(|c| shown(*c, row)).collect();
        table.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            row.label,
            cells.join(" | "),
            ratio_cell(row, Controller::Deployment),
            ratio_cell(row, Controller::Argo),
        ));
    }
    table.push_str(
        "\nDeployment column: the controller is kube-controller-manager (its RSS, CPU and requests are the whole \
         process's). See docs/benchmarks.md for how each figure is measured.\n",
    );
    print!("{table}");

    std::fs::write(args.out.join(format!("{}.md", scenario.name())), &table)?;
    let figures: Vec<_> = rows
        .iter()
        .map(|row| json!({ "figure": row.label.trim(), "values": row.values }))
        .collect();
    let combined =
        json!({ "scenario": scenario.name(), "n": n, "replicas": replicas, "figures": figures, "runs": runs });
    std::fs::write(
        args.out.join(format!("{}.json", scenario.name())),
        serde_json::to_string_pretty(&combined)?,
    )?;

    if !args.check {
        return Ok(true);
    }
    let mut problems = Vec::new();
    for controller in Controller::ALL.into_iter().filter(|c| scenario.supports(*c)) {
        let Some(run) = runs.get(controller.name()) else {
            problems.push(format!("{} did not run", controller.title()));
            continue;
        };
        for (phase, record) in [("creation", &run.create), ("update", &run.update)] {
            if record.completed != n {
                problems.push(format!(
                    "{}: {} of {n} complete after the {phase}",
                    controller.title(),
                    record.completed
                ));
            }
        }
        for row in &rows[..first_top] {
            let value = row.values.get(controller.name()).copied().flatten();
            let optional = row.label.starts_with("bytes per workload") && controller == Controller::Deployment;
            if !optional && !value.is_some_and(f64::is_finite) {
                problems.push(format!("{}: no figure for '{}'", controller.title(), row.label));
            }
        }
    }
    for problem in &problems {
        eprintln!("fleet: check failed: {problem}");
    }
    Ok(problems.is_empty())
}
