//! Why this exists: one `[[workers]]` entry — how a supervised worker is launched, probed
//! for readiness and stopped — and the checks serde cannot make on it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::gpu_key::{self, GpuSelection, GpuSlot};
use super::restart::RestartConfig;
use crate::duration;

/// The built-in kinds that `easel worker <kind>` knows.
pub const BUILTIN_KINDS: &[&str] = &["sdxl"];

/// Loading SDXL weights from a cold disk and initialising CUDA takes minutes, not seconds.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Time for an in-flight job to finish or hand its lease back before SIGKILL: longer than
/// the SDXL worker's own grace (`shutdown_grace`, 60 s) plus its callback flush.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(90);
/// How often a starting worker's readiness is probed: fast enough not to delay the next
/// worker noticeably, slow enough to cost nothing.
pub const DEFAULT_READY_INTERVAL: Duration = Duration::from_millis(500);
/// Priority of a worker that names none: after the ones that do (lower starts first).
pub const DEFAULT_PRIORITY: i64 = 100;

/// One `[[workers]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSpec {
    /// Unique name: log prefix, status row, metrics label.
    pub name: String,
    /// A built-in kind, run as `easel worker <kind> run`. Exclusive with `command`.
    pub kind: Option<String>,
    /// An external program and its arguments. Exclusive with `kind`.
    pub command: Option<Vec<String>>,
    /// Extra arguments after `easel worker <kind> run` (built-in kinds only).
    pub args: Vec<String>,
    /// A preflight command that must exit 0 before the worker is started.
    pub check: Option<Vec<String>>,
    /// Working directory of the worker (default: the orchestrator's).
    pub cwd: Option<PathBuf>,
    /// Start order: lower first; equal priorities keep file order.
    pub priority: i64,
    /// `false` keeps the worker in the file but does not run it.
    pub enabled: bool,
    /// Extra environment (the orchestrator's own environment is inherited).
    pub env: BTreeMap<String, String>,
    /// The worker's HTTP port, passed as `WORKER_PORT` (SDXL default 7859).
    pub port: Option<u16>,
    /// How readiness is decided (default: `GET /readyz` on `port`).
    pub readiness: ReadinessConfig,
    /// How long the worker may take to become ready (model loading included).
    #[serde(deserialize_with = "duration::deserialize")]
    pub start_timeout: Duration,
    /// After SIGTERM, how long before SIGKILL.
    #[serde(deserialize_with = "duration::deserialize")]
    pub stop_grace: Duration,
    /// When and how fast to restart.
    pub restart: RestartConfig,
    /// `"all"` or `[0, 1, ...]`: one worker per GPU (built-in kinds only). Tables with it are
    /// expanded when the config loads; an expanded worker has `gpus = None` and its `gpu`.
    pub gpus: Option<GpuSelection>,
    /// The GPU of a worker expanded from a `gpus` table (never written in a file).
    #[serde(skip)]
    pub gpu: Option<GpuSlot>,
}

/// `[workers.readiness]`: exactly one of `http`, `command`, `alive_for` (or none: `/readyz`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadinessConfig {
    /// Path to GET on the worker's port; ready on HTTP 200.
    pub http: Option<String>,
    /// A command; ready when it exits 0.
    pub command: Option<Vec<String>>,
    /// Ready when the process is still alive after this long (for workers with no probe).
    #[serde(deserialize_with = "duration::deserialize_some")]
    pub alive_for: Option<Duration>,
    /// Time between probes.
    #[serde(deserialize_with = "duration::deserialize")]
    pub interval: Duration,
}

impl Default for ReadinessConfig {
    fn default() -> Self {
        Self {
            http: None,
            command: None,
            alive_for: None,
            interval: DEFAULT_READY_INTERVAL,
        }
    }
}

impl Default for WorkerSpec {
    fn default() -> Self {
        Self {
            name: String::new(),
            kind: None,
            command: None,
            args: Vec::new(),
            check: None,
            cwd: None,
            priority: DEFAULT_PRIORITY,
            enabled: true,
            env: BTreeMap::new(),
            port: None,
            readiness: ReadinessConfig::default(),
            start_timeout: DEFAULT_START_TIMEOUT,
            stop_grace: DEFAULT_STOP_GRACE,
            restart: RestartConfig::default(),
            gpus: None,
            gpu: None,
        }
    }
}

/// How a worker is started, resolved from `kind` or `command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// `<worker_bin> worker <kind> run <args...>`.
    Builtin {
        /// The kind.
        kind: String,
        /// Extra arguments.
        args: Vec<String>,
    },
    /// `<program> <args...>`.
    External {
        /// The program (a path, or a name looked up in PATH).
        program: String,
        /// Its arguments.
        args: Vec<String>,
    },
}

