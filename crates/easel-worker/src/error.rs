//! Why this exists: one top-level error for starting and running a worker, so the binary can
//! map it to an exit code (`78` for configuration, `1` otherwise) without knowing the parts.

use crate::config::ConfigError;
use crate::db::DbError;
use crate::generator::GeneratorError;
use crate::queue::QueueError;
use crate::storage::StorageError;

use easel_config::EXIT_CONFIG;

/// Everything that can stop a worker (jobs failing is not among them: a failed job is an
/// outcome, reported by callback).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Generator(#[from] GeneratorError),
    /// The HTTP endpoints could not be served.
    #[error("cannot listen on {addr}: {cause}; set WORKER_PORT to a free port (or 0 for any)")]
    Listen {
        addr: String,
        /// In the message, not a `source()`, so that error chains do not repeat it.
        cause: std::io::Error,
    },
}

impl Error {
    /// The process exit code this error should end `easel worker` with.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => EXIT_CONFIG,
            _ => 1,
        }
    }
}
