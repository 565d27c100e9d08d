//! Why this exists: a lone `easel worker` serves the same console as `easel up`, for its own
//! worker and queue. Here the fleet is the worker itself: its phase, pid and uptime; it
//! cannot restart itself (a supervisor does that), and says so.

use std::sync::Arc;
use std::time::Instant;

use easel_console::{Console, Fleet, WorkerRow};

use crate::config::WorkerConfig;
use crate::shared::Shared;
use crate::state::WorkerPhase;

/// The worker as the console's only fleet member.
struct Itself {
    shared: Arc<Shared>,
    started: Instant,
}

impl Fleet for Itself {
    fn workers(&self) -> Vec<WorkerRow> {
        let phase = self.shared.phase();
        vec![WorkerRow {
            name: self.shared.name.clone(),
            kind: self.shared.kind.to_owned(),
            state: phase.as_str().to_owned(),
            pid: Some(std::process::id()),
            port: None,
            uptime_s: Some((self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0),
            restarts: 0,
            last_exit: None,
            reason: None,
            ready: phase == WorkerPhase::Ready,
        }]
    }

    fn restart(&self, _name: &str) -> Result<String, String> {
        Err("a lone worker cannot restart itself: run it under `easel up`, which can".into())
    }
}

/// The console routes of this worker.
pub fn routes(shared: &Arc<Shared>, config: &WorkerConfig) -> axum::Router {
    easel_console::router(Console {
        title: format!("worker {}", shared.name),
        queue: Arc::clone(&shared.queue),
        storage: Arc::clone(&shared.storage),
        config: config.clone(),
        fleet: Arc::new(Itself {
            shared: Arc::clone(shared),
            started: Instant::now(),
        }),
    })
}
