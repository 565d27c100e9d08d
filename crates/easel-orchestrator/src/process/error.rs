//! Why this exists: the three ways a process the orchestrator wants does not run, as
//! types: a program that cannot be found or executed ([`ProgramError`], found before
//! anything starts), a bounded auxiliary command that does not finish ([`CommandError`]),
//! and a worker process that cannot be spawned ([`SpawnError`]). What the command was
//! for (a preflight check, a readiness probe) is the caller's to say.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::duration::Human;

/// Why a program cannot be run, found before running it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    /// The path exists but is not an executable file.
    #[error("{} is not an executable file (chmod +x it, or run it through its interpreter)", .path.display())]
    NotExecutable {
        /// The path, resolved against the worker's `cwd`.
        path: PathBuf,
    },

    /// The path does not exist.
    #[error("{} does not exist", .path.display())]
    Missing {
        /// The path, resolved against the worker's `cwd`.
        path: PathBuf,
    },

    /// A bare name that no directory of `PATH` holds as an executable.
    #[error("program {program:?} not found in PATH (install it, or give its full path)")]
    NotInPath {
        /// The name as configured.
        program: String,
    },
}

/// Why a bounded command (`describe --json`, a `check`, a readiness command) gave no result.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// It could not be started.
    #[error("cannot start it")]
    Start {
        /// The spawn's error.
        #[source]
        source: io::Error,
    },

    /// Waiting for it (and its output) failed.
    #[error("cannot wait for it")]
    Wait {
        /// The wait's error.
        #[source]
        source: io::Error,
    },

    /// It ran past its time limit; its process group was killed.
    #[error("still running after {}; killed", Human(*.timeout))]
    TimedOut {
        /// The limit.
        timeout: Duration,
    },
}

/// Why a worker process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The spawn itself failed (no such file, permission denied, parent gone, ...).
    #[error("cannot start {}", .program.display())]
    Exec {
        /// The program of its command line.
        program: PathBuf,
        /// The spawn's error.
        #[source]
        source: io::Error,
    },

    /// The spawn succeeded but no process id came back (it was already reaped).
    #[error("{} was started but vanished before its process id was seen", .program.display())]
    Vanished {
        /// The program of its command line.
        program: PathBuf,
    },
}
