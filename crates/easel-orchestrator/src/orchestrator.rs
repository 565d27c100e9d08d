//! Why this exists: the whole of `easel up` as a library call, [`Orchestrator::run`],
//! with shutdown passed in as a token so tests and the binary drive it the same way.
//!
//! Flow: start the watchdog → listen for `/status` → log the GPUs found → preflight every
//! enabled worker (failures are recorded, not fatal) → event loop, a `select!` with one handler each:
//! - shutdown cancelled → leave the loop;
//! - a reloaded config → `Runner::on_reload` (stop removed and changed workers, preflight
//!   and queue added and changed ones);
//! - the worker at the head of the start order settled (ready, or given up) → start the next.
//!
//! Then stop every worker at once, each with its own grace, all within
//! `shutdown_timeout` (after which SIGKILL), stop the server, close the watchdog.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, WorkerSpec};
use crate::duration::Human;
use crate::error::{Chain, Error, Result};
use crate::launch;
use crate::output::{LineSink, StdioSink};
use crate::preflight;
use crate::state::WorkerState;
use crate::status::{Identity, OrchestratorReport, Snapshot, StatusReport, WorkerReport};
use crate::supervisor::{self, Command, Context};
use crate::watchdog::Watchdog;

/// After the shutdown timeout and SIGKILL, how long to wait for supervisors to finish.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Runs the orchestrator on `config` until `shutdown` is cancelled, then stops every
/// worker gracefully. Workers print through [`StdioSink`].
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<()> {
    Orchestrator::new(config).run(shutdown).await
}

/// An orchestrator before it runs: configure it, take a [`Handle`], then [`Orchestrator::run`].
pub struct Orchestrator {
    config: Config,
    sink: Arc<dyn LineSink>,
    shared: Arc<Shared>,
    reloads: mpsc::UnboundedReceiver<Config>,
    restarts: mpsc::UnboundedReceiver<String>,
    routes: Option<axum::Router>,
}

/// A cheap, cloneable view of a running orchestrator: status, reload, address.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

struct Shared {
    started: Instant,
    origin: Mutex<String>,
    view: RwLock<Vec<ViewEntry>>,
    listen: OnceLock<SocketAddr>,
    startup_done: AtomicBool,
    reloads: mpsc::UnboundedSender<Config>,
    restarts: mpsc::UnboundedSender<String>,
    force: CancellationToken,
}

struct ViewEntry {
    identity: Identity,
    status: watch::Receiver<Snapshot>,
}

impl Orchestrator {
    /// An orchestrator for `config`.
    pub fn new(config: Config) -> Self {
        let (reloads_tx, reloads) = mpsc::unbounded_channel();
        let (restarts_tx, restarts) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            started: Instant::now(),
            origin: Mutex::new(config.origin.to_string()),
            view: RwLock::new(Vec::new()),
            listen: OnceLock::new(),
            startup_done: AtomicBool::new(false),
            reloads: reloads_tx,
            restarts: restarts_tx,
            force: CancellationToken::new(),
        });
        Self {
            config,
            sink: Arc::new(StdioSink),
            shared,
            reloads,
            restarts,
            routes: None,
        }
    }

    /// Sends workers' output lines to `sink` instead of stdout/stderr.
    pub fn with_output(mut self, sink: Arc<dyn LineSink>) -> Self {
        self.sink = sink;
        self
    }

    /// Serves `routes` (a console, say) beside `/status` on the status address.
    pub fn with_routes(mut self, routes: axum::Router) -> Self {
        self.routes = Some(routes);
        self
    }

    /// The config it was created with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A handle that stays valid while and after it runs.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Runs until `shutdown` is cancelled, then stops every worker; `Ok` after a clean stop.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let watchdog = Arc::new(Watchdog::start().map_err(Error::Watchdog)?);
        let listen = self.config.orchestrator.listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|cause| Error::Listen { addr: listen, cause })?;
        let addr = listener
            .local_addr()
            .map_err(|cause| Error::Listen { addr: listen, cause })?;
        let _ = self.shared.listen.set(addr);
        let server_stop = CancellationToken::new();
        let handle = self.handle();
        let source: crate::server::StatusSource = std::sync::Arc::new(move || handle.status());
        let routes = self.routes.unwrap_or_default();
        let server = tokio::spawn(crate::server::serve(listener, source, routes, server_stop.clone()));
        tracing::info!("orchestrator listening on http://{addr} (/status, /metrics, /livez, /readyz)");
        tracing::info!("gpus: {}", preflight::gpu_summary());

        let mut runner = Runner::new(self.config, self.sink, Arc::clone(&watchdog), Arc::clone(&self.shared));
        let workers: Vec<WorkerSpec> = runner.config.start_order().into_iter().cloned().collect();
        tokio::select! {
            () = runner.admit(workers) => runner.event_loop(self.reloads, self.restarts, &shutdown).await,
            () = shutdown.cancelled() => {}
        }
        runner.stop_all().await;

        server_stop.cancel();
        let _ = server.await;
        watchdog.close();
        tracing::info!("orchestrator stopped");
        Ok(())
    }
}

