//! Why this exists: "started" is not "ready" (SDXL loads for minutes), and the next
//! worker in the start order must wait for the real thing. Flow: the supervisor starts one
//! prober task per process attempt; it probes every `interval` until one probe succeeds,
//! then reports once and ends. The start timeout is the supervisor's, not the prober's.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::config::{ReadyCheck, WorkerSpec};
use crate::error::Chain;
use crate::http::HttpError;
use crate::launch;
use crate::process::{self, CommandError};
use crate::restart::ExitInfo;

/// One HTTP probe or check command may take this long before it counts as "not yet".
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts probing `worker`; calls `on_ready` once, when a probe succeeds.
pub(crate) fn spawn_prober(worker: &WorkerSpec, on_ready: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    let check = worker.ready_check();
    let interval = worker.readiness.interval;
    let worker = worker.clone();
    tokio::spawn(async move {
        if let ReadyCheck::AliveFor(after) = check {
            tokio::time::sleep(after).await;
            return on_ready();
        }
        loop {
            match probe(&worker, &check).await {
                Ok(()) => return on_ready(),
                Err(why) => tracing::trace!(worker.name = %worker.name, "not ready yet: {}", Chain(why)),
            }
            tokio::time::sleep(interval).await;
        }
    })
}

/// Why a worker is not ready yet (logged at trace level; the next probe may succeed).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProbeError {
    /// The readiness endpoint gave no usable answer (not listening yet, most often).
    #[error("GET http://{addr}{path}")]
    Unanswered {
        /// `127.0.0.1:<port>`.
        addr: String,
        /// The readiness path.
        path: String,
        /// What went wrong on the wire.
        #[source]
        source: HttpError,
    },

    /// The readiness endpoint answered, with a status other than 200.
    #[error("GET http://{addr}{path} answered {status}")]
    NotReady {
        /// `127.0.0.1:<port>`.
        addr: String,
        /// The readiness path.
        path: String,
        /// The HTTP status code (503 while loading).
        status: u16,
    },

    /// `readiness.command = []`: nothing to run.
    #[error("empty readiness command")]
    EmptyCommand,

    /// The readiness command did not run to its end.
    #[error("readiness command `{}`", .argv.join(" "))]
    CommandDidNotRun {
        /// The command line.
        argv: Vec<String>,
        /// Why.
        #[source]
        source: CommandError,
    },

    /// The readiness command ran and failed.
    #[error("readiness command `{}` {exit}", .argv.join(" "))]
    CommandFailed {
        /// The command line.
        argv: Vec<String>,
        /// How it ended.
        exit: ExitInfo,
    },
}

/// One probe: `Ok` if the worker is ready now.
pub(crate) async fn probe(worker: &WorkerSpec, check: &ReadyCheck) -> Result<(), ProbeError> {
    match check {
        ReadyCheck::Http { port, path } => {
            let addr = format!("127.0.0.1:{port}");
            let response = match crate::http::get(&addr, path, PROBE_TIMEOUT).await {
                Ok(response) => response,
                Err(source) => {
                    return Err(ProbeError::Unanswered {
                        addr,
                        path: path.clone(),
                        source,
                    })
                }
            };
            match response.status {
                200 => Ok(()),
                status => Err(ProbeError::NotReady {
                    addr,
                    path: path.clone(),
                    status,
                }),
            }
        }
        ReadyCheck::Command(argv) => {
            let cmd = launch::aux_command(worker, argv).ok_or(ProbeError::EmptyCommand)?;
            let output =
                process::run_bounded(cmd, PROBE_TIMEOUT)
                    .await
                    .map_err(|source| ProbeError::CommandDidNotRun {
                        argv: argv.clone(),
                        source,
                    })?;
            match output.status.success() {
                true => Ok(()),
                false => Err(ProbeError::CommandFailed {
                    argv: argv.clone(),
                    exit: ExitInfo::from_status(output.status),
                }),
            }
        }
        ReadyCheck::AliveFor(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(argv: &[&str]) -> ReadyCheck {
        ReadyCheck::Command(argv.iter().map(|a| (*a).to_owned()).collect())
    }

    #[tokio::test]
    async fn a_closed_port_is_not_ready_and_says_where_it_asked() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let check = ReadyCheck::Http {
            port,
            path: "/readyz".into(),
        };
        let err = probe(&WorkerSpec::default(), &check).await.unwrap_err();
        assert!(matches!(err, ProbeError::Unanswered { .. }), "{err:?}");
        let shown = Chain(&err).to_string();
        assert!(
            shown.starts_with(&format!("GET http://127.0.0.1:{port}/readyz: cannot connect: ")),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn a_readiness_command_is_ready_when_it_exits_0() {
        let worker = WorkerSpec::default();
        assert!(probe(&worker, &command(&["true"])).await.is_ok());
        let err = probe(&worker, &command(&["sh", "-c", "exit 3"])).await.unwrap_err();
        assert_eq!(err.to_string(), "readiness command `sh -c exit 3` exited with code 3");
        let err = probe(&worker, &command(&[])).await.unwrap_err();
        assert!(matches!(err, ProbeError::EmptyCommand), "{err:?}");
    }
}
