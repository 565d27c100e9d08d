//! Why this exists: the worker process's life. [`Worker::run`] is the job loop; `start`,
//! `serve` and `launch` delegate to it, because supervisors call different names (a Python
//! worker once lost `run` and every start crashed with "object has no attribute 'run'" — here
//! the trait makes that a compile error, and a CLI test checks every registered kind).
//!
//! Flow of [`SdxlWorker::run`]: open the queue → serve HTTP (`/livez` answers at once) → load
//! the model → start the callback, heartbeat and reclaim tasks → Ready (`/readyz` 200) → lease
//! and handle jobs one at a time → on shutdown: Draining, stop leasing, let the running job
//! finish within the grace period or hand its lease back → flush callbacks → Stopped, `Ok`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::callback::Notifier;
use crate::config::{GeneratorChoice, WorkerConfig};
use crate::db::Db;
use crate::generator::{FakeGenerator, Generator};
use crate::metrics::{Metrics, Outcome};
use crate::queue::{self, Delivery};
use crate::retry::RetryPolicy;
use crate::sdxl::SdxlGenerator;
use crate::shared::Shared;
use crate::state::WorkerPhase;
use crate::storage::{self, Storage};
use crate::{http, process, Error};

/// Pause after a queue error before trying again (the Python worker paused 10 s): short, so
/// a Redis restart costs a job seconds, not tens of them.
const QUEUE_ERROR_PAUSE: Duration = crate::retry::QUEUE_MAX_DELAY;
/// While the queue is unreachable at start, how many failed attempts pass between log lines
/// after the first (logged at once): about one a minute at the capped retry delay.
const UNREACHABLE_LOG_EVERY: u32 = 30;

/// A worker process: `run` is the loop; the other entry points are the same loop.
pub trait Worker {
    /// The kind, as `easel worker <kind>` names it.
    fn kind(&self) -> &'static str;

    /// Runs the job loop until `shutdown` is cancelled, then drains and returns `Ok`.
    fn run(&self, shutdown: CancellationToken) -> impl Future<Output = Result<(), Error>> + Send;

    /// Same as [`Worker::run`].
    fn start(&self, shutdown: CancellationToken) -> impl Future<Output = Result<(), Error>> + Send {
        self.run(shutdown)
    }

    /// Same as [`Worker::run`].
    fn serve(&self, shutdown: CancellationToken) -> impl Future<Output = Result<(), Error>> + Send {
        self.run(shutdown)
    }

    /// Same as [`Worker::run`].
    fn launch(&self, shutdown: CancellationToken) -> impl Future<Output = Result<(), Error>> + Send {
        self.run(shutdown)
    }
}

/// The SDXL worker.
pub struct SdxlWorker {
    config: WorkerConfig,
    generator: Arc<dyn Generator>,
    storage: Arc<dyn Storage>,
    db: Db,
    metrics: Arc<Metrics>,
}

impl SdxlWorker {
    /// A worker for `config`, with the generator it names. Fails on configuration errors
    /// (exit 78) and on an unusable data dir.
    pub fn new(config: WorkerConfig) -> Result<Self, Error> {
        let generator: Arc<dyn Generator> = match &config.generator {
            GeneratorChoice::Sdxl(m) => Arc::new(
                SdxlGenerator::new(m.model.clone(), &m.device, m.dtype.as_deref())?
                    .with_candle_kernels(m.candle_kernels),
            ),
            GeneratorChoice::Fake { delay } => Arc::new(FakeGenerator::new(*delay)),
        };
        Self::with_generator(config, generator)
    }

    /// A worker for `config` running `generator` (tests pass a fake).
    pub fn with_generator(config: WorkerConfig, generator: Arc<dyn Generator>) -> Result<Self, Error> {
        let storage = storage::open(&config.storage, &config.bucket)?;
        let db = Db::open(&config.db_path())?;
        Ok(Self {
            config,
            generator,
            storage,
            db,
            metrics: Arc::new(Metrics::default()),
        })
    }

