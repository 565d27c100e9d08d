//! Why this exists: `easel man` renders the man page (roff) from the clap definitions, so
//! packagers can install `easel.1` (and one page per command) that always matches the binary.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

/// Examples shown under `easel man --help`.
pub const EXAMPLES: &str = "Examples:
  easel man | man -l -
  easel man --dir /usr/local/share/man/man1   # easel.1, easel-generate.1, ...";

/// Arguments of `easel man`.
#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write easel.1 and one page per command (easel-generate.1, ...) into this folder
    /// (created if needed) instead of printing easel.1 on stdout.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Prints the top-level page, or writes every page into `--dir`.
pub fn run(args: ManArgs, cmd: clap::Command) -> Result<()> {
    match args.dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .context("writing the man page")
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir).with_context(|| format!("writing man pages into {}", dir.display()))?;
            println!("{}", dir.display());
            Ok(())
        }
    }
}
