//! Why this exists: `easel up` (alias `easel orchestrate`), the thin wiring from the
//! command line to the orchestrator library. Flow: find the config (`--config`,
//! `EASEL_CONFIG`, `./easel.toml`, else the embedded defaults: one SDXL worker) → either
//! preflight it and report (`--check`), or run it until SIGTERM/SIGINT (exit 0 after a
//! graceful stop), reloading it on SIGHUP, with the web console on its status address.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use easel_orchestrator::config::{Config, DEFAULT_CONFIG_TOML};
use easel_orchestrator::Orchestrator;

/// Examples shown under `easel up --help`.
pub const EXAMPLES: &str = "Examples:
  easel up                         # ./easel.toml, else one SDXL worker
  easel up --config prod.toml --check
  easel up --print-default-config > easel.toml";

/// Arguments of `easel up`.
#[derive(Args, Debug)]
pub struct UpArgs {
    /// Config file (default: ./easel.toml if present, else one SDXL worker on the embedded defaults).
    #[arg(long, short, env = "EASEL_CONFIG")]
    config: Option<PathBuf>,
    /// Validate the config and run every worker's preflight, then exit (non-zero if any fails).
    #[arg(long)]
    check: bool,
    /// Print the embedded default config and exit.
    #[arg(long)]
    print_default_config: bool,
}

/// Runs `easel up`.
pub fn run(args: UpArgs) -> Result<()> {
    if args.print_default_config {
        print!("{}", DEFAULT_CONFIG_TOML.trim_start());
        return Ok(());
    }
    let config = Config::discover(args.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if args.check {
        return runtime.block_on(check(&config));
    }
    eprintln!(
        "easel up: config {}; console on http://{}/ (Ctrl-C stops every worker)",
        config.origin, config.orchestrator.listen
    );
    let orchestrator = Orchestrator::new(config);
    let orchestrator = match crate::console::for_orchestrator(orchestrator.config(), orchestrator.handle()) {
        Ok(routes) => orchestrator.with_routes(routes),
        Err(e) => {
            tracing::error!("the console is off: {e:#}");
            orchestrator
        }
    };
    runtime.block_on(easel_orchestrator::run_until_signalled(orchestrator))?;
    Ok(())
}

async fn check(config: &Config) -> Result<()> {
    println!("config {}: valid", config.origin);
    println!("gpus: {}", easel_orchestrator::preflight::gpu_summary());
    let results = easel_orchestrator::preflight::check_all(config).await;
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    for (name, result) in &results {
        match result {
            Ok(()) => println!("ok      {name}"),
            Err(reason) => println!("FAILED  {name}: {reason}"),
        }
    }
    if failed > 0 {
        bail!("{failed} of {} worker(s) failed preflight", results.len());
    }
    Ok(())
}
