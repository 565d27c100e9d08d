//! Why this exists: what the orchestrator tells the outside about its workers, in one
//! shape for `/status` (JSON), `/metrics` (Prometheus text) and `easel status` (a table).
//! Supervisors publish a `Snapshot` (with monotonic instants) after every change; a
//! report turns snapshots into plain numbers at the moment it is asked for.

use std::fmt::Write as _;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::restart::ExitInfo;
use crate::state::WorkerState;

/// The answer of `GET /status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The orchestrator itself.
    pub orchestrator: OrchestratorReport,
    /// Every configured worker, in start order.
    pub workers: Vec<WorkerReport>,
}

/// The orchestrator's own line of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrchestratorReport {
    /// Its process id.
    pub pid: u32,
    /// Easel's version.
    pub version: String,
    /// Seconds since it started.
    pub uptime_s: f64,
    /// Where its config came from.
    pub config: String,
    /// Start order finished and every worker running (what `/readyz` answers).
    pub ready: bool,
}

/// One worker's line of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerReport {
    /// Its name.
    pub name: String,
    /// A built-in kind, or `external`.
    pub kind: String,
    /// The command line it runs.
    pub command: String,
    /// Lifecycle state.
    pub state: WorkerState,
    /// Process id (= process group id) of the running process.
    pub pid: Option<u32>,
    /// Its port, if any.
    pub port: Option<u16>,
    /// Start order.
    pub priority: i64,
    /// Seconds since the current process started.
    pub uptime_s: Option<f64>,
    /// Restarts so far.
    pub restarts: u32,
    /// How the last process ended.
    pub last_exit: Option<LastExit>,
    /// Why it is in its state (failures, FATAL, preflight), if there is a story.
    pub reason: Option<String>,
    /// Seconds until the next start attempt (in backoff).
    pub next_start_in_s: Option<f64>,
}

/// How a worker's last process ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastExit {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Killing signal, if one did.
    pub signal: Option<i32>,
    /// The same as a sentence.
    pub description: String,
    /// When, in Unix seconds.
    pub at_unix: f64,
}

/// What a supervisor publishes after every change.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub state: WorkerState,
    pub pid: Option<u32>,
    pub since: Option<Instant>,
    pub restarts: u32,
    pub last_exit: Option<(ExitInfo, SystemTime)>,
    pub reason: Option<String>,
    pub next_start: Option<Instant>,
}

impl Snapshot {
    pub(crate) fn new(state: WorkerState, reason: Option<String>) -> Self {
        Self {
            state,
            pid: None,
            since: None,
            restarts: 0,
            last_exit: None,
            reason,
            next_start: None,
        }
    }
}

/// The config facts a report shows beside a snapshot.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub name: String,
    pub kind: String,
    pub command: String,
    pub port: Option<u16>,
    pub priority: i64,
}

impl WorkerReport {
    pub(crate) fn new(identity: &Identity, snapshot: &Snapshot, now: Instant) -> Self {
        Self {
            name: identity.name.clone(),
            kind: identity.kind.clone(),
            command: identity.command.clone(),
            state: snapshot.state,
            pid: snapshot.pid,
            port: identity.port,
            priority: identity.priority,
            uptime_s: snapshot
                .since
                .map(|t| round_ms(now.saturating_duration_since(t).as_secs_f64())),
            restarts: snapshot.restarts,
            last_exit: snapshot.last_exit.map(|(exit, at)| LastExit {
                code: exit.code,
                signal: exit.signal,
                description: exit.to_string(),
                at_unix: round_ms(at.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)),
            }),
            reason: snapshot.reason.clone(),
            next_start_in_s: snapshot
                .next_start
                .map(|t| round_ms(t.saturating_duration_since(now).as_secs_f64())),
        }
    }
}

fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// Renders the report as Prometheus text (exposition format 0.0.4).
pub fn render_metrics(report: &StatusReport) -> String {
    let mut out = String::new();
    let o = &report.orchestrator;
    metric(
        &mut out,
        "easel_orchestrator_uptime_seconds",
        "gauge",
        "Seconds since the orchestrator started.",
    );
    let _ = writeln!(out, "easel_orchestrator_uptime_seconds {}", o.uptime_s);
    metric(
        &mut out,
        "easel_orchestrator_ready",
        "gauge",
        "1 when every worker is running.",
    );
    let _ = writeln!(out, "easel_orchestrator_ready {}", u8::from(o.ready));
    metric(
        &mut out,
        "easel_worker_up",
        "gauge",
        "1 when the worker is running (ready).",
    );
    for w in &report.workers {
        let _ = writeln!(
            out,
            "easel_worker_up{{worker=\"{}\"}} {}",
            w.name,
            u8::from(w.state == WorkerState::Running)
        );
    }
    metric(
        &mut out,
        "easel_worker_state",
        "gauge",
        "1 for the worker's current lifecycle state.",
    );
    for w in &report.workers {
        for state in WorkerState::ALL {
            let _ = writeln!(
                out,
                "easel_worker_state{{worker=\"{}\",state=\"{state}\"}} {}",
                w.name,
                u8::from(w.state == state)
            );
        }
    }
    metric(
        &mut out,
        "easel_worker_restarts_total",
        "counter",
        "Restarts of the worker.",
    );
    for w in &report.workers {
        let _ = writeln!(
            out,
            "easel_worker_restarts_total{{worker=\"{}\"}} {}",
            w.name, w.restarts
        );
    }
    metric(
        &mut out,
        "easel_worker_uptime_seconds",
        "gauge",
        "Seconds since the worker's process started.",
    );
    for w in &report.workers {
        let _ = writeln!(
            out,
            "easel_worker_uptime_seconds{{worker=\"{}\"}} {}",
            w.name,
            w.uptime_s.unwrap_or(0.0)
        );
    }
    out
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn identity() -> Identity {
        Identity {
            name: "sdxl".into(),
            kind: "sdxl".into(),
            command: "easel worker sdxl run".into(),
            port: Some(7859),
            priority: 1,
        }
    }

    #[test]
    fn a_report_turns_instants_into_seconds() {
        let now = Instant::now();
        let snapshot = Snapshot {
            state: WorkerState::Backoff,
            pid: None,
            since: None,
            restarts: 2,
            last_exit: Some((
                ExitInfo {
                    code: Some(1),
                    signal: None,
                },
                UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            )),
            reason: Some("exited with code 1; restarting in 2s".into()),
            next_start: Some(now + Duration::from_millis(1500)),
        };
        let report = WorkerReport::new(&identity(), &snapshot, now);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "sdxl", "kind": "sdxl", "command": "easel worker sdxl run", "state": "backoff",
                "pid": null, "port": 7859, "priority": 1, "uptime_s": null, "restarts": 2,
                "last_exit": {"code": 1, "signal": null, "description": "exited with code 1", "at_unix": 1.7e9},
                "reason": "exited with code 1; restarting in 2s", "next_start_in_s": 1.5
            })
        );
    }

    #[test]
    fn metrics_have_one_sample_per_worker_and_state() {
        let now = Instant::now();
        let mut snapshot = Snapshot::new(WorkerState::Running, None);
        snapshot.since = Some(now);
        snapshot.restarts = 3;
        let report = StatusReport {
            orchestrator: OrchestratorReport {
                pid: 1,
                version: "0".into(),
                uptime_s: 5.0,
                config: "x".into(),
                ready: true,
            },
            workers: vec![WorkerReport::new(&identity(), &snapshot, now)],
        };
        let text = render_metrics(&report);
        assert!(text.contains("easel_worker_up{worker=\"sdxl\"} 1\n"), "{text}");
        assert!(text.contains("easel_worker_state{worker=\"sdxl\",state=\"running\"} 1\n"));
        assert!(text.contains("easel_worker_state{worker=\"sdxl\",state=\"fatal\"} 0\n"));
        assert!(text.contains("easel_worker_restarts_total{worker=\"sdxl\"} 3\n"));
        assert!(text.contains("# TYPE easel_worker_restarts_total counter\n"));
        assert!(text.contains("easel_orchestrator_ready 1\n"));
    }
}