impl Handle {
    /// The status of every worker now.
    pub fn status(&self) -> StatusReport {
        let now = Instant::now();
        let view = self.shared.view.read().unwrap_or_else(|p| p.into_inner());
        let workers: Vec<WorkerReport> = view
            .iter()
            .map(|e| WorkerReport::new(&e.identity, &e.status.borrow(), now))
            .collect();
        let ready =
            self.shared.startup_done.load(Ordering::SeqCst) && workers.iter().all(|w| w.state == WorkerState::Running);
        StatusReport {
            orchestrator: OrchestratorReport {
                pid: std::process::id(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                uptime_s: (self.shared.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
                config: self.shared.origin.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                ready,
            },
            workers,
        }
    }

    /// Applies a new config: start added workers, stop removed ones, restart changed ones.
    pub fn reload(&self, config: Config) {
        let _ = self.shared.reloads.send(config);
    }

    /// Stops worker `name` and starts it again (its restart history starts afresh); `Err`
    /// when no worker has that name or the orchestrator no longer runs.
    pub fn restart(&self, name: &str) -> std::result::Result<(), String> {
        let known = {
            let view = self.shared.view.read().unwrap_or_else(|p| p.into_inner());
            view.iter().any(|e| e.identity.name == name)
        };
        if !known {
            return Err(format!("no worker is named {name:?}"));
        }
        self.shared
            .restarts
            .send(name.to_owned())
            .map_err(|_| "the orchestrator is not running".to_owned())
    }

    /// Where `/status` listens, once the orchestrator runs.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.shared.listen.get().copied()
    }

    /// During a shutdown: stop waiting for graceful exits and SIGKILL every worker now.
    pub fn force_stop(&self) {
        self.shared.force.cancel();
    }
}

/// One configured worker inside the loop.
struct Entry {
    config: WorkerSpec,
    identity: Identity,
    status: watch::Receiver<Snapshot>,
    /// Until its supervisor starts, the orchestrator holds the sender.
    unstarted: Option<watch::Sender<Snapshot>>,
    supervisor: Option<supervisor::Handle>,
}

impl Entry {
    fn new(config: WorkerSpec, worker_bin: &std::path::Path) -> Self {
        let (program, args) = launch::run_line(&config, worker_bin);
        let identity = Identity {
            name: config.name.clone(),
            kind: config.kind_label().to_owned(),
            command: launch::display_line(&program, &args),
            port: config.port,
            priority: config.priority,
        };
        let (tx, status) = watch::channel(Snapshot::new(WorkerState::Pending, None));
        Self {
            config,
            identity,
            status,
            unstarted: Some(tx),
            supervisor: None,
        }
    }

    fn state(&self) -> WorkerState {
        self.status.borrow().state
    }
}

/// The event loop's state.
struct Runner {
    config: Config,
    ctx: Arc<Context>,
    shared: Arc<Shared>,
    entries: Vec<Entry>,
    queue: VecDeque<String>,
    gate: Option<(String, watch::Receiver<Snapshot>)>,
}

impl Runner {
    fn new(config: Config, sink: Arc<dyn LineSink>, watchdog: Arc<Watchdog>, shared: Arc<Shared>) -> Self {
        let ctx = Arc::new(Context {
            sink,
            watchdog,
            launcher: launch::Launcher::for_config(&config),
        });
        Self {
            config,
            ctx,
            shared,
            entries: Vec::new(),
            queue: VecDeque::new(),
            gate: None,
        }
    }

