//! Why this exists: a preflight failure is the reason a worker is not started, shown in
//! `easel status` and by `easel up --check`, so each way to fail is a variant that keeps
//! what was checked (the `cwd`, the kind, the command line, its exit) and what went wrong
//! underneath as its source. [`crate::Chain`] turns one into the reason people read.

use std::fmt;
use std::path::PathBuf;

use easel_config::gpu::Gpus;
use easel_config::ConfigError;

use super::REQUIRED_ENTRY_POINTS;
use crate::config::BUILTIN_KINDS;
use crate::launch::WORKER_BIN_ENV;
use crate::process::{CommandError, ProgramError};
use crate::restart::ExitInfo;

/// Why a worker failed its preflight.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// Its `cwd` is missing or not a directory.
    #[error("cwd {} is not a directory", .cwd.display())]
    CwdNotADirectory {
        /// The configured `cwd`.
        cwd: PathBuf,
    },

    /// Its `kind` is not a built-in worker.
    #[error("unknown kind {kind:?}; built-in kinds: {} (for another program use command = [...])", BUILTIN_KINDS.join(", "))]
    UnknownKind {
        /// The configured kind.
        kind: String,
    },

    /// The `easel` executable that runs built-in workers cannot be run.
    #[error("the worker executable cannot run (set [orchestrator] worker_bin or {WORKER_BIN_ENV})")]
    WorkerBin {
        /// Why.
        #[source]
        source: ProgramError,
    },

    /// The program of an external worker's `command` cannot be run.
    #[error(transparent)]
    Program(ProgramError),

    /// `describe --json` did not run to its end.
    #[error("{describe}")]
    DescribeDidNotRun {
        /// The command.
        describe: DescribeLine,
        /// Why.
        #[source]
        source: CommandError,
    },

    /// `describe --json` exited unsuccessfully.
    #[error("{describe} {exit}{}", Tail(.stderr))]
    DescribeFailed {
        /// The command.
        describe: DescribeLine,
        /// How it ended.
        exit: ExitInfo,
        /// The last non-empty line of its stderr, if any.
        stderr: Option<String>,
    },

    /// `describe --json` printed something that is not its JSON.
    #[error("{describe} did not print the expected JSON")]
    DescribeNotJson {
        /// The command.
        describe: DescribeLine,
        /// Why it did not parse.
        #[source]
        source: serde_json::Error,
    },

    /// `describe --json` printed a description that does not fit.
    #[error("{describe} {problem}")]
    Description {
        /// The command.
        describe: DescribeLine,
        /// What does not fit.
        problem: DescriptionError,
    },

    /// The worker of a `gpus` table names a GPU this host does not show.
    #[error("its GPU cuda:{gpu} is not on this host: {found}{}", NoGpuHint(.found))]
    NoSuchGpu {
        /// The GPU it would run on.
        gpu: u32,
        /// What discovery found.
        found: Gpus,
    },

    /// The GPUs could not be counted (`EASEL_GPUS` is not a number).
    #[error("cannot count this host's GPUs")]
    GpuDiscovery {
        /// Why.
        #[source]
        source: ConfigError,
    },

    /// The `check` command line is empty.
    #[error("the check command is empty")]
    EmptyCheck,

    /// The `check` command's program cannot be run.
    #[error("check `{}`", .argv.join(" "))]
    CheckProgram {
        /// The command line.
        argv: Vec<String>,
        /// Why.
        #[source]
        source: ProgramError,
    },

    /// The `check` command did not run to its end.
    #[error("check `{}`", .argv.join(" "))]
    CheckDidNotRun {
        /// The command line.
        argv: Vec<String>,
        /// Why.
        #[source]
        source: CommandError,
    },

    /// The `check` command exited unsuccessfully.
    #[error("check `{}` {exit}{}", .argv.join(" "), Tail(.output))]
    CheckFailed {
        /// The command line.
        argv: Vec<String>,
        /// How it ended.
        exit: ExitInfo,
        /// The last non-empty line of its stderr (of its stdout when stderr is empty).
        output: Option<String>,
    },
}

/// What a built-in worker's `describe --json` got wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptionError {
    /// It describes another kind.
    #[error("describes kind {found:?}, not {expected:?}")]
    WrongKind {
        /// The kind it printed.
        found: String,
        /// The kind asked for.
        expected: String,
    },

    /// Some of [`REQUIRED_ENTRY_POINTS`] are not listed.
    #[error(
        "lists entry points [{}]: missing {} (every worker must answer to {})",
        .listed.join(", "),
        .missing.join(", "),
        REQUIRED_ENTRY_POINTS.join(", ")
    )]
    MissingEntryPoints {
        /// The entry points it lists.
        listed: Vec<String>,
        /// The required ones it does not.
        missing: Vec<&'static str>,
    },

    /// `job_types` is absent or empty.
    #[error("lists no job_types")]
    NoJobTypes,
}

/// `` `<worker_bin> worker <kind> describe --json` ``, as messages show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeLine {
    /// The `easel` executable.
    pub worker_bin: PathBuf,
    /// The kind described.
    pub kind: String,
}

impl fmt::Display for DescribeLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{} worker {} describe --json`",
            self.worker_bin.display(),
            self.kind
        )
    }
}

/// How to run on the CPU instead, when no GPU was found at all.
struct NoGpuHint<'a>(&'a Gpus);

impl fmt::Display for NoGpuHint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.count {
            0 => write!(f, "; {}", Gpus::hint()),
            _ => Ok(()),
        }
    }
}

/// `": <line>"` after an exit, or nothing.
struct Tail<'a>(&'a Option<String>);

impl fmt::Display for Tail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(line) => write!(f, ": {line}"),
            None => Ok(()),
        }
    }
}
