//! Why this exists: `easel up` serves the web console on its status address. This wires the
//! console to the orchestrator: the fleet is the supervised workers (their status report,
//! and a restart through the orchestrator's handle), the queue and storage are the ones the
//! workers' `[worker]` settings name, opened here as a tool.

use std::sync::Arc;

use anyhow::{Context, Result};
use easel_config::house::Origin;
use easel_config::WorkerConfig;
use easel_console::{Console, Fleet, WorkerRow};
use easel_orchestrator::{Config, Handle, WorkerState};

/// The supervised workers, seen through the orchestrator's handle.
struct Supervised(Handle);

impl Fleet for Supervised {
    fn workers(&self) -> Vec<WorkerRow> {
        self.0
            .status()
            .workers
            .into_iter()
            .map(|w| WorkerRow {
                ready: w.state == WorkerState::Running,
                name: w.name,
                kind: w.kind,
                state: w.state.to_string(),
                pid: w.pid,
                port: w.port,
                uptime_s: w.uptime_s,
                restarts: w.restarts,
                last_exit: w.last_exit.map(|e| e.description),
                reason: w.reason,
            })
            .collect()
    }

    fn restart(&self, name: &str) -> Result<String, String> {
        self.0.restart(name)?;
        Ok(format!(
            "restarting {name}: it stops within its stop grace, then starts again"
        ))
    }
}

/// The console routes for an orchestrator of `config`, reached through `handle`.
pub fn for_orchestrator(config: &Config, handle: Handle) -> Result<axum::Router> {
    let file = match &config.origin {
        Origin::File(path) => Some(path.as_path()),
        Origin::Embedded => None,
    };
    let worker = WorkerConfig::load(&[], file).context("reading the [worker] settings for the console")?;
    let queue = easel_jobs::submit::open_queue_as(&worker, "console").context("opening the queue for the console")?;
    let storage =
        easel_jobs::storage::open(&worker.storage, &worker.bucket).context("opening the storage for the console")?;
    Ok(easel_console::router(Console {
        title: "easel up".into(),
        queue,
        storage,
        config: worker,
        fleet: Arc::new(Supervised(handle)),
    }))
}
