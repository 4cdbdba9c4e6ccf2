//! `kubectl serin`: kubectl finds this binary on PATH. It uses the current kube
//! context the way kubectl does: KUBECONFIG, `--context` and `-n`.
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serin::api::Release;
use serin::cli::commands::{self, CliError, Control};
use serin::cli::render::Colour;

#[derive(Parser)]
#[command(
    name = "kubectl-serin",
    bin_name = "kubectl serin",
    version,
    about = "Look at serin Releases, and steer their rollouts"
)]
struct Cli {
    /// Namespace (default: the context's).
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    context: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a Release as a tree: revisions and pods, traffic, step, analysis.
    Get {
        #[command(subcommand)]
        what: GetWhat,
    },
    /// Releases with their phase, strategy, step and weight.
    List {
        /// In every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Finish the current canary step, or switch a blue-green preview.
    Promote {
        name: String,
        /// Skip every remaining step.
        #[arg(long)]
        full: bool,
    },
    /// Send all traffic back to the stable revision and scale the new one down.
    Abort { name: String },
    /// Roll the current revision out again after an abort or a rollback.
    Retry { name: String },
    /// Freeze the rollout where it stands (sets spec.paused).
    Pause { name: String },
    /// Let a paused rollout go on.
    Resume { name: String },
    /// Restore the template of a recorded revision (default: the one before).
    Undo {
        name: String,
        #[arg(long)]
        to_revision: Option<i64>,
    },
    /// Wait for the rollout's outcome: exit 0 when Ready, 1 when Degraded, 2 on timeout.
    Status {
        name: String,
        /// How long to wait, e.g. 90s, 5m.
        #[arg(long, default_value = "5m")]
        timeout: String,
    },
    /// Change a Release.
    Set {
        #[command(subcommand)]
        what: SetWhat,
    },
    /// Check Release and AnalysisTemplate manifests offline: the CRD schema and
    /// its rules, and serin's own checks. Exit 1 when anything is wrong.
    Lint {
        /// Manifest files (YAML, several documents allowed); - for stdin. A
        /// Release is checked with the AnalysisTemplates and Secrets of every file.
        #[arg(short, long, num_args = 1.., required = true)]
        file: Vec<std::path::PathBuf>,
        /// The files hold every AnalysisTemplate and Secret the Releases use:
        /// one they do not hold is reported missing, as the controller would.
        /// Without it, checks that need an object the files lack are skipped.
        #[arg(long)]
        complete: bool,
    },
    /// Print a shell completion script.
    Completion { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum GetWhat {
    /// One Release.
    #[command(alias = "releases", alias = "rls")]
    Release {
        name: String,
        /// Redraw every second as the rollout moves: in place on a terminal
        /// (its alternate screen, left with Ctrl-C), one frame after another
        /// when piped.
        #[arg(short, long)]
        watch: bool,
    },
}

#[derive(Subcommand)]
enum SetWhat {
    /// Set one container's image: `kubectl serin set image web web=example.com/web:2`.
    Image { name: String, assignment: String },
}

async fn client(cli: &Cli) -> Result<(Client, String), Box<dyn std::error::Error>> {
    let options = KubeConfigOptions {
        context: cli.context.clone(),
        ..Default::default()
    };
    let config = match Kubeconfig::read() {
        Ok(kubeconfig) => Config::from_custom_kubeconfig(kubeconfig, &options).await?,
        Err(_) => Config::infer().await?,
    };
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    Ok((Client::try_from(config)?, namespace))
}

async fn run(cli: Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    if let Command::Completion { shell } = &cli.command {
        clap_complete::generate(*shell, &mut Cli::command(), "kubectl-serin", &mut std::io::stdout());
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Lint { file, complete } = &cli.command {
        return lint(file, *complete);
    }
    let (client, namespace) = client(&cli).await?;
    let api: Api<Release> = Api::namespaced(client.clone(), &namespace);
    let mut stdout = std::io::stdout();
    let message = match cli.command {
        Command::Get {
            what: GetWhat::Release { name, watch },
        } => {
            // A dumb terminal (Emacs' shell, say) gets what a pipe gets.
            let dumb = std::env::var_os("TERM").is_some_and(|term| term == "dumb");
            let (colour, terminal) = if stdout.is_terminal() && !dumb {
                (Colour::Always, Some(terminal_size as commands::TerminalSize))
            } else {
                (Colour::Never, None)
            };
            commands::get(&client, &api, &name, watch, colour, terminal, &mut stdout).await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::List { all_namespaces } => {
            let api = if all_namespaces { Api::all(client.clone()) } else { api };
            commands::list(&api).await?
        }
        Command::Promote { name, full } => {
            let control = if full { Control::PromoteFull } else { Control::Promote };
            commands::control(&api, &name, control).await?
        }
        Command::Abort { name } => commands::control(&api, &name, Control::Abort).await?,
        Command::Retry { name } => commands::control(&api, &name, Control::Retry).await?,
        Command::Pause { name } => commands::set_paused(&api, &name, true).await?,
        Command::Resume { name } => commands::set_paused(&api, &name, false).await?,
        Command::Undo { name, to_revision } => commands::undo(&client, &api, &name, to_revision).await?,
        Command::Set {
            what: SetWhat::Image { name, assignment },
        } => commands::set_image(&api, &name, &assignment).await?,
        Command::Status { name, timeout } => {
            let timeout: Duration = timeout
                .parse::<kube::core::Duration>()
                .map_err(|e| CliError::Usage(format!("--timeout {timeout:?}: {e}")))?
                .into();
            let code = commands::status(&api, &name, timeout, &mut stdout).await?;
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
        }
        Command::Completion { .. } | Command::Lint { .. } => return Ok(ExitCode::SUCCESS),
    };
    print!("{message}");
    if !message.ends_with('\n') {
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

/// Standard output's terminal size, as (columns, rows).
fn terminal_size() -> Option<(u16, u16)> {
    terminal_size::terminal_size_of(std::io::stdout()).map(|(width, height)| (width.0, height.0))
}

/// Offline: no cluster needed.
fn lint(files: &[std::path::PathBuf], complete: bool) -> Result<ExitCode, Box<dyn std::error::Error>> {
    use serin::cli::lint::Scope;
    let mut texts = Vec::new();
    for file in files {
        texts.push(if file.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())?
        } else {
            std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?
        });
    }
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let problems = serin::cli::lint::lint_files(&texts, if complete { Scope::Complete } else { Scope::Partial })
        .map_err(|(file, e)| format!("{}: {e}", files[file].display()))?;
    for (file, note) in &problems.unchecked {
        eprintln!("{}: not checked: {note}", files[*file].display());
    }
    for (file, problem) in &problems.problems {
        println!("{}: {problem}", files[*file].display());
    }
    if problems.problems.is_empty() {
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        println!("{}: no problems", names.join(", "));
        return Ok(ExitCode::SUCCESS);
    }
    Ok(ExitCode::FAILURE)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
