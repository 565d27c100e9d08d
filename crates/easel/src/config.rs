//! Why this exists: `easel config show` — before starting anything, an operator sees every
//! effective setting (worker runtime, orchestrator, each supervised worker) and where its
//! value came from: a flag, an environment variable, which file and table, or the default.
//! Secrets are masked. `--json` prints the same rows for scripts.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use easel_config::house::Config;
use easel_config::{show, Layers};

/// Examples shown under `easel config --help`.
pub const EXAMPLES: &str = "Examples:
  easel config show
  easel config show --config /etc/easel/easel.toml
  EASEL_DATA_DIR=/srv/easel easel config show --json";

/// Arguments of `easel config`.
#[derive(Args, Debug)]
pub struct ConfigArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Print every effective setting with its origin (secrets masked).
    #[command(after_help = "Examples:
  easel config show
  easel config show --json")]
    Show(ShowArgs),
}

/// Flags of `config show`.
#[derive(Args, Debug)]
struct ShowArgs {
    /// An `easel.toml` to read; default `$EASEL_CONFIG` or `./easel.toml`.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print JSON rows (`section`, `key`, `value`, `origin`) instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `easel config`.
pub fn run(args: ConfigArgs) -> Result<()> {
    let Action::Show(a) = args.action;
    let layers = Layers::from_process(&[], a.config.as_deref())?;
    let house = match layers.file() {
        Some(f) => f.orchestrator()?,
        None => Config::embedded()?,
    };
    let rows = show::rows(&layers, &house);
    if a.json {
        let rows: Vec<_> = rows
            .iter()
            .map(|r| serde_json::json!({"section": r.section, "key": r.key, "value": r.value, "origin": r.origin}))
            .collect();
        let file = layers.file().map(|f| f.path.display().to_string());
        let out = serde_json::json!({"file": file, "settings": rows, "notes": layers.notes()});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    match layers.file() {
        Some(f) => println!("# easel.toml: {}", f.path.display()),
        None => println!("# no easel.toml (none given, $EASEL_CONFIG unset, none in this directory)"),
    }
    print!("{}", show::render(&rows, layers.notes()));
    Ok(())
}
