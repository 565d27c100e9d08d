//! Why this exists: one task per worker, the single authority that starts, restarts and
//! stops it, so that two copies of a worker can never run (the Python orchestrator had
//! two threads restarting the same worker).
//!
//! Flow: an event loop `select!`s over three sources and dispatches each to one handler:
//! - commands from the orchestrator (`Stop`, `Kill`) → [`Supervisor::on_command`];
//! - events from the current process attempt (its exit, its readiness) → [`Supervisor::on_event`];
//! - its single timer (start deadline, stable period, backoff, stop polling) → [`Supervisor::on_timer`].
//!
//! Every state change goes through [`crate::state::transition`]. Invariants: at most one
//! process attempt at a time, and a new one is spawned only when the previous process
//! group has no live member left; an attempt's events carry its generation, so a late
//! event from an old attempt is ignored.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::WorkerSpec;
use crate::duration::Human;
use crate::launch::{self, Launcher};
use crate::output::{self, LineSink, Stream, Tail};
use crate::process::{self, GroupSignal, SpawnError};
use crate::readiness;
use crate::restart::{ExitInfo, Failure, RestartTracker, Verdict};
use crate::state::{transition, WorkerState};
use crate::status::Snapshot;
use crate::watchdog::Watchdog;

/// While stopping, how often the process group is checked for survivors.
const STOP_POLL: Duration = Duration::from_millis(50);
/// After SIGKILL, how long to wait for the group to vanish before reporting it stuck
/// (only a process in uninterruptible sleep survives SIGKILL this long).
const KILL_WAIT: Duration = Duration::from_secs(5);

/// What the orchestrator asks of a supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    /// SIGTERM, the stop grace, then SIGKILL; the task ends when the group is gone.
    Stop,
    /// SIGKILL now (shutdown time is up).
    Kill,
}

/// What the running attempt reports.
#[derive(Debug)]
enum Event {
    Exited { generation: u64, exit: ExitInfo },
    Ready { generation: u64 },
}

/// What the single timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    StartDeadline,
    Stable,
    Backoff,
    StopPoll,
}

/// What all supervisors share.
pub(crate) struct Context {
    pub sink: Arc<dyn LineSink>,
    pub watchdog: Arc<Watchdog>,
    pub launcher: Launcher,
}

/// The orchestrator's side of a running supervisor.
#[derive(Debug)]
pub(crate) struct Handle {
    pub commands: mpsc::UnboundedSender<Command>,
    pub task: JoinHandle<()>,
}

/// One process of the worker, from spawn until its group is gone.
#[derive(Debug)]
struct Attempt {
    generation: u64,
    pgid: u32,
    leader_exited: bool,
    prober: JoinHandle<()>,
}

/// The SIGTERM → grace → SIGKILL schedule of a stop (or the reaping of leftovers).
#[derive(Debug, Clone, Copy)]
struct StopPlan {
    kill_at: Instant,
    killed_at: Option<Instant>,
}

/// Starts the supervisor of `config`; it publishes every change on `status`.
pub(crate) fn spawn(config: WorkerSpec, ctx: Arc<Context>, status: watch::Sender<Snapshot>) -> Handle {
    let (commands, command_rx) = mpsc::unbounded_channel();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let snapshot = status.borrow().clone();
    let supervisor = Supervisor {
        name: Arc::from(config.name.as_str()),
        tracker: RestartTracker::new(config.restart.clone()),
        snapshot,
        config,
        ctx,
        state: WorkerState::Pending,
        tail: Arc::new(Tail::default()),
        attempt: None,
        generation: 0,
        timer: None,
        stop: None,
        events_tx,
        status,
    };
    let task = tokio::spawn(supervisor.run(command_rx, events_rx));
    Handle { commands, task }
}

struct Supervisor {
    config: WorkerSpec,
    name: Arc<str>,
    ctx: Arc<Context>,
    state: WorkerState,
    tracker: RestartTracker,
    tail: Arc<Tail>,
    attempt: Option<Attempt>,
    generation: u64,
    timer: Option<(Instant, Timer)>,
    stop: Option<StopPlan>,
    events_tx: mpsc::UnboundedSender<Event>,
    status: watch::Sender<Snapshot>,
    snapshot: Snapshot,
}

