//! Why this exists: `easel.toml`, the one description of what the orchestrator runs.
//! Flow: TOML text → serde (unknown keys rejected, with toml's line/column report) →
//! defaults filled in → [`Config::validate`] (names, ports, conflicting keys) → a
//! [`Config`] whose accessors ([`WorkerConfig::launch`], [`WorkerConfig::ready_check`])
//! can no longer fail. Without a file, [`DEFAULT_CONFIG_TOML`] goes through the same path.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::duration;
use crate::error::{Error, Result};

/// The file `easel up` reads from the working directory when no `--config` is given.
pub const DEFAULT_CONFIG_FILE: &str = "easel.toml";

/// The config used when there is no file: one SDXL worker on the Python worker's port.
pub const DEFAULT_CONFIG_TOML: &str = r#"
[[workers]]
name = "sdxl"
kind = "sdxl"
priority = 1
"#;

/// Where `/status`, `/metrics`, `/livez` and `/readyz` listen: loopback, next to the
/// workers' own ports (the SDXL worker's is 7859).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7870";

/// The built-in kinds that `easel worker <kind>` knows.
pub const BUILTIN_KINDS: &[&str] = &["sdxl"];

/// Port of the built-in SDXL worker when none is configured: the Python worker's default.
pub const SDXL_DEFAULT_PORT: u16 = 7859;

/// Loading SDXL weights from a cold disk and initialising CUDA takes minutes, not seconds.
const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Time for an in-flight job to finish or hand its lease back before SIGKILL: longer than
/// the SDXL worker's own grace (`EASEL_SHUTDOWN_GRACE_SECS`, 60 s) plus its callback flush.
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(90);
/// Longer than the default stop grace, so a graceful stop is never cut short by default.
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(120);
/// `describe --json` and check commands do no model loading; a minute is generous.
const DEFAULT_PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a starting worker's readiness is probed: fast enough not to delay the next
/// worker noticeably, slow enough to cost nothing.
const DEFAULT_READY_INTERVAL: Duration = Duration::from_millis(500);
/// First restart delay: a crash is retried quickly once.
const DEFAULT_INITIAL_DELAY: Duration = Duration::from_secs(1);
/// Cap on the restart delay: a broken worker is still retried every minute at most.
const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(60);
/// Each consecutive failure doubles the delay.
const DEFAULT_MULTIPLIER: f64 = 2.0;
/// Up to 20% of each delay is random, so workers that fail together do not retry together.
const DEFAULT_JITTER: f64 = 0.2;
/// A worker that stayed ready this long is healthy again: its delay goes back to the start.
const DEFAULT_STABLE_AFTER: Duration = Duration::from_secs(60);
/// This many failures inside the window make a worker FATAL instead of crash-looping.
const DEFAULT_MAX_FAILURES: u32 = 5;
/// The window in which failures are counted.
const DEFAULT_FAILURE_WINDOW: Duration = Duration::from_secs(5 * 60);
/// sysexits' EX_CONFIG: the worker says its configuration is wrong; retrying cannot help.
pub const EX_CONFIG: i32 = 78;
/// Priority of a worker that names none: after the ones that do (lower starts first).
const DEFAULT_PRIORITY: i64 = 100;

/// Where a config came from; shown in messages and used to reload it on SIGHUP.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Origin {
    /// [`DEFAULT_CONFIG_TOML`].
    #[default]
    Embedded,
    /// A file.
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Embedded => f.write_str("(embedded defaults)"),
            Origin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The whole config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Settings of the orchestrator itself.
    #[serde(default)]
    pub orchestrator: OrchestratorConfig,
    /// The supervised workers, as `[[workers]]` tables. A file without any runs the
    /// embedded default (one SDXL worker); `workers = []` runs none.
    #[serde(default = "default_workers")]
    pub workers: Vec<WorkerConfig>,
    /// `[worker]`: settings of the worker runtime itself (queue, storage, model), read by
    /// `easel worker` from the same file; the orchestrator only notices when they change.
    #[serde(default, rename = "worker")]
    pub worker_runtime: Option<toml::Table>,
    /// Where this config came from.
    #[serde(skip)]
    pub origin: Origin,
}

