//! Why this exists: the state the job loop (worker.rs), the job handler (process.rs) and the
//! HTTP endpoints (http.rs) share, in its own file so that none of those three needs to
//! import another.

use std::sync::{Arc, Mutex};

use crate::callback::Notifier;
use crate::generator::Generator;
use crate::metrics::Metrics;
use crate::queue::Queue;
use crate::retry::RetryPolicy;
use crate::state::WorkerPhase;
use crate::storage::Storage;
use crate::watch::Watch;

/// What the job loop, the job handler and the HTTP endpoints share.
pub struct Shared {
    pub name: String,
    pub kind: &'static str,
    pub queue: Arc<dyn Queue>,
    pub storage: Arc<dyn Storage>,
    pub notifier: Arc<Notifier>,
    pub generator: Arc<dyn Generator>,
    /// Held while the engine runs a job, loads or unloads: they never overlap.
    pub engine: tokio::sync::Mutex<()>,
    pub metrics: Arc<Metrics>,
    /// For reference images.
    pub http: reqwest::Client,
    pub storage_policy: RetryPolicy,
    pub max_deliveries: u32,
    pub reference_fallback: bool,
    /// Reference URLs may reach internal addresses (tests, private networks).
    pub reference_allow_private: bool,
    pub admin_token: Option<crate::config::Secret>,
    /// Send `processing` callbacks while a job runs.
    pub progress_callbacks: bool,
    /// Time limits of `sdxl_image_fast` and `sdxl_image_high` jobs without their own.
    pub timeouts: (std::time::Duration, std::time::Duration),
    /// The watch over the job running now, for `GET /jobs/current` and `POST /jobs/{id}/cancel`.
    pub current: Mutex<Option<Arc<Watch>>>,
    pub(crate) phase: Mutex<WorkerPhase>,
}

impl Shared {
    /// The watch over the running job, if one runs.
    pub fn current(&self) -> Option<Arc<Watch>> {
        self.current.lock().ok().and_then(|c| c.clone())
    }

    /// Records (or clears) the running job's watch.
    pub fn set_current(&self, w: Option<Arc<Watch>>) {
        if let Ok(mut c) = self.current.lock() {
            *c = w;
        }
    }

    /// The worker's phase.
    pub fn phase(&self) -> WorkerPhase {
        self.phase.lock().map(|p| *p).unwrap_or(WorkerPhase::Stopped)
    }

    /// Moves the worker to `next` through [`WorkerPhase::move_to`]; illegal moves are logged bugs.
    pub fn set_phase(&self, next: WorkerPhase) {
        let Ok(mut p) = self.phase.lock() else { return };
        if *p == next {
            return;
        }
        match p.move_to(next) {
            Ok(()) => tracing::info!(worker.name = %self.name, phase = next.as_str(), "worker phase"),
            Err(e) => tracing::error!(worker.name = %self.name, error = %e, "bug: illegal worker phase change"),
        }
    }
}
