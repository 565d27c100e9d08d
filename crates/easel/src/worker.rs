//! Why this exists: `easel worker <kind> run|describe` (`start`, `serve`, `launch`: visible
//! aliases of `run`, the Python worker's entry names), the thin wiring from arguments to
//! `easel-worker`: flags become the top configuration layer, SIGTERM/SIGINT cancel the
//! worker's shutdown token, and errors become exit codes — 0 after a graceful shutdown, 2 for
//! usage errors (an unknown kind: clap refuses it), 78 (EX_CONFIG) for configuration errors,
//! 1 otherwise.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::builder::PossibleValuesParser;
use clap::{Args, Subcommand};
use easel_config::Layers;
use easel_worker::{registry, SdxlWorker, Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

/// Examples shown under `easel worker --help`.
pub const EXAMPLES: &str = "Examples:
  easel worker sdxl run --queue redis://127.0.0.1:6379 --device cuda
  easel worker sdxl start          # the same loop, under the Python worker's entry name
  easel worker sdxl describe --json";

/// Examples shown under `easel worker KIND run --help`.
const RUN_EXAMPLES: &str = "Examples:
  easel worker sdxl run                                   # sqlite queue in the data home, tiny model
  easel worker sdxl run --model ~/models/sdxl.safetensors --device cuda --port 7859
  easel worker sdxl serve --config easel.toml             # alias of run";

/// Examples shown under `easel worker KIND describe --help`.
const DESCRIBE_EXAMPLES: &str = "Examples:
  easel worker sdxl describe
  easel worker sdxl describe --json";

/// Arguments of `easel worker`.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The worker kind.
    #[arg(value_parser = PossibleValuesParser::new(registry::KINDS.iter().map(|k| k.name)))]
    kind: String,
    #[command(subcommand)]
    action: Action,
}

/// What to do with the worker kind.
#[derive(Subcommand, Debug)]
enum Action {
    /// Run the job loop until SIGTERM/SIGINT (start, serve and launch are the same loop).
    #[command(visible_aliases = ["start", "serve", "launch"], after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Print the kind, entry points, queue and job types.
    #[command(after_help = DESCRIBE_EXAMPLES)]
    Describe(DescribeArgs),
}

/// Flags of the entry points; each overrides the environment and `easel.toml`.
#[derive(Args, Debug, Default)]
pub struct RunArgs {
    /// An `easel.toml` to read (`[worker]` table); default `$EASEL_CONFIG` or `./easel.toml`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The data home: embedded queue, job table, local storage (EASEL_DATA_DIR, else easel.toml's
    /// data_dir, else ~/.local/share/easel).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The queue: sqlite, redis://..., rediss://... or an Upstash https:// URL.
    #[arg(long)]
    queue: Option<String>,
    /// Port of the HTTP endpoints (WORKER_PORT, default 7859; 0 picks a free one).
    #[arg(long)]
    port: Option<u16>,
    /// Address to bind (EASEL_BIND, default 127.0.0.1).
    #[arg(long)]
    bind: Option<String>,
    /// A diffusers SDXL folder or a single-file SDXL checkpoint (.safetensors) (EASEL_MODEL);
    /// default: the bundled tiny model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// cpu, cuda or cuda:N (EASEL_DEVICE).
    #[arg(long)]
    device: Option<String>,
    /// sdxl, or fake for tests (EASEL_GENERATOR).
    #[arg(long)]
    generator: Option<String>,
}

/// Flags of `describe`.
#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// Print JSON (for the orchestrator's preflight).
    #[arg(long)]
    json: bool,
}

impl RunArgs {
    /// The flags as configuration settings.
    pub fn flags(&self) -> Vec<(&'static str, String)> {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        [
            ("data_dir", path(&self.data_dir)),
            ("queue_url", self.queue.clone()),
            ("port", self.port.map(|p| p.to_string())),
            ("bind", self.bind.clone()),
            ("model", path(&self.model)),
            ("device", self.device.clone()),
            ("generator", self.generator.clone()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }
}

/// Runs `easel worker`.
pub fn run(args: WorkerArgs) -> Result<()> {
    // clap accepts only registered kinds; this guards a registry that changed under it.
    let Some(kind) = registry::find(&args.kind) else {
        let known: Vec<_> = registry::KINDS.iter().map(|k| k.name).collect();
        return Err(crate::usage::usage(format!(
            "unknown worker kind {:?}: use one of {}",
            args.kind,
            known.join(", ")
        )));
    };
    match args.action {
        Action::Describe(d) => describe(kind, d.json),
        Action::Run(a) => entry(kind, a),
    }
}

fn describe(kind: &registry::Kind, json: bool) -> Result<()> {
    let layers = Layers::from_process(&[], None)?;
    let queue = easel_config::queue_name(&layers)?;
    let port = layers.number("port", "a port number (0-65535)")?;
    let d = kind.describe(queue, port);
    if json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        println!("{} worker: {}", d.kind, kind.summary);
        println!("  entry points: {}", d.entry_points.join(", "));
        println!("  queue: {}   job types: {}", d.queue, d.job_types.join(", "));
        println!(
            "  endpoints on port {}: {} {} {} {}",
            d.port, d.health, d.live, d.ready, d.metrics
        );
    }
    Ok(())
}

/// The job loop. `start`, `serve` and `launch` reach it as aliases of `run`: the `Worker`
/// trait's entries of those names are, by its contract, the same loop as `run`.
fn entry(kind: &registry::Kind, args: RunArgs) -> Result<()> {
    let config = WorkerConfig::load(&args.flags(), args.config.as_deref())?;
    if kind.name != "sdxl" {
        bail!("worker kind {} has no runner in this binary", kind.name);
    }
    let worker = SdxlWorker::new(config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        worker.run(shutdown).await
    })?;
    Ok(())
}

/// Cancels `token` on the first SIGTERM or SIGINT.
async fn cancel_on_signal(token: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the worker gracefully");
            let _ = tokio::signal::ctrl_c().await;
            token.cancel();
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; shutting down"),
    }
    token.cancel();
}

/// The exit code for an error of any command (usage errors, exit 2, are rendered by `main`
/// before this is asked): 78 (EX_CONFIG) for configuration errors (a worker's settings or an
/// `easel.toml` the orchestrator cannot use), 1 otherwise.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    use easel_orchestrator::Error as Orch;
    for cause in e.chain() {
        if let Some(Orch::Config(_)) = cause.downcast_ref::<Orch>() {
            return easel_config::EXIT_CONFIG;
        }
        if let Some(w) = cause.downcast_ref::<easel_worker::Error>() {
            return w.exit_code();
        }
        if cause.downcast_ref::<easel_config::ConfigError>().is_some() {
            return easel_config::EXIT_CONFIG;
        }
    }
    1
}