/// `[orchestrator]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrchestratorConfig {
    /// Address of `/status`, `/metrics`, `/livez`, `/readyz` (port 0 picks a free one).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// On SIGTERM/SIGINT, how long all workers together get to stop before SIGKILL.
    #[serde(default = "default_shutdown_timeout", deserialize_with = "duration::deserialize")]
    pub shutdown_timeout: Duration,
    /// How long one preflight (`describe --json`, a check command) may take.
    #[serde(default = "default_preflight_timeout", deserialize_with = "duration::deserialize")]
    pub preflight_timeout: Duration,
    /// The `easel` executable that runs built-in workers (default: the running one;
    /// the environment variable `EASEL_WORKER_BIN` overrides both).
    #[serde(default)]
    pub worker_bin: Option<PathBuf>,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            preflight_timeout: DEFAULT_PREFLIGHT_TIMEOUT,
            worker_bin: None,
        }
    }
}

/// One `[[workers]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Unique name: log prefix, status row, metrics label.
    pub name: String,
    /// A built-in kind, run as `easel worker <kind> run`. Exclusive with `command`.
    #[serde(default)]
    pub kind: Option<String>,
    /// An external program and its arguments. Exclusive with `kind`.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Extra arguments after `easel worker <kind> run` (built-in kinds only).
    #[serde(default)]
    pub args: Vec<String>,
    /// A preflight command that must exit 0 before the worker is started.
    #[serde(default)]
    pub check: Option<Vec<String>>,
    /// Working directory of the worker (default: the orchestrator's).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Start order: lower first; equal priorities keep file order.
    #[serde(default = "default_priority")]
    pub priority: i64,
    /// `false` keeps the worker in the file but does not run it.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Extra environment (the orchestrator's own environment is inherited).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The worker's HTTP port, passed as `WORKER_PORT` (SDXL default 7859).
    #[serde(default)]
    pub port: Option<u16>,
    /// How readiness is decided (default: `GET /readyz` on `port`).
    #[serde(default)]
    pub readiness: ReadinessConfig,
    /// How long the worker may take to become ready (model loading included).
    #[serde(default = "default_start_timeout", deserialize_with = "duration::deserialize")]
    pub start_timeout: Duration,
    /// After SIGTERM, how long before SIGKILL.
    #[serde(default = "default_stop_grace", deserialize_with = "duration::deserialize")]
    pub stop_grace: Duration,
    /// When and how fast to restart.
    #[serde(default)]
    pub restart: RestartConfig,
}

/// `[workers.readiness]`: exactly one of `http`, `command`, `alive_for` (or none: `/readyz`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadinessConfig {
    /// Path to GET on the worker's port; ready on HTTP 200.
    #[serde(default)]
    pub http: Option<String>,
    /// A command; ready when it exits 0.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Ready when the process is still alive after this long (for workers with no probe).
    #[serde(default, deserialize_with = "duration::deserialize_some")]
    pub alive_for: Option<Duration>,
    /// Time between probes.
    #[serde(default = "default_ready_interval", deserialize_with = "duration::deserialize")]
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

/// When a worker is restarted after it exits on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Every exit is restarted (a queue worker is meant to run until told to stop).
    Always,
    /// Only exits with a non-zero code or a signal are restarted.
    OnFailure,
    /// Never restarted.
    Never,
}

