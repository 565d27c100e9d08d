//! Why this exists: `easel completions SHELL` prints a completion script generated from the
//! same clap definitions the binary parses with, so completions never drift from the flags.

use anyhow::Result;
use clap::Args;
use clap_complete::Shell;

/// Examples shown under `easel completions --help`.
pub const EXAMPLES: &str = "Examples:
  easel completions bash > ~/.local/share/bash-completion/completions/easel
  easel completions zsh > \"${fpath[1]}/_easel\"
  easel completions fish > ~/.config/fish/completions/easel.fish";

/// Arguments of `easel completions`.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to write the script for.
    #[arg(value_enum)]
    shell: Shell,
}

/// Writes the completion script for `cmd` to stdout.
pub fn run(args: CompletionsArgs, mut cmd: clap::Command) -> Result<()> {
    let name = cmd.get_name().to_string();
    clap_complete::generate(args.shell, &mut cmd, name, &mut std::io::stdout());
    Ok(())
}