    /// The counters (tests read them).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    async fn shared(&self) -> Result<Arc<Shared>, Error> {
        let c = &self.config;
        let consumer = queue::consumer_id(&c.worker_name);
        let queue = queue::open(&c.queue, &c.queue_name, consumer, &self.db, queue::QueueOptions::of(c))?;
        let policy = RetryPolicy::callback(c.timing.retry_base);
        let notifier = Notifier::new(
            queue.clone(),
            c.callback.clone(),
            c.callback_secret.clone(),
            policy,
            self.metrics.clone(),
        );
        Ok(Arc::new(Shared {
            name: c.worker_name.clone(),
            kind: "sdxl",
            queue,
            storage: self.storage.clone(),
            notifier: Arc::new(notifier),
            generator: self.generator.clone(),
            engine: tokio::sync::Mutex::new(()),
            metrics: self.metrics.clone(),
            http: crate::reference::client(c.reference_allow_private),
            storage_policy: RetryPolicy::storage(c.timing.retry_base, c.timing.upload_budget),
            max_deliveries: c.max_deliveries,
            reference_fallback: c.reference_fallback,
            reference_allow_private: c.reference_allow_private,
            admin_token: c.admin_token.clone(),
            progress_callbacks: c.progress_callbacks,
            timeouts: (c.timing.timeout_fast, c.timing.timeout_high),
            current: Mutex::new(None),
            phase: Mutex::new(WorkerPhase::Starting),
        }))
    }

    fn log_start(&self, shared: &Shared, addr: SocketAddr) {
        let info = self.generator.info();
        tracing::info!(
            worker.name = %shared.name, consumer = shared.queue.consumer(), queue = %shared.queue.describe(),
            storage = %shared.storage.describe(), http = %addr, model = %info.name, device = %info.device,
            "worker starting"
        );
        if let Some(side) = info.preset_side {
            tracing::warn!(
                side,
                "presets default to {side}x{side} instead of the contract's 1024x1024: {} is not an SDXL-sized model \
                 (jobs that set width/height still get their size)",
                info.name
            );
        }
    }

    async fn load_model(&self, shared: &Shared, shutdown: &CancellationToken) -> Result<bool, Error> {
        shared.set_phase(WorkerPhase::Loading);
        let _engine = shared.engine.lock().await;
        let generator = self.generator.clone();
        let started = std::time::Instant::now();
        let load = tokio::task::spawn_blocking(move || generator.load());
        tokio::select! {
            _ = shutdown.cancelled() => Ok(false),
            r = load => {
                let r = r.map_err(|e| crate::generator::GeneratorError::Load(format!("loader crashed: {e}")))?;
                r?;
                tracing::info!(secs = started.elapsed().as_secs_f64(), "model loaded");
                Ok(true)
            }
        }
    }

    /// Waits until the queue answers, retrying with capped jittered backoff; `false` if
    /// `shutdown` came first. The first failure is logged at once, then about once a minute.
    async fn wait_for_queue(&self, shared: &Shared, shutdown: &CancellationToken) -> bool {
        let policy = RetryPolicy::queue(Duration::MAX);
        let mut attempt = 1;
        loop {
            let reached = match shared.queue.ping().await {
                Ok(()) => shared.queue.mark_worker_started().await,
                Err(e) => Err(e),
            };
            let Err(e) = reached else {
                if attempt > 1 {
                    tracing::info!(queue = %shared.queue.describe(), "queue reachable");
                }
                return true;
            };
            if attempt == 1 || attempt % UNREACHABLE_LOG_EVERY == 0 {
                tracing::error!(worker.name = %shared.name, error = %e, attempts = attempt, "queue unreachable; retrying until it answers (/readyz is 503 meanwhile)");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(policy.ceiling(attempt)) => {}
            }
            attempt += 1;
        }
    }

    async fn job_loop(&self, shared: &Arc<Shared>, shutdown: &CancellationToken) {
        let poll = self.config.timing.poll;
        while !shutdown.is_cancelled() {
            let leased = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = shared.queue.lease() => r,
            };
            match leased {
                Ok(Some(d)) => self.run_job(shared, d, shutdown).await,
                Ok(None) => pause(poll, shutdown).await,
                Err(e) => {
                    tracing::error!(worker.name = %shared.name, error = %e, "cannot take a job from the queue");
                    pause(QUEUE_ERROR_PAUSE.max(poll), shutdown).await;
                }
            }
        }
    }

    async fn run_job(&self, shared: &Arc<Shared>, d: Delivery, shutdown: &CancellationToken) {
        let job = process::handle(shared.clone(), d.clone());
        tokio::pin!(job);
        tokio::select! {
            _ = &mut job => return,
            _ = shutdown.cancelled() => {}
        }
        shared.set_phase(WorkerPhase::Draining);
        let grace = self.config.timing.shutdown_grace;
        tracing::info!(
            grace_secs = grace.as_secs(),
            "shutdown requested; letting the running job finish"
        );
        if tokio::time::timeout(grace, &mut job).await.is_err() {
            tracing::warn!("the running job did not finish within the grace period; handing its lease back");
            match shared.queue.release(&d).await {
                Ok(()) => shared.metrics.job(Outcome::Released),
                Err(e) => tracing::error!(error = %e, "cannot hand the lease back; it will expire and be reclaimed"),
            }
        }
    }
}