/// `[workers.restart]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartConfig {
    /// `always` (default), `on-failure` or `never`.
    #[serde(default = "default_policy")]
    pub policy: RestartPolicy,
    /// Delay before the first restart.
    #[serde(default = "default_initial_delay", deserialize_with = "duration::deserialize")]
    pub initial_delay: Duration,
    /// Cap on the delay.
    #[serde(default = "default_max_delay", deserialize_with = "duration::deserialize")]
    pub max_delay: Duration,
    /// Growth of the delay per consecutive failure.
    #[serde(default = "default_multiplier")]
    pub multiplier: f64,
    /// Fraction of each delay that is random, in [0, 1).
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    /// Ready for this long resets the delay to `initial_delay`.
    #[serde(default = "default_stable_after", deserialize_with = "duration::deserialize")]
    pub stable_after: Duration,
    /// FATAL after this many failures within `failure_window`.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// The window in which failures are counted.
    #[serde(default = "default_failure_window", deserialize_with = "duration::deserialize")]
    pub failure_window: Duration,
    /// Exit codes that mean "configuration error": FATAL at once (default `[78]`).
    #[serde(default = "default_fatal_exit_codes")]
    pub fatal_exit_codes: Vec<i32>,
}

impl Default for RestartConfig {
    fn default() -> Self {
        Self {
            policy: default_policy(),
            initial_delay: DEFAULT_INITIAL_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
            multiplier: DEFAULT_MULTIPLIER,
            jitter: DEFAULT_JITTER,
            stable_after: DEFAULT_STABLE_AFTER,
            max_failures: DEFAULT_MAX_FAILURES,
            failure_window: DEFAULT_FAILURE_WINDOW,
            fatal_exit_codes: default_fatal_exit_codes(),
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

impl Config {
    /// The embedded default config (one SDXL worker).
    pub fn embedded() -> Result<Self> {
        Self::from_toml(DEFAULT_CONFIG_TOML, Origin::Embedded)
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|cause| Error::ConfigRead {
            path: path.to_owned(),
            cause,
        })?;
        Self::from_toml(&text, Origin::File(path.to_owned()))
    }

    /// `explicit` if given, else `./easel.toml` if it exists, else the embedded defaults.
    pub fn discover(explicit: Option<&Path>) -> Result<Self> {
        match explicit {
            Some(path) => Self::load(path),
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => Self::load(Path::new(DEFAULT_CONFIG_FILE)),
            None => Self::embedded(),
        }
    }

    /// Reads the config again from where this one came from (for SIGHUP).
    pub fn reload(&self) -> Result<Self> {
        match &self.origin {
            Origin::Embedded => Self::embedded(),
            Origin::File(path) => Self::load(path),
        }
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str, origin: Origin) -> Result<Self> {
        let mut config: Config = toml::from_str(text).map_err(|e| Error::ConfigSyntax {
            origin: origin.to_string(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.origin = origin;
        config.fill_defaults();
        config.validate()?;
        Ok(config)
    }

    /// The enabled workers, in start order (priority, then file order).
    pub fn start_order(&self) -> Vec<&WorkerConfig> {
        let mut workers: Vec<&WorkerConfig> = self.workers.iter().filter(|w| w.enabled).collect();
        workers.sort_by_key(|w| w.priority);
        workers
    }

    fn fill_defaults(&mut self) {
        for worker in &mut self.workers {
            if worker.port.is_none() && worker.kind.as_deref() == Some("sdxl") {
                worker.port = Some(SDXL_DEFAULT_PORT);
            }
        }
    }

    /// Checks what serde cannot: uniqueness, exclusive keys, ranges.
    pub fn validate(&self) -> Result<()> {
        let invalid = |message: String| Error::ConfigInvalid {
            origin: self.origin.to_string(),
            message,
        };
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut ports: HashMap<u16, String> = HashMap::new();
        ports.insert(self.orchestrator.listen.port(), "[orchestrator] listen".to_owned());
        for (index, worker) in self.workers.iter().enumerate() {
            let at = format!("[[workers]] #{} (name = {:?})", index + 1, worker.name);
            worker.validate().map_err(|m| invalid(format!("{at}: {m}")))?;
            if let Some(first) = names.insert(&worker.name, index) {
                return Err(invalid(format!(
                    "{at}: the name {:?} is already used by [[workers]] #{}; give each worker its own name",
                    worker.name,
                    first + 1
                )));
            }
            if let (Some(port), true) = (worker.port, worker.enabled) {
                if let Some(owner) = ports.insert(port, format!("worker {:?}", worker.name)) {
                    return Err(invalid(format!(
                        "{at}: port = {port} is already used by {owner}; give each worker its own port"
                    )));
                }
            }
        }
        Ok(())
    }
}

impl WorkerConfig {
    fn validate(&self) -> Result<(), String> {
        validate_name(&self.name)?;
        self.validate_launch()?;
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

impl RestartConfig {
    fn validate(&self) -> Result<(), String> {
        if !(self.multiplier >= 1.0 && self.multiplier.is_finite()) {
            return Err(format!(
                "restart.multiplier = {} must be at least 1.0 (2.0 doubles each delay)",
                self.multiplier
            ));
        }
        if !(0.0..1.0).contains(&self.jitter) {
            return Err(format!("restart.jitter = {} must be in [0, 1), e.g. 0.2", self.jitter));
        }
        if self.initial_delay > self.max_delay {
            return Err(format!(
                "restart.initial_delay ({}) is longer than restart.max_delay ({})",
                duration::Human(self.initial_delay),
                duration::Human(self.max_delay)
            ));
        }
        if self.max_failures == 0 {
            return Err("restart.max_failures must be at least 1".into());
        }
        Ok(())
    }
}

fn validate_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok_char) {
        return Err(format!(
            "name {name:?} must be 1-64 letters, digits, '_', '-' or '.' (it labels logs and metrics)"
        ));
    }
    Ok(())
}

fn default_workers() -> Vec<WorkerConfig> {
    // The embedded TOML has `[[workers]]`, so this does not recurse; a unit test parses it.
    toml::from_str::<Config>(DEFAULT_CONFIG_TOML)
        .map(|c| c.workers)
        .unwrap_or_default()
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
        .parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 7870)))
}
fn default_shutdown_timeout() -> Duration {
    DEFAULT_SHUTDOWN_TIMEOUT
}
fn default_preflight_timeout() -> Duration {
    DEFAULT_PREFLIGHT_TIMEOUT
}
fn default_priority() -> i64 {
    DEFAULT_PRIORITY
}
fn default_true() -> bool {
    true
}
fn default_start_timeout() -> Duration {
    DEFAULT_START_TIMEOUT
}
fn default_stop_grace() -> Duration {
    DEFAULT_STOP_GRACE
}
fn default_ready_interval() -> Duration {
    DEFAULT_READY_INTERVAL
}
fn default_policy() -> RestartPolicy {
    RestartPolicy::Always
}
fn default_initial_delay() -> Duration {
    DEFAULT_INITIAL_DELAY
}
fn default_max_delay() -> Duration {
    DEFAULT_MAX_DELAY
}
fn default_multiplier() -> f64 {
    DEFAULT_MULTIPLIER
}
fn default_jitter() -> f64 {
    DEFAULT_JITTER
}
fn default_stable_after() -> Duration {
    DEFAULT_STABLE_AFTER
}
fn default_max_failures() -> u32 {
    DEFAULT_MAX_FAILURES
}
fn default_failure_window() -> Duration {
    DEFAULT_FAILURE_WINDOW
}
fn default_fatal_exit_codes() -> Vec<i32> {
    vec![EX_CONFIG]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::from_toml(text, Origin::File("easel.toml".into()))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn embedded_defaults_run_one_sdxl_worker_on_port_7859() {
        let config = Config::embedded().unwrap();
        assert_eq!(config.workers.len(), 1);
        let sdxl = &config.workers[0];
        assert_eq!(
            sdxl.launch(),
            Launch::Builtin {
                kind: "sdxl".into(),
                args: vec![]
            }
        );
        assert_eq!(
            sdxl.ready_check(),
            ReadyCheck::Http {
                port: 7859,
                path: "/readyz".into()
            }
        );
        assert_eq!(sdxl.start_timeout, DEFAULT_START_TIMEOUT);
        assert_eq!(sdxl.restart.fatal_exit_codes, vec![78]);
        assert_eq!(config.orchestrator.listen.to_string(), DEFAULT_LISTEN);
    }

    #[test]
    fn a_full_config_with_a_builtin_and_an_external_worker_parses() {
        let config = parse(
            r#"
            [orchestrator]
            listen = "127.0.0.1:9000"
            shutdown_timeout = "2m"

            [[workers]]
            name = "video"
            command = ["python3", "wan_worker.py", "--queue", "wan_queue"]
            check = ["python3", "wan_worker.py", "--check"]
            priority = 2
            port = 7860
            env = { PYTHONUNBUFFERED = "1" }
            stop_grace = "45s"
            [workers.readiness]
            http = "/health"
            [workers.restart]
            initial_delay = "2s"
            max_failures = 3

            [[workers]]
            name = "sdxl"
            kind = "sdxl"
            priority = 1
            "#,
        )
        .unwrap();
        let order: Vec<&str> = config.start_order().iter().map(|w| w.name.as_str()).collect();
        assert_eq!(order, ["sdxl", "video"]);
        let video = &config.workers[0];
        assert_eq!(
            video.launch(),
            Launch::External {
                program: "python3".into(),
                args: vec!["wan_worker.py".into(), "--queue".into(), "wan_queue".into()]
            }
        );
        assert_eq!(
            video.ready_check(),
            ReadyCheck::Http {
                port: 7860,
                path: "/health".into()
            }
        );
        assert_eq!(video.stop_grace, Duration::from_secs(45));
        assert_eq!(video.restart.max_failures, 3);
        assert_eq!(video.restart.multiplier, DEFAULT_MULTIPLIER);
        assert_eq!(config.orchestrator.shutdown_timeout, Duration::from_secs(120));
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let message = err("[[workers]]\nname = \"sdxl\"\nkind = \"sdxl\"\nprot = 7859\n");
        assert!(message.contains("easel.toml"), "{message}");
        assert!(message.contains("prot"), "{message}");
        assert!(message.contains("line 4"), "{message}");
    }

    #[test]
    fn a_bad_duration_is_named_with_an_example() {
        let message = err("[[workers]]\nname = \"a\"\nkind = \"sdxl\"\nstop_grace = \"10 sec\"\n");
        assert!(
            message.contains("\"10 sec\"") && message.contains("line 4"),
            "{message}"
        );
    }

    #[test]
    fn duplicate_names_and_ports_are_rejected() {
        let message =
            err("[[workers]]\nname = \"a\"\nkind = \"sdxl\"\n[[workers]]\nname = \"a\"\nkind = \"sdxl\"\nport = 1\n");
        assert!(
            message.contains("#2") && message.contains("already used by [[workers]] #1"),
            "{message}"
        );
        let message = err("[[workers]]\nname = \"a\"\nkind = \"sdxl\"\n[[workers]]\nname = \"b\"\nkind = \"sdxl\"\n");
        assert!(
            message.contains("port = 7859 is already used by worker \"a\""),
            "{message}"
        );
        let message = err("[orchestrator]\nlisten = \"127.0.0.1:7859\"\n[[workers]]\nname = \"a\"\nkind = \"sdxl\"\n");
        assert!(message.contains("[orchestrator] listen"), "{message}");
    }

    #[test]
    fn kind_and_command_are_exclusive_and_one_is_required() {
        let message = err("[[workers]]\nname = \"a\"\nkind = \"sdxl\"\ncommand = [\"x\"]\n");
        assert!(message.contains("not both"), "{message}");
        let message = err("[[workers]]\nname = \"a\"\nport = 1\n");
        assert!(
            message.contains("kind = \\\"sdxl\\\"") || message.contains("kind = \"sdxl\""),
            "{message}"
        );
        let message = err("[[workers]]\nname = \"a\"\ncommand = []\nport = 1\n");
        assert!(message.contains("`command` is empty"), "{message}");
    }

    #[test]
    fn a_worker_without_port_needs_another_readiness_check() {
        let message = err("[[workers]]\nname = \"a\"\ncommand = [\"x\"]\n");
        assert!(message.contains("alive_for"), "{message}");
        let ok = parse("[[workers]]\nname = \"a\"\ncommand = [\"x\"]\nreadiness = { alive_for = \"2s\" }\n").unwrap();
        assert_eq!(
            ok.workers[0].ready_check(),
            ReadyCheck::AliveFor(Duration::from_secs(2))
        );
        let message = err("[[workers]]\nname = \"a\"\ncommand = [\"x\"]\nport = 1\nreadiness = { http = \"/a\", alive_for = \"2s\" }\n");
        assert!(message.contains("only one"), "{message}");
    }

    #[test]
    fn restart_settings_out_of_range_are_rejected() {
        let base = "[[workers]]\nname = \"a\"\nkind = \"sdxl\"\n[workers.restart]\n";
        assert!(err(&format!("{base}jitter = 1.5\n")).contains("restart.jitter = 1.5"));
        assert!(err(&format!("{base}multiplier = 0.5\n")).contains("restart.multiplier"));
        assert!(err(&format!("{base}initial_delay = \"2m\"\nmax_delay = \"1m\"\n")).contains("longer than"));
        assert!(err(&format!("{base}max_failures = 0\n")).contains("at least 1"));
        assert!(err(&format!("{base}policy = \"sometimes\"\n")).contains("sometimes"));
    }

    #[test]
    fn the_worker_runtimes_own_table_shares_the_file() {
        let config = parse(
            "[worker]\nqueue_url = \"redis://localhost\"\npoll_ms = 5\n\n[[workers]]\nname = \"a\"\nkind = \"sdxl\"\n",
        )
        .unwrap();
        assert_eq!(config.workers[0].name, "a");
        let runtime = config.worker_runtime.unwrap();
        assert_eq!(runtime.get("poll_ms").and_then(|v| v.as_integer()), Some(5));
    }

    #[test]
    fn a_file_without_workers_runs_the_default_sdxl_worker_and_an_empty_list_none() {
        let config = parse("[worker]\npoll_ms = 5\n[orchestrator]\nshutdown_timeout = \"2m\"\n").unwrap();
        assert_eq!(config.workers, Config::embedded().unwrap().workers);
        assert!(parse("workers = []\n").unwrap().workers.is_empty());
    }

    #[test]
    fn the_readme_example_is_a_valid_config() {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("## Supervising workers: easel up")
            .nth(1)
            .expect("the README section");
        let example = section
            .split("```toml\n")
            .nth(1)
            .and_then(|s| s.split("```").next())
            .expect("a toml example");
        let config = parse(example).unwrap();
        let order: Vec<&str> = config.start_order().iter().map(|w| w.name.as_str()).collect();
        assert_eq!(order, ["sdxl", "video"]);
        assert_eq!(
            config.workers[1].ready_check(),
            ReadyCheck::Http {
                port: 7860,
                path: "/health".into()
            }
        );
        assert_eq!(config.workers[0].stop_grace, DEFAULT_STOP_GRACE);
        assert_eq!(config.workers[1].restart, RestartConfig::default());
    }

    #[test]
    fn bad_names_are_rejected() {
        assert!(err("[[workers]]\nname = \"a b\"\nkind = \"sdxl\"\n").contains("letters, digits"));
    }

    #[test]
    fn disabled_workers_are_not_started_and_do_not_hold_ports() {
        let config = parse(
            "[[workers]]\nname = \"a\"\nkind = \"sdxl\"\nenabled = false\n[[workers]]\nname = \"b\"\nkind = \"sdxl\"\n",
        )
        .unwrap();
        let order: Vec<&str> = config.start_order().iter().map(|w| w.name.as_str()).collect();
        assert_eq!(order, ["b"]);
    }
}
