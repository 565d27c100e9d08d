//! Why this exists: `/metrics` in Prometheus text format — jobs by outcome, job duration and
//! queue wait as histograms, time spent in each phase, the running job's progress, jobs
//! stopped early by type and reason, queue depth, callback and upload attempts, and
//! `easel_build_info` — from plain atomics, so the hot path costs an atomic add and there is
//! no metrics dependency to build.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::histogram::Histogram;
use crate::queue::Depth;

/// How a job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Failed,
    DeadLettered,
    Released,
    /// A job pushed again after it finished: its recorded callback was sent again.
    Resent,
    /// A run whose job already had an outcome (recorded by another run): nothing was sent.
    Duplicate,
}

impl Outcome {
    const ALL: [Outcome; 6] = [
        Outcome::Completed,
        Outcome::Failed,
        Outcome::DeadLettered,
        Outcome::Released,
        Outcome::Resent,
        Outcome::Duplicate,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Failed => "failed",
            Outcome::DeadLettered => "dead_lettered",
            Outcome::Released => "released",
            Outcome::Resent => "resent",
            Outcome::Duplicate => "duplicate",
        }
    }
}

/// A timed phase of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Reference,
    Generate,
    Encode,
    Upload,
}

impl Phase {
    const ALL: [Phase; 4] = [Phase::Reference, Phase::Generate, Phase::Encode, Phase::Upload];

    fn label(self) -> &'static str {
        match self {
            Phase::Reference => "reference",
            Phase::Generate => "generate",
            Phase::Encode => "encode",
            Phase::Upload => "upload",
        }
    }
}

/// What became of a callback attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallbackResult {
    Delivered,
    Retry,
    GaveUp,
}

impl CallbackResult {
    const ALL: [CallbackResult; 3] = [CallbackResult::Delivered, CallbackResult::Retry, CallbackResult::GaveUp];

    fn label(self) -> &'static str {
        match self {
            CallbackResult::Delivered => "delivered",
            CallbackResult::Retry => "retry",
            CallbackResult::GaveUp => "gave_up",
        }
    }
}