/// How readiness is decided, resolved from `[workers.readiness]` and `port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyCheck {
    /// `GET http://127.0.0.1:<port><path>` answers 200.
    Http {
        /// The port.
        port: u16,
        /// The path.
        path: String,
    },
    /// The command exits 0.
    Command(Vec<String>),
    /// The process is still alive after this long.
    AliveFor(Duration),
}

impl WorkerSpec {
    pub(crate) fn validate(&self) -> Result<(), String> {
        validate_name(&self.name)?;
        self.validate_launch()?;
        if let Some(selection) = &self.gpus {
            gpu_key::validate(self.command.is_some(), &self.args, &self.env, selection)?;
        }
        self.validate_readiness()?;
        self.restart.validate()?;
        if self.port == Some(0) {
            return Err("port = 0 is not a port the orchestrator can probe; pick a fixed port".into());
        }
        if self.start_timeout.is_zero() {
            return Err("start_timeout must be longer than 0s (loading a model takes minutes: try \"15m\")".into());
        }
        for key in self.env.keys() {
            if key.is_empty() || key.contains(['=', '\0']) {
                return Err(format!("env key {key:?} is not a valid variable name"));
            }
            if key == "WORKER_PORT" {
                return Err(
                    "env sets WORKER_PORT: set `port = ...` instead (the orchestrator passes it and probes it)".into(),
                );
            }
        }
        Ok(())
    }

    fn validate_launch(&self) -> Result<(), String> {
        match (&self.kind, &self.command) {
            (Some(_), Some(_)) => Err("set either `kind` (a built-in worker) or `command` (an external program), not both".into()),
            (None, None) => Err("set `kind = \"sdxl\"` for the built-in worker or `command = [\"program\", \"arg\"]` for an external one".into()),
            (None, Some(command)) if command.first().is_none_or(|p| p.trim().is_empty()) => {
                Err("`command` is empty: name the program first, e.g. command = [\"python3\", \"worker.py\"]".into())
            }
            (None, Some(_)) if !self.args.is_empty() => {
                Err("`args` is for built-in kinds; put the arguments of an external worker in `command`".into())
            }
            (Some(kind), None) if kind.trim().is_empty() => {
                Err(format!("`kind` is empty; built-in kinds: {}", BUILTIN_KINDS.join(", ")))
            }
            _ => Ok(()),
        }
    }

    fn validate_readiness(&self) -> Result<(), String> {
        let r = &self.readiness;
        let chosen = [r.http.is_some(), r.command.is_some(), r.alive_for.is_some()];
        if chosen.iter().filter(|c| **c).count() > 1 {
            return Err("[workers.readiness]: set only one of `http`, `command`, `alive_for`".into());
        }
        if let Some(path) = &r.http {
            if !path.starts_with('/') {
                return Err(format!(
                    "readiness.http = {path:?} must be a path starting with '/', like \"/readyz\""
                ));
            }
        }
        if let Some(command) = &r.command {
            if command.first().is_none_or(|p| p.trim().is_empty()) {
                return Err("readiness.command is empty: name the program first".into());
            }
        }
        let needs_port = r.command.is_none() && r.alive_for.is_none();
        if needs_port && self.port.is_none() {
            return Err("no `port` to probe for readiness: set `port`, or [workers.readiness] `command = [...]` or `alive_for = \"5s\"`".into());
        }
        if r.interval.is_zero() {
            return Err("readiness.interval must be longer than 0s, e.g. \"500ms\"".into());
        }
        Ok(())
    }

    /// How the worker is started.
    pub fn launch(&self) -> Launch {
        match (&self.kind, &self.command) {
            (Some(kind), _) => Launch::Builtin {
                kind: kind.clone(),
                args: self.args.clone(),
            },
            (None, command) => {
                let mut parts = command.clone().unwrap_or_default().into_iter();
                let program = parts.next().unwrap_or_default();
                Launch::External {
                    program,
                    args: parts.collect(),
                }
            }
        }
    }

    /// How readiness is decided.
    pub fn ready_check(&self) -> ReadyCheck {
        let r = &self.readiness;
        if let Some(command) = &r.command {
            return ReadyCheck::Command(command.clone());
        }
        if let Some(after) = r.alive_for {
            return ReadyCheck::AliveFor(after);
        }
        match self.port {
            Some(port) => ReadyCheck::Http {
                port,
                path: r.http.clone().unwrap_or_else(|| "/readyz".to_owned()),
            },
            None => ReadyCheck::AliveFor(Duration::ZERO),
        }
    }

    /// `sdxl` for built-in kinds, `external` for commands.
    pub fn kind_label(&self) -> &str {
        self.kind.as_deref().unwrap_or("external")
    }
}

fn validate_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() {
        return Err("every [[workers]] needs a `name`, e.g. name = \"sdxl\"".into());
    }
    if name.len() > 64 || !name.chars().all(ok_char) {
        return Err(format!(
            "name {name:?} must be 1-64 letters, digits, '_', '-' or '.' (it labels logs and metrics)"
        ));
    }
    Ok(())
}
