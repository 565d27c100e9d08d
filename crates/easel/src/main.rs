//! Why this exists: the `easel` command line. It only parses arguments and wires them
//! to the library crates; everything it runs lives in those crates.

mod bench;
mod checks;
mod colour;
mod completions;
mod config;
mod console;
mod generate;
mod job_bar;
mod jobs;
mod man;
mod models;
mod settings;
mod status;
mod submit;
mod up;
mod usage;
mod worker;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Easel runs SDXL image generation: one-off from the command line, or as workers.
#[derive(Parser, Debug)]
#[command(
    name = "easel",
    version,
    about,
    after_help = "Examples:
  easel generate \"a lighthouse at dusk\" --seed 42      # the bundled tiny model, PNG in ./out
  easel generate \"a fox\" --model sdxl.safetensors --device cuda --num-images 2
  easel worker sdxl run --queue redis://127.0.0.1:6379
  easel up --check
  easel completions bash > /etc/bash_completion.d/easel"
)]
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
    #[command(after_help = generate::EXAMPLES)]
    Generate(generate::GenerateArgs),
    /// Run a queue worker: `easel worker sdxl run` (aliases start, serve, launch), or describe it.
    #[command(after_help = worker::EXAMPLES)]
    Worker(worker::WorkerArgs),
    /// Push a job to the worker queue, as the ourvidz producers do (`--wait` for the outcome).
    #[command(after_help = submit::EXAMPLES)]
    Submit(submit::SubmitArgs),
    /// Supervise workers from easel.toml (default: one SDXL worker): preflight, start, restart, stop.
    #[command(visible_alias = "orchestrate", after_help = up::EXAMPLES)]
    Up(up::UpArgs),
    /// Look into the queue and act on one job: list, show, cancel, retry, purge.
    #[command(after_help = jobs::EXAMPLES)]
    Jobs(jobs::JobsArgs),
    /// Show the workers of a running `easel up` (state, pid, uptime, restarts, last exit, reason).
    #[command(after_help = status::EXAMPLES)]
    Status(status::StatusArgs),
    /// Inspect model files: `easel models inspect PATH [--json]` (layout, components, dtype, parameters).
    #[command(after_help = models::EXAMPLES)]
    Models(models::ModelsArgs),
    /// Time each phase of a generation (text, every UNet step, VAE decode) and peak memory.
    #[command(after_help = bench::EXAMPLES)]
    Bench(bench::BenchArgs),
    /// Show the effective configuration: every setting, its value and where it came from.
    #[command(after_help = config::EXAMPLES)]
    Config(config::ConfigArgs),
    /// Print a shell completion script for bash, zsh, fish, elvish or PowerShell.
    #[command(after_help = completions::EXAMPLES)]
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff) on stdout, or write one page per command into a folder.
    #[command(visible_alias = "man-page", after_help = man::EXAMPLES)]
    Man(man::ManArgs),
}

impl Command {
    /// The subcommand's name, to find its usage line for an error.
    fn name(&self) -> &'static str {
        match self {
            Command::Generate(_) => "generate",
            Command::Worker(_) => "worker",
            Command::Submit(_) => "submit",
            Command::Up(_) => "up",
            Command::Jobs(_) => "jobs",
            Command::Status(_) => "status",
            Command::Models(_) => "models",
            Command::Bench(_) => "bench",
            Command::Config(_) => "config",
            Command::Completions(_) => "completions",
            Command::Man(_) => "man",
        }
    }
}

/// The whole command tree with the colour setting the environment asks for.
fn command() -> clap::Command {
    Cli::command().color(colour::clap_choice())
}

fn main() -> std::process::ExitCode {
    let cli = match command().try_get_matches().and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => cli,
        // Help and version exit 0, usage errors 2, as clap does.
        Err(e) => e.exit(),
    };
    init_logging(cli.log_json);
    let name = cli.command.name();
    let result = match cli.command {
        Command::Generate(args) => generate::run(args),
        Command::Worker(args) => worker::run(args),
        Command::Submit(args) => submit::run(args),
        Command::Up(args) => up::run(args),
        Command::Jobs(args) => jobs::run(args),
        Command::Status(args) => status::run(args),
        Command::Models(args) => models::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Config(args) => config::run(args),
        Command::Completions(args) => completions::run(args, command()),
        Command::Man(args) => man::run(args, command()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if let Some(u) = usage::find(&e) {
                usage_exit(name, &u.0);
            }
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(worker::exit_code(&e))
        }
    }
}

/// Prints a usage error as clap does (message, the subcommand's usage, a pointer to
/// `--help`) and exits 2.
fn usage_exit(subcommand: &str, message: &str) -> ! {
    let kind = clap::error::ErrorKind::ValueValidation;
    let mut cmd = command();
    cmd.build();
    match cmd.find_subcommand_mut(subcommand) {
        Some(sub) => sub.error(kind, message).exit(),
        None => cmd.error(kind, message).exit(),
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EASEL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,easel_worker=info,easel_orchestrator=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal and without NO_COLOR: supervisors and log files get plain text.
        .with_ansi(colour::on_stderr());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command and subcommand, with its path from `easel`.
    fn walk(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let p = format!("{path} {}", sub.get_name());
            walk(sub, p.clone(), out);
            out.push((p, sub.clone()));
        }
    }

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_has_examples_and_every_flag_a_description() {
        let mut all = vec![("easel".to_string(), Cli::command())];
        walk(&Cli::command(), "easel".into(), &mut all);
        assert!(all.len() >= 13, "{} commands", all.len());
        for (path, cmd) in &all {
            let after = cmd.get_after_help().map(|s| s.to_string()).unwrap_or_default();
            assert!(after.starts_with("Examples:"), "`{path}` has no examples");
            assert!(after.contains(cmd.get_name()), "`{path}`'s examples do not run it");
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(arg.get_help().is_some(), "`{path}` --{id} has no description");
            }
        }
    }

    #[test]
    fn no_alias_is_hidden() {
        let mut all = vec![("easel".to_string(), Cli::command())];
        walk(&Cli::command(), "easel".into(), &mut all);
        for (path, cmd) in &all {
            let visible: Vec<_> = cmd.get_visible_aliases().collect();
            assert_eq!(
                cmd.get_all_aliases().count(),
                visible.len(),
                "`{path}` has a hidden alias"
            );
            for arg in cmd.get_arguments() {
                let shown = arg.get_visible_aliases().map_or(0, |a| a.len());
                let all = arg.get_all_aliases().map_or(0, |a| a.len());
                assert_eq!(shown, all, "`{path}` --{} has a hidden alias", arg.get_id());
            }
        }
    }
}
