//! Why this exists: the orchestrator's error type. Every message names the offending
//! value (file, key, worker, address) and says what to do about it, because the person
//! reading it is an operator at a terminal, not a debugger.

use std::net::SocketAddr;

/// Errors of the orchestrator library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `easel.toml` cannot be read, parsed or used.
    #[error(transparent)]
    Config(#[from] easel_config::ConfigError),

    /// The status server could not listen on its address.
    #[error("cannot listen on {addr} for /status: {cause} (another `easel up` running? set [orchestrator] listen = \"127.0.0.1:PORT\" in easel.toml)")]
    Listen {
        /// The address from `[orchestrator] listen`.
        addr: SocketAddr,
        /// Why.
        cause: std::io::Error,
    },

    /// The watchdog process (which kills the workers if the orchestrator dies) could not start.
    #[error("cannot start the watchdog process (/bin/sh): {0}")]
    Watchdog(std::io::Error),

    /// Installing signal handlers failed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),

    /// Talking to a running orchestrator's HTTP endpoint failed.
    #[error("no orchestrator answering at {addr}: {message} (is `easel up` running? pass --addr HOST:PORT, or the config with its [orchestrator] listen)")]
    Unreachable {
        /// The address tried.
        addr: String,
        /// What went wrong.
        message: String,
    },

    /// A running orchestrator answered, but not as expected.
    #[error("unexpected answer from the orchestrator at {addr}: {message}")]
    BadAnswer {
        /// The address asked.
        addr: String,
        /// What was wrong with the answer.
        message: String,
    },
}

/// Result with the orchestrator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