impl Supervisor {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>, mut events: mpsc::UnboundedReceiver<Event>) {
        let mut commands_open = true;
        self.start_attempt();
        self.publish();
        while !self.finished() {
            let deadline = self.timer.map(|(at, _)| at);
            tokio::select! {
                command = commands.recv(), if commands_open => {
                    commands_open = command.is_some();
                    // The orchestrator is gone: nobody may be left running.
                    self.on_command(command.unwrap_or(Command::Stop));
                }
                Some(event) = events.recv() => self.on_event(event),
                () = sleep_until(deadline) => self.on_timer(),
            }
            self.publish();
        }
        tracing::debug!(worker.name = %self.name, state = %self.state, "supervisor done");
    }

    fn finished(&self) -> bool {
        self.state.is_terminal() && self.attempt.is_none()
    }

    fn on_command(&mut self, command: Command) {
        match (command, self.state) {
            (_, WorkerState::Pending | WorkerState::Backoff) => {
                self.set_state(WorkerState::Stopped);
                self.snapshot.next_start = None;
                self.snapshot.reason = Some("stopped before it was started".to_owned());
                self.reap_leftovers();
            }
            (_, WorkerState::Starting | WorkerState::Running) => self.begin_stop(),
            _ => {}
        }
        if command == Command::Kill {
            self.kill_now();
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Exited { generation, exit } => self.on_exit(generation, exit),
            Event::Ready { generation } => self.on_ready(generation),
        }
    }

    fn on_timer(&mut self) {
        let Some((_, timer)) = self.timer.take() else {
            return;
        };
        match (timer, self.state) {
            (Timer::StartDeadline, WorkerState::Starting) => {
                self.signal(GroupSignal::KILL);
                self.fail(Failure::NotReady(self.config.start_timeout));
            }
            (Timer::Stable, WorkerState::Running) => {
                tracing::debug!(worker.name = %self.name, "stable: restart delay reset");
                self.tracker.on_stable();
            }
            (Timer::Backoff, WorkerState::Backoff) => self.restart_when_gone(),
            (Timer::StopPoll, _) => self.poll_stop(),
            _ => {}
        }
    }

    /// Spawns a new process attempt (from Pending or Backoff).
    fn start_attempt(&mut self) {
        debug_assert!(self.attempt.is_none(), "a second process of {} would run", self.name);
        if self.generation > 0 {
            self.snapshot.restarts += 1;
        }
        self.generation += 1;
        self.set_state(WorkerState::Starting);
        self.snapshot.next_start = None;
        self.tail = Arc::new(Tail::default());
        if let Some(port) = self.config.port.filter(|p| process::port_in_use(*p)) {
            return self.fail(Failure::PortBusy(port));
        }
        let (program, args) = launch::run_line(&self.config, &self.ctx.launcher.worker_bin);
        let mut cmd = launch::run_command(&self.config, &self.ctx.launcher);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(source) => return self.fail(Failure::SpawnFailed(SpawnError::Exec { program, source })),
        };
        let Some(pgid) = child.id() else {
            return self.fail(Failure::SpawnFailed(SpawnError::Vanished { program }));
        };
        self.ctx.watchdog.guard(pgid, self.config.stop_grace);
        self.pump_output(&mut child);
        self.watch_exit(child);
        let ready_tx = self.events_tx.clone();
        let generation = self.generation;
        let prober = readiness::spawn_prober(&self.config, move || {
            let _ = ready_tx.send(Event::Ready { generation });
        });
        self.attempt = Some(Attempt {
            generation,
            pgid,
            leader_exited: false,
            prober,
        });
        self.snapshot.pid = Some(pgid);
        self.snapshot.since = Some(Instant::now());
        self.timer = Some((Instant::now() + self.config.start_timeout, Timer::StartDeadline));
        tracing::info!(worker.name = %self.name, pid = pgid, "started: {}", launch::display_line(&program, &args));
    }

    fn pump_output(&self, child: &mut tokio::process::Child) {
        let sink = || Arc::clone(&self.ctx.sink);
        if let Some(out) = child.stdout.take() {
            output::pump(
                out,
                Arc::clone(&self.name),
                Stream::Stdout,
                sink(),
                Arc::clone(&self.tail),
            );
        }
        if let Some(err) = child.stderr.take() {
            output::pump(
                err,
                Arc::clone(&self.name),
                Stream::Stderr,
                sink(),
                Arc::clone(&self.tail),
            );
        }
    }

    fn watch_exit(&self, mut child: tokio::process::Child) {
        let events = self.events_tx.clone();
        let generation = self.generation;
        tokio::spawn(async move {
            let exit = match child.wait().await {
                Ok(status) => ExitInfo::from_status(status),
                Err(_) => ExitInfo {
                    code: None,
                    signal: None,
                },
            };
            let _ = events.send(Event::Exited { generation, exit });
        });
    }

    fn on_ready(&mut self, generation: u64) {
        let current = self.attempt.as_ref().is_some_and(|a| a.generation == generation);
        if !current || self.state != WorkerState::Starting {
            return;
        }
        self.set_state(WorkerState::Running);
        self.snapshot.reason = None;
        self.timer = Some((Instant::now() + self.config.restart.stable_after, Timer::Stable));
        let took = self.snapshot.since.map(|t| t.elapsed()).unwrap_or_default();
        tracing::info!(worker.name = %self.name, "ready after {:.1}s", took.as_secs_f64());
    }

    fn on_exit(&mut self, generation: u64, exit: ExitInfo) {
        let Some(attempt) = self.attempt.as_mut().filter(|a| a.generation == generation) else {
            return;
        };
        attempt.leader_exited = true;
        attempt.prober.abort();
        self.snapshot.pid = None;
        self.snapshot.since = None;
        self.snapshot.last_exit = Some((exit, SystemTime::now()));
        match self.state {
            WorkerState::Stopping => {
                tracing::info!(worker.name = %self.name, "{exit} after stop request");
                self.poll_stop();
            }
            WorkerState::Starting | WorkerState::Running => {
                // Whatever it spawned must not outlive it: never a duplicate consumer.
                self.signal(GroupSignal::KILL);
                self.fail(Failure::Exited(exit));
            }
            _ => self.signal(GroupSignal::KILL),
        }
    }

    /// Asks the restart authority what follows `failure`, and does it.
    fn fail(&mut self, failure: Failure) {
        let verdict = self.tracker.on_failure(&failure, Instant::now(), rand::random());
        let quote = self.tail.quote();
        match verdict {
            Verdict::Restart { delay } => {
                self.set_state(WorkerState::Backoff);
                let reason = format!("{failure}{quote}; restarting in {}", Human(delay));
                tracing::warn!(worker.name = %self.name, "{reason}");
                self.snapshot.reason = Some(reason);
                self.snapshot.next_start = Some(Instant::now() + delay);
                self.timer = Some((Instant::now() + delay, Timer::Backoff));
            }
            Verdict::Fatal { reason } => {
                self.set_state(WorkerState::Fatal);
                let reason = format!("{reason}{quote}");
                tracing::error!(worker.name = %self.name, "FATAL: {reason}");
                self.snapshot.reason = Some(reason);
                self.reap_leftovers();
            }
            Verdict::Leave { reason } => {
                self.set_state(WorkerState::Stopped);
                tracing::info!(worker.name = %self.name, "{reason}");
                self.snapshot.reason = Some(reason);
                self.reap_leftovers();
            }
        }
    }

    /// Backoff is over: start again, but only once the old group has no live member.
    fn restart_when_gone(&mut self) {
        if self.group_gone() {
            return self.start_attempt();
        }
        self.signal(GroupSignal::KILL);
        self.timer = Some((Instant::now() + STOP_POLL, Timer::Backoff));
    }

    fn begin_stop(&mut self) {
        self.set_state(WorkerState::Stopping);
        if let Some(attempt) = &self.attempt {
            attempt.prober.abort();
        }
        self.signal(GroupSignal::TERM);
        let grace = self.config.stop_grace;
        tracing::info!(worker.name = %self.name, "stopping: SIGTERM sent, SIGKILL after {}", Human(grace));
        self.stop = Some(StopPlan {
            kill_at: Instant::now() + grace,
            killed_at: None,
        });
        self.timer = Some((Instant::now() + STOP_POLL, Timer::StopPoll));
    }

    /// After a terminal verdict, a process may still be exiting: kill and wait it out.
    fn reap_leftovers(&mut self) {
        if self.attempt.is_some() {
            self.stop = Some(StopPlan {
                kill_at: Instant::now(),
                killed_at: None,
            });
            self.timer = Some((Instant::now(), Timer::StopPoll));
        }
    }

    fn kill_now(&mut self) {
        if let Some(plan) = &mut self.stop {
            plan.kill_at = Instant::now();
            self.timer = Some((Instant::now(), Timer::StopPoll));
        }
    }

    /// One step of a stop: done if the group is gone, SIGKILL when the grace is over,
    /// give up (loudly) if SIGKILL did not work within [`KILL_WAIT`].
    fn poll_stop(&mut self) {
        let Some(mut plan) = self.stop else {
            return;
        };
        let now = Instant::now();
        let stuck = plan.killed_at.is_some_and(|t| now >= t + KILL_WAIT);
        if self.group_gone() || stuck {
            if stuck {
                if let Some(attempt) = self.attempt.take() {
                    tracing::error!(worker.name = %self.name, "process group {} survived SIGKILL for {}; giving up on it", attempt.pgid, Human(KILL_WAIT));
                    self.ctx.watchdog.release(attempt.pgid);
                }
            }
            return self.finish_stop();
        }
        if plan.killed_at.is_none() && now >= plan.kill_at {
            if self.state == WorkerState::Stopping {
                tracing::warn!(worker.name = %self.name, "did not stop within stop_grace ({}): SIGKILL", Human(self.config.stop_grace));
            }
            self.signal(GroupSignal::KILL);
            plan.killed_at = Some(now);
        }
        let next = if plan.killed_at.is_none() {
            (now + STOP_POLL).min(plan.kill_at)
        } else {
            now + STOP_POLL
        };
        self.stop = Some(plan);
        self.timer = Some((next, Timer::StopPoll));
    }

    fn finish_stop(&mut self) {
        self.stop = None;
        self.timer = None;
        if self.state == WorkerState::Stopping {
            self.set_state(WorkerState::Stopped);
            self.snapshot.reason = None;
            tracing::info!(worker.name = %self.name, "stopped");
        }
    }

    /// True (and the attempt forgotten) when its leader exited and no member is left.
    fn group_gone(&mut self) -> bool {
        let Some(attempt) = &self.attempt else {
            return true;
        };
        if !attempt.leader_exited || process::group_alive(attempt.pgid) {
            return false;
        }
        self.ctx.watchdog.release(attempt.pgid);
        self.attempt = None;
        true
    }

    fn signal(&self, signal: GroupSignal) {
        let Some(attempt) = &self.attempt else {
            return;
        };
        if let Err(e) = process::signal_group(attempt.pgid, signal) {
            tracing::error!(worker.name = %self.name, "cannot signal process group {}: {e}", attempt.pgid);
        }
    }

    /// The only place the state changes; an illegal move is a bug, reported and refused.
    fn set_state(&mut self, to: WorkerState) {
        match transition(self.state, to) {
            Ok(state) => {
                self.state = state;
                self.snapshot.state = state;
            }
            Err(illegal) => {
                tracing::error!(worker.name = %self.name, "{illegal} refused (a bug: please report it)");
                debug_assert!(false, "{illegal}");
            }
        }
    }

    fn publish(&self) {
        self.status.send_replace(self.snapshot.clone());
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
