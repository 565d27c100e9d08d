//! Why this exists: what `easel up` does with Unix signals, kept in the library so the
//! integration tests run exactly the binary's behaviour in a child process.
//!
//! - SIGTERM, SIGINT: stop every worker gracefully, then return `Ok` (exit 0).
//!   The same signal again during the stop: SIGKILL every worker at once.
//! - SIGHUP: read the config again from where it came from; if valid, apply it (start
//!   added workers, stop removed ones, restart changed ones); if not, keep running on the
//!   old one and log why.

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::orchestrator::{Handle, Orchestrator};

/// Runs `orchestrator` until SIGTERM or SIGINT, reloading its config on SIGHUP.
pub async fn run_until_signalled(orchestrator: Orchestrator) -> Result<()> {
    let listeners = Listeners {
        term: signal(SignalKind::terminate()).map_err(Error::Signals)?,
        int: signal(SignalKind::interrupt()).map_err(Error::Signals)?,
        hup: signal(SignalKind::hangup()).map_err(Error::Signals)?,
    };
    let shutdown = CancellationToken::new();
    let forward =
        tokio::spawn(listeners.forward(shutdown.clone(), orchestrator.handle(), orchestrator.config().clone()));
    let result = orchestrator.run(shutdown).await;
    forward.abort();
    result
}

struct Listeners {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Listeners {
    async fn forward(mut self, shutdown: CancellationToken, handle: Handle, config: Config) {
        loop {
            tokio::select! {
                _ = self.term.recv() => on_stop_signal("SIGTERM", &shutdown, &handle),
                _ = self.int.recv() => on_stop_signal("SIGINT", &shutdown, &handle),
                _ = self.hup.recv() => on_reload_signal(&config, &handle),
            }
        }
    }
}

fn on_stop_signal(name: &str, shutdown: &CancellationToken, handle: &Handle) {
    if shutdown.is_cancelled() {
        tracing::warn!("{name} again: killing every worker now");
        handle.force_stop();
    } else {
        tracing::info!("{name}: stopping every worker gracefully (send it again to kill them at once)");
        shutdown.cancel();
    }
}

fn on_reload_signal(config: &Config, handle: &Handle) {
    match config.reload() {
        Ok(new) => handle.reload(new),
        Err(e) => tracing::error!("SIGHUP: the config was not reloaded, the running one stays: {e}"),
    }
}