    async fn event_loop(
        &mut self,
        mut reloads: mpsc::UnboundedReceiver<Config>,
        mut restarts: mpsc::UnboundedReceiver<String>,
        shutdown: &CancellationToken,
    ) {
        loop {
            self.start_next();
            tokio::select! {
                () = shutdown.cancelled() => return,
                Some(config) = reloads.recv() => self.on_reload(config).await,
                Some(name) = restarts.recv() => self.on_restart(&name).await,
                () = settled(&mut self.gate) => self.gate = None,
            }
        }
    }

    /// Lists `workers` (pending), preflights each, and queues those that pass.
    async fn admit(&mut self, workers: Vec<WorkerSpec>) {
        let timeout = self.config.orchestrator.preflight_timeout;
        for worker in &workers {
            self.entries
                .push(Entry::new(worker.clone(), &self.ctx.launcher.worker_bin));
        }
        self.order();
        for worker in workers {
            let verdict = preflight::check(&worker, &self.ctx.launcher, timeout).await;
            let Some(entry) = self.entries.iter_mut().find(|e| e.config.name == worker.name) else {
                continue;
            };
            match verdict {
                Ok(()) => {
                    tracing::info!(worker.name = %worker.name, "preflight passed");
                    self.queue.push_back(worker.name.clone());
                }
                Err(error) => {
                    let reason = Chain(error);
                    tracing::error!(worker.name = %worker.name, "preflight failed, not starting it: {reason}");
                    let failed = Snapshot::new(WorkerState::PreflightFailed, Some(format!("preflight: {reason}")));
                    if let Some(status) = entry.unstarted.take() {
                        status.send_replace(failed);
                    }
                }
            }
        }
        self.order();
    }

    /// Starts queued workers while none is waiting to become ready.
    fn start_next(&mut self) {
        while self.gate.is_none() {
            let Some(name) = self.queue.pop_front() else {
                self.shared.startup_done.store(true, Ordering::SeqCst);
                return;
            };
            self.shared.startup_done.store(false, Ordering::SeqCst);
            let Some(entry) = self.entries.iter_mut().find(|e| e.config.name == name) else {
                continue;
            };
            let Some(status) = entry.unstarted.take() else {
                continue;
            };
            entry.supervisor = Some(supervisor::spawn(entry.config.clone(), Arc::clone(&self.ctx), status));
            self.gate = Some((name, entry.status.clone()));
        }
    }

    async fn on_reload(&mut self, new: Config) {
        tracing::info!("reloading the config from {}", new.origin);
        if new.orchestrator.listen != self.config.orchestrator.listen {
            tracing::warn!("[orchestrator] listen changed: it takes effect when `easel up` restarts");
        }
        let wanted: Vec<WorkerSpec> = new.start_order().into_iter().cloned().collect();
        let launch_changed =
            launch::Launcher::for_config(&new) != self.ctx.launcher || new.worker_runtime != self.config.worker_runtime;
        let mut stop = Vec::new();
        let mut admit = Vec::new();
        for entry in &self.entries {
            let builtin_changed = launch_changed && entry.config.kind.is_some();
            match wanted.iter().find(|w| w.name == entry.config.name) {
                None => stop.push(entry.config.name.clone()),
                Some(w) if *w != entry.config || builtin_changed || retry_on_reload(entry.state()) => {
                    stop.push(entry.config.name.clone());
                    admit.push(w.clone());
                }
                Some(_) => {}
            }
        }
        admit.extend(
            wanted
                .iter()
                .filter(|w| !self.entries.iter().any(|e| e.config.name == w.name))
                .cloned(),
        );
        tracing::info!(
            "reload: stopping [{}], starting [{}]",
            stop.join(", "),
            names(&admit).join(", ")
        );
        self.remove(&stop).await;
        self.config = new;
        *self.shared.origin.lock().unwrap_or_else(|p| p.into_inner()) = self.config.origin.to_string();
        self.ctx = Arc::new(Context {
            sink: Arc::clone(&self.ctx.sink),
            watchdog: Arc::clone(&self.ctx.watchdog),
            launcher: launch::Launcher::for_config(&self.config),
        });
        self.admit(admit).await;
    }

    /// Stops worker `name` (with its stop grace) and admits it again, preflight first.
    async fn on_restart(&mut self, name: &str) {
        let Some(spec) = self
            .entries
            .iter()
            .find(|e| e.config.name == name)
            .map(|e| e.config.clone())
        else {
            return;
        };
        tracing::info!(worker.name = %name, "restarting on request");
        self.remove(&[name.to_owned()]).await;
        self.admit(vec![spec]).await;
    }

