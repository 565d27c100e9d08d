//! Why this exists: the orchestrator's error type. Every message names the offending
//! value (file, key, worker, address) and says what to do about it, because the person
//! reading it is an operator at a terminal, not a debugger. A typed error's message says
//! its own part; what caused it is its `source()`, and [`Chain`] shows the whole story.

use std::fmt;
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

    /// Nothing answered `GET /status` at the address (the cause is the HTTP error).
    #[error("no orchestrator answering at {addr} (is `easel up` running? pass --addr HOST:PORT, or the config with its [orchestrator] listen)")]
    Unreachable {
        /// The address tried.
        addr: String,
        /// What went wrong on the wire.
        #[source]
        source: crate::http::HttpError,
    },

    /// A running orchestrator answered `GET /status` with a status other than 200.
    #[error("unexpected answer from the orchestrator at {addr}: GET /status answered {status}: {body}")]
    BadStatus {
        /// The address asked.
        addr: String,
        /// The HTTP status code.
        status: u16,
        /// The body, trimmed.
        body: String,
    },

    /// `GET /status` answered 200 with something that is not a status report.
    #[error("unexpected answer from the orchestrator at {addr}: GET /status is not a status report (is that port an `easel up`?)")]
    NotAStatusReport {
        /// The address asked.
        addr: String,
        /// Why the body did not parse.
        #[source]
        source: serde_json::Error,
    },
}

/// Shows an error with its causes on one line, `error: cause: cause's cause`, where a
/// reason becomes text (a worker's status, `easel up --check`, a log line). The typed
/// errors of this crate say only their own part; their causes are their `source()`.
#[derive(Debug)]
pub struct Chain<E>(pub E);

impl<E: std::error::Error> fmt::Display for Chain<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

/// Result with the orchestrator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_shows_every_cause_in_order() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let err = Error::Unreachable {
            addr: "127.0.0.1:7000".into(),
            source: crate::http::HttpError::Connect { source: refused },
        };
        let shown = Chain(&err).to_string();
        assert!(
            shown.starts_with("no orchestrator answering at 127.0.0.1:7000 (is `easel up` running?"),
            "{shown}"
        );
        assert!(
            shown.ends_with("[orchestrator] listen): cannot connect: connection refused"),
            "{shown}"
        );
    }

    #[test]
    fn a_chain_of_an_error_without_causes_is_its_message() {
        let err = Error::BadStatus {
            addr: "127.0.0.1:7000".into(),
            status: 404,
            body: "not found".into(),
        };
        assert_eq!(Chain(&err).to_string(), err.to_string());
        assert!(err.to_string().contains("GET /status answered 404: not found"), "{err}");
    }
}
