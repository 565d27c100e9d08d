//! Why this exists: the `easel` command line. It only parses arguments and wires them
//! to the library crates; everything it runs lives in those crates.

mod bench;
mod generate;
mod models;
mod status;
mod submit;
mod up;
mod worker;

use clap::{Parser, Subcommand};

/// Easel runs SDXL image generation: one-off from the command line, or as workers.
#[derive(Parser, Debug)]
#[command(name = "easel", version, about)]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate images from a prompt (the bundled tiny model unless --model is given).
    Generate(generate::GenerateArgs),
    /// Run a queue worker: `easel worker sdxl run` (start, serve, launch: the same loop; describe).
    Worker(worker::WorkerArgs),
    /// Push a job to the worker queue, as the ourvidz producers do (`--wait` for the outcome).
    Submit(submit::SubmitArgs),
    /// Supervise workers from easel.toml (default: one SDXL worker): preflight, start, restart, stop.
    #[command(alias = "orchestrate")]
    Up(up::UpArgs),
    /// Show the workers of a running `easel up` (state, pid, uptime, restarts, last exit, reason).
    Status(status::StatusArgs),
    /// Inspect model files: `easel models inspect PATH [--json]` (layout, components, dtype, parameters).
    Models(models::ModelsArgs),
    /// Time each phase of a generation (text, every UNet step, VAE decode) and peak memory.
    Bench(bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    let result = match cli.command {
        Command::Generate(args) => generate::run(args),
        Command::Worker(args) => worker::run(args),
        Command::Submit(args) => submit::run(args),
        Command::Up(args) => up::run(args),
        Command::Status(args) => status::run(args),
        Command::Models(args) => models::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(worker::exit_code(&e))
        }
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EASEL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,easel_worker=info,easel_orchestrator=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: supervisors and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