impl Worker for SdxlWorker {
    fn kind(&self) -> &'static str {
        "sdxl"
    }

    async fn run(&self, shutdown: CancellationToken) -> Result<(), Error> {
        let shared = self.shared().await?;
        let addr = SocketAddr::new(self.config.bind, self.config.port);
        let http_stop = CancellationToken::new();
        let console = crate::console::routes(&shared, &self.config);
        let (bound, server) = http::serve(addr, shared.clone(), console, http_stop.clone()).await?;
        self.log_start(&shared, bound);
        let background = CancellationToken::new();
        let (loaded, reachable) = tokio::join!(
            self.load_model(&shared, &shutdown),
            self.wait_for_queue(&shared, &shutdown)
        );
        let notifier = tokio::spawn(shared.notifier.clone().run(background.clone()));
        if loaded? && reachable {
            let tasks = spawn_lease_tasks(&shared, &self.config, background.clone());
            shared.set_phase(WorkerPhase::Ready);
            self.job_loop(&shared, &shutdown).await;
            shared.set_phase(WorkerPhase::Draining);
            for t in tasks {
                t.abort();
            }
        }
        shared.set_phase(WorkerPhase::Draining);
        background.cancel();
        let _ = notifier.await;
        http_stop.cancel();
        let _ = server.await;
        shared.set_phase(WorkerPhase::Stopped);
        tracing::info!(worker.name = %shared.name, "worker stopped");
        Ok(())
    }
}

/// Sleeps `d`, or less if `shutdown` comes first.
async fn pause(d: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

/// The heartbeat and reclaim loops, stopped by `stop`.
fn spawn_lease_tasks(
    shared: &Arc<Shared>,
    config: &WorkerConfig,
    stop: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let (hb, rc) = (config.timing.heartbeat(), config.timing.reclaim_every());
    let heartbeat = every(hb, stop.clone(), shared.clone(), |s| async move {
        if let Err(e) = s.queue.heartbeat().await {
            tracing::warn!(error = %e, "lease heartbeat failed");
        }
    });
    let reclaim = every(rc, stop, shared.clone(), |s| async move {
        match s.queue.reclaim_expired().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(jobs = n, "reclaimed jobs whose worker stopped renewing its lease"),
            Err(e) => tracing::warn!(error = %e, "reclaiming expired leases failed"),
        }
    });
    vec![heartbeat, reclaim]
}

fn every<F, Fut>(period: Duration, stop: CancellationToken, shared: Arc<Shared>, f: F) -> tokio::task::JoinHandle<()>
where
    F: Fn(Arc<Shared>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => f(shared.clone()).await,
            }
        }
    })
}
