//! Why this exists: while a job runs, someone has to watch it — publish its phase and step
//! to the queue (throttled) so `easel jobs` can show it, notice a cancel request or the time
//! limit and stop the engine within a step, and optionally send `processing` callbacks.
//! A [`Watch`] is that someone: one per running job, ended before the job's outcome is
//! recorded, so nothing it sends can follow the terminal callback.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use easel_sdxl::cancel::Cancel;
use tokio::task::JoinHandle;

use crate::callback::Notifier;
use crate::db::now;
use crate::metrics::Metrics;
use crate::queue::control::Progress;
use crate::queue::Queue;

/// How often progress is published and the cancel mark checked.
pub const TICK: Duration = Duration::from_millis(250);
/// The least time between two progress callbacks.
pub const PROGRESS_CALLBACK_EVERY: Duration = Duration::from_millis(500);

/// Where a watch reports: the queue (progress, cancel marks), the metrics, and the notifier
/// for progress callbacks (`None`: they are off).
pub struct Reports {
    pub queue: Arc<dyn Queue>,
    pub metrics: Arc<Metrics>,
    pub callbacks: Option<Arc<Notifier>>,
}

/// Why a job was stopped before it finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Someone asked (`easel jobs cancel`, `POST /jobs/{id}/cancel`).
    Cancelled,
    /// It ran past its time limit.
    Timeout(Duration),
}

/// What a running job is doing, as the watch knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub id: String,
    pub phase: &'static str,
    pub step: u32,
    pub total: u32,
    /// Seconds since the job started.
    pub elapsed: f64,
    pub timeout: Duration,
}

struct State {
    phase: &'static str,
    step: u32,
    total: u32,
    stop: Option<Stop>,
}

/// The watch over one running job.
pub struct Watch {
    id: String,
    cancel: Cancel,
    started: Instant,
    timeout: Duration,
    state: Mutex<State>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Watch {
    /// Starts watching job `id`, which may run for `timeout`, reporting to `to`.
    pub fn start(to: Reports, id: &str, timeout: Duration) -> Arc<Self> {
        let w = Arc::new(Self {
            id: id.to_string(),
            cancel: Cancel::new(),
            started: Instant::now(),
            timeout,
            state: Mutex::new(State {
                phase: "starting",
                step: 0,
                total: 0,
                stop: None,
            }),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(tick(to, w.clone()));
        if let Ok(mut t) = w.task.lock() {
            *t = Some(task);
        }
        w
    }

    /// The flag the engine checks.
    pub fn cancel_flag(&self) -> Cancel {
        self.cancel.clone()
    }

    /// The job entered `phase` (`fetching_reference`, `encoding`, `denoising`, `decoding`, `uploading`).
    pub fn phase(&self, phase: &'static str) {
        if let Ok(mut s) = self.state.lock() {
            s.phase = phase;
        }
    }

    /// Denoising reached `step` of `total` (called from the engine's thread).
    pub fn step(&self, step: u32, total: u32) {
        if let Ok(mut s) = self.state.lock() {
            s.phase = if step >= total && total > 0 {
                "decoding"
            } else {
                "denoising"
            };
            s.step = step;
            s.total = total;
        }
    }

    /// Stops the job at the engine's next check; the first reason given is kept.
    pub fn stop(&self, why: Stop) {
        if let Ok(mut s) = self.state.lock() {
            s.stop.get_or_insert(why);
        }
        self.cancel.cancel();
    }

    /// Why the job was stopped, if it was.
    pub fn stopped(&self) -> Option<Stop> {
        self.state.lock().ok().and_then(|s| s.stop)
    }

    /// What the job is doing now.
    pub fn snapshot(&self) -> Snapshot {
        let (phase, step, total) = self
            .state
            .lock()
            .map(|s| (s.phase, s.step, s.total))
            .unwrap_or(("unknown", 0, 0));
        Snapshot {
            id: self.id.clone(),
            phase,
            step,
            total,
            elapsed: self.started.elapsed().as_secs_f64(),
            timeout: self.timeout,
        }
    }

    /// Stops watching (before the outcome is recorded).
    pub fn end(&self) {
        if let Some(t) = self.task.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
    }

    fn progress(&self) -> Progress {
        let s = self.snapshot();
        Progress {
            phase: s.phase.to_string(),
            step: s.step,
            total: s.total,
            updated_at: now(),
        }
    }
}

/// Every [`TICK`]: the time limit, the cancel mark, progress to the queue (when it changed),
/// and a progress callback (when enabled and [`PROGRESS_CALLBACK_EVERY`] has passed).
async fn tick(to: Reports, w: Arc<Watch>) {
    let mut last: Option<(String, u32, u32)> = None;
    let mut last_callback: Option<Instant> = None;
    let mut seq = 0;
    loop {
        tokio::time::sleep(TICK).await;
        if w.started.elapsed() >= w.timeout {
            w.stop(Stop::Timeout(w.timeout));
        }
        match to.queue.cancel_requested(&w.id).await {
            Ok(true) => w.stop(Stop::Cancelled),
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "cannot check for a cancel request"),
        }
        let p = w.progress();
        let key = (p.phase.clone(), p.step, p.total);
        if last.as_ref() == Some(&key) {
            continue;
        }
        if let Err(e) = to.queue.progress(&w.id, &p).await {
            tracing::debug!(error = %e, "cannot publish progress");
        }
        to.metrics.progress(p.step, p.total);
        last = Some(key);
        let due = last_callback.is_none_or(|t| t.elapsed() >= PROGRESS_CALLBACK_EVERY);
        if let (Some(notifier), true) = (&to.callbacks, due) {
            seq += 1;
            let body = crate::contract::wire::progress(&w.id, &p.phase, p.step, p.total, p.updated_at);
            notifier.send_progress(&w.id, &body, seq).await;
            last_callback = Some(Instant::now());
        }
    }
}
