//! Why this exists: one error type for every configuration problem, whichever command found
//! it. Each message names the setting, where its value came from, and what to write instead;
//! all of them end `easel` with [`crate::EXIT_CONFIG`].

use std::fmt;
use std::path::PathBuf;

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// An environment variable (its name).
    Env(&'static str),
    /// A file, and the table in it (`[worker]`, or `""` for the top level).
    File { path: PathBuf, table: &'static str },
    /// The built-in default.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => write!(f, "a command-line flag"),
            Source::Env(name) => write!(f, "environment variable {name}"),
            Source::File { path, table: "" } => write!(f, "{}", path.display()),
            Source::File { path, table } => write!(f, "{} [{table}]", path.display()),
            Source::Default => write!(f, "the default"),
        }
    }
}

/// A configuration error: a setting is missing, malformed, or inconsistent with another.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value that does not parse or is out of range.
    #[error("{setting} = {value:?} (from {origin}) {problem}")]
    Invalid {
        setting: String,
        value: String,
        origin: Source,
        problem: String,
    },
    /// A setting that must be given is not.
    #[error("{0}")]
    Missing(String),
    /// The file cannot be read.
    #[error(
        "cannot read config file {path}: {msg} (check the path, or run without --config to use the embedded defaults)"
    )]
    File { path: PathBuf, msg: String },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong type.
    /// `message` is toml's own report, which names the line, column and key.
    #[error("invalid config {origin}:\n{message}")]
    Syntax { origin: String, message: String },
    /// The file parsed, but a value is wrong (duplicate names or ports, conflicting keys).
    #[error("invalid config {origin}: {message}")]
    Schema { origin: String, message: String },
    /// A setting whose value is well-formed but unusable (a device this build lacks, ...).
    #[error("{0}")]
    Unusable(String),
    /// A caller passed a flag for a setting that does not exist (a bug in the caller).
    #[error("unknown setting {0:?} passed as a flag (a bug in the caller)")]
    UnknownFlag(String),
}
