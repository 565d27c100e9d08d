//! Why this exists: "started" is not "ready" (SDXL loads for minutes), and the next
//! worker in the start order must wait for the real thing. Flow: the supervisor starts one
//! prober task per process attempt; it probes every `interval` until one probe succeeds,
//! then reports once and ends. The start timeout is the supervisor's, not the prober's.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::config::{ReadyCheck, WorkerSpec};
use crate::launch;
use crate::process;

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
                Err(why) => tracing::trace!(worker.name = %worker.name, "not ready yet: {why}"),
            }
            tokio::time::sleep(interval).await;
        }
    })
}

/// One probe: `Ok` if the worker is ready now.
pub(crate) async fn probe(worker: &WorkerSpec, check: &ReadyCheck) -> Result<(), String> {
    match check {
        ReadyCheck::Http { port, path } => {
            let addr = format!("127.0.0.1:{port}");
            let response = crate::http::get(&addr, path, PROBE_TIMEOUT)
                .await
                .map_err(|e| crate::Chain(e).to_string())?;
            match response.status {
                200 => Ok(()),
                other => Err(format!("GET {path} answered {other}")),
            }
        }
        ReadyCheck::Command(argv) => {
            let cmd = launch::aux_command(worker, argv).ok_or("empty readiness command")?;
            let output = process::run_bounded(cmd, PROBE_TIMEOUT)
                .await
                .map_err(|e| crate::Chain(e).to_string())?;
            match output.status.success() {
                true => Ok(()),
                false => Err(format!(
                    "readiness command {}",
                    crate::restart::ExitInfo::from_status(output.status)
                )),
            }
        }
        ReadyCheck::AliveFor(_) => Ok(()),
    }
}
