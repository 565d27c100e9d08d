//! What the CLI tests share: running the built `easel` binary as a user would, without
//! an `EASEL_MODEL` from the environment (so the bundled tiny model is the default).

use std::process::{Command, Output};

/// Runs `easel ARGS` to completion.
pub fn easel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_easel"))
        .args(args)
        .env_remove("EASEL_MODEL")
        .output()
        .expect("easel runs")
}