/// The worker's counters.
#[derive(Default)]
pub struct Metrics {
    jobs: [AtomicU64; 6],
    phase_micros: [AtomicU64; 4],
    phase_count: [AtomicU64; 4],
    callbacks: [AtomicU64; 3],
    uploads_ok: AtomicU64,
    uploads_failed: AtomicU64,
    /// Seconds from a job's start to its recorded outcome.
    duration: Histogram,
    /// Seconds a job waited in the queue before it started (where the push time is known).
    wait: Histogram,
    /// The running job's denoising progress in millionths (0 when none runs).
    progress_millionths: AtomicU64,
    /// Jobs stopped before they finished, by (job type, `cancelled` or `timeout`).
    stops: std::sync::Mutex<std::collections::BTreeMap<(String, &'static str), u64>>,
}

fn index<T: PartialEq>(all: &[T], x: T) -> usize {
    all.iter().position(|a| *a == x).unwrap_or(0)
}

impl Metrics {
    /// Counts a finished job.
    pub fn job(&self, outcome: Outcome) {
        self.jobs[index(&Outcome::ALL, outcome)].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds the duration of one phase.
    pub fn phase(&self, phase: Phase, took: Duration) {
        let i = index(&Phase::ALL, phase);
        self.phase_micros[i].fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.phase_count[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a callback attempt.
    pub fn callback(&self, result: CallbackResult) {
        self.callbacks[index(&CallbackResult::ALL, result)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an upload attempt.
    pub fn storage_attempt(&self, ok: bool) {
        let c = if ok { &self.uploads_ok } else { &self.uploads_failed };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A job ran for `took` (start to outcome).
    pub fn job_duration(&self, took: Duration) {
        self.duration.observe(took);
    }

    /// A job waited `waited` in the queue before it started.
    pub fn queue_wait(&self, waited: Duration) {
        self.wait.observe(waited);
    }

    /// The running job reached `step` of `total` (0 of 0: none runs).
    pub fn progress(&self, step: u32, total: u32) {
        let ratio = if total == 0 {
            0
        } else {
            u64::from(step.min(total)) * 1_000_000 / u64::from(total)
        };
        self.progress_millionths.store(ratio, Ordering::Relaxed);
    }

    /// Counts a job of `job_type` stopped early: `why` is `cancelled` or `timeout`.
    pub fn stopped(&self, job_type: &str, why: &'static str) {
        if let Ok(mut m) = self.stops.lock() {
            *m.entry((job_type.to_string(), why)).or_insert(0) += 1;
        }
    }

    /// Jobs that ended with `outcome` so far.
    pub fn jobs(&self, outcome: Outcome) -> u64 {
        self.jobs[index(&Outcome::ALL, outcome)].load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition, with the queue `depth` if known.
    pub fn render(&self, depth: Option<Depth>) -> String {
        let mut s = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        s.push_str("# HELP easel_build_info The running build (always 1).\n# TYPE easel_build_info gauge\n");
        let _ = writeln!(s, "easel_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
        self.duration.render(
            &mut s,
            "easel_job_duration_seconds",
            "Time from a job's start to its recorded outcome.",
        );
        self.wait.render(
            &mut s,
            "easel_queue_wait_seconds",
            "Time a job waited in the queue before it started (where the push time is known).",
        );
        s.push_str("# HELP easel_jobs_total Jobs finished, by outcome.\n# TYPE easel_jobs_total counter\n");
        for o in Outcome::ALL {
            let _ = writeln!(s, "easel_jobs_total{{outcome=\"{}\"}} {}", o.label(), self.jobs(o));
        }
        s.push_str(
            "# HELP easel_job_phase_seconds Time spent in each job phase.\n# TYPE easel_job_phase_seconds summary\n",
        );
        for (i, p) in Phase::ALL.iter().enumerate() {
            let secs = load(&self.phase_micros[i]) as f64 / 1e6;
            let _ = writeln!(s, "easel_job_phase_seconds_sum{{phase=\"{}\"}} {secs}", p.label());
            let _ = writeln!(
                s,
                "easel_job_phase_seconds_count{{phase=\"{}\"}} {}",
                p.label(),
                load(&self.phase_count[i])
            );
        }
        s.push_str("# HELP easel_callback_attempts_total Callback attempts, by result.\n# TYPE easel_callback_attempts_total counter\n");
        for (i, r) in CallbackResult::ALL.iter().enumerate() {
            let _ = writeln!(
                s,
                "easel_callback_attempts_total{{result=\"{}\"}} {}",
                r.label(),
                load(&self.callbacks[i])
            );
        }
        s.push_str("# HELP easel_upload_attempts_total Storage upload attempts, by result.\n# TYPE easel_upload_attempts_total counter\n");
        let _ = writeln!(
            s,
            "easel_upload_attempts_total{{result=\"ok\"}} {}",
            load(&self.uploads_ok)
        );
        let _ = writeln!(
            s,
            "easel_upload_attempts_total{{result=\"failed\"}} {}",
            load(&self.uploads_failed)
        );
        s.push_str("# HELP easel_job_progress_ratio Denoising progress of the running job (0 to 1; 0 when idle).\n# TYPE easel_job_progress_ratio gauge\n");
        let _ = writeln!(
            s,
            "easel_job_progress_ratio {}",
            load(&self.progress_millionths) as f64 / 1e6
        );
        s.push_str("# HELP easel_jobs_stopped_total Jobs stopped before they finished, by job type and reason.\n# TYPE easel_jobs_stopped_total counter\n");
        if let Ok(m) = self.stops.lock() {
            for ((job_type, why), n) in m.iter() {
                let _ = writeln!(
                    s,
                    "easel_jobs_stopped_total{{job_type=\"{job_type}\",reason=\"{why}\"}} {n}"
                );
            }
        }
        if let Some(d) = depth {
            s.push_str("# HELP easel_queue_depth Jobs in the queue, by state.\n# TYPE easel_queue_depth gauge\n");
            let _ = writeln!(s, "easel_queue_depth{{state=\"queued\"}} {}", d.queued);
            let _ = writeln!(s, "easel_queue_depth{{state=\"in_flight\"}} {}", d.in_flight);
            let _ = writeln!(s, "easel_queue_depth{{state=\"dead\"}} {}", d.dead);
        }
        s
    }
}