    /// Stops the named workers and forgets them.
    async fn remove(&mut self, names: &[String]) {
        let handles: Vec<supervisor::Handle> = self
            .entries
            .iter_mut()
            .filter(|e| names.contains(&e.config.name))
            .filter_map(|e| e.supervisor.take())
            .collect();
        stop_supervisors(handles, self.config.orchestrator.shutdown_timeout, &self.shared.force).await;
        self.entries.retain(|e| !names.contains(&e.config.name));
        self.queue.retain(|n| !names.contains(n));
        if self.gate.as_ref().is_some_and(|(n, _)| names.contains(n)) {
            self.gate = None;
        }
        self.publish_view();
    }

    /// Stops everything (shutdown).
    async fn stop_all(&mut self) {
        self.queue.clear();
        for entry in &mut self.entries {
            if let Some(tx) = entry.unstarted.take() {
                if entry.state() == WorkerState::Pending {
                    tx.send_replace(Snapshot::new(
                        WorkerState::Stopped,
                        Some("not started: shutting down".into()),
                    ));
                }
            }
        }
        let handles: Vec<supervisor::Handle> = self.entries.iter_mut().filter_map(|e| e.supervisor.take()).collect();
        let timeout = self.config.orchestrator.shutdown_timeout;
        tracing::info!(
            "stopping {} worker(s), allowing up to {}",
            handles.len(),
            Human(timeout)
        );
        stop_supervisors(handles, timeout, &self.shared.force).await;
    }

    /// Entries in start order (priority, then config file order).
    fn order(&mut self) {
        let position = |name: &str| {
            self.config
                .workers
                .iter()
                .position(|w| w.name == name)
                .unwrap_or(usize::MAX)
        };
        let mut keyed: Vec<(i64, usize, Entry)> = self
            .entries
            .drain(..)
            .map(|e| (e.config.priority, position(&e.config.name), e))
            .collect();
        keyed.sort_by_key(|(priority, index, _)| (*priority, *index));
        self.entries = keyed.into_iter().map(|(_, _, e)| e).collect();
        let mut queue: Vec<String> = self.queue.drain(..).collect();
        queue.sort_by_key(|n| {
            let entry = self.entries.iter().position(|e| &e.config.name == n);
            entry.unwrap_or(usize::MAX)
        });
        self.queue = queue.into();
        self.publish_view();
    }

    fn publish_view(&self) {
        let view = self
            .entries
            .iter()
            .map(|e| ViewEntry {
                identity: e.identity.clone(),
                status: e.status.clone(),
            })
            .collect();
        *self.shared.view.write().unwrap_or_else(|p| p.into_inner()) = view;
    }
}

/// A SIGHUP also gives another chance to workers that were given up on or left stopped.
fn retry_on_reload(state: WorkerState) -> bool {
    state.is_terminal()
}

fn names(workers: &[WorkerSpec]) -> Vec<String> {
    workers.iter().map(|w| w.name.clone()).collect()
}

/// Resolves when the worker at the head of the start order is settled (never if none).
async fn settled(gate: &mut Option<(String, watch::Receiver<Snapshot>)>) {
    match gate {
        Some((_, status)) => {
            let _ = status.wait_for(|s| s.state.is_settled()).await;
        }
        None => std::future::pending().await,
    }
}

/// Stops supervisors together: each gets its own stop grace, all together `timeout`;
/// then (or at once on `force`) SIGKILL.
async fn stop_supervisors(mut handles: Vec<supervisor::Handle>, timeout: Duration, force: &CancellationToken) {
    for handle in &handles {
        let _ = handle.commands.send(Command::Stop);
    }
    let graceful = tokio::select! {
        finished = tokio::time::timeout(timeout, join_all(&mut handles)) => finished.is_ok(),
        () = force.cancelled() => false,
    };
    if graceful {
        return;
    }
    tracing::warn!("workers still running after {} (or forced): SIGKILL", Human(timeout));
    for handle in &handles {
        let _ = handle.commands.send(Command::Kill);
    }
    if tokio::time::timeout(KILL_WAIT, join_all(&mut handles)).await.is_err() {
        tracing::error!("some supervisors did not finish within {} of SIGKILL", Human(KILL_WAIT));
    }
}

async fn join_all(handles: &mut [supervisor::Handle]) {
    for handle in handles {
        // A JoinHandle must not be polled again once it has completed.
        if !handle.task.is_finished() {
            let _ = (&mut handle.task).await;
        }
    }
}
