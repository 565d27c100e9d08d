//! Why this exists: what the orchestrator runs — `[orchestrator]` and `[[workers]]` of
//! `easel.toml` (read through the one file schema in [`crate::file`]), with defaults filled in
//! and [`Config::validate`] checking what serde cannot (names, ports, conflicting keys), so
//! the accessors ([`WorkerSpec::launch`], [`WorkerSpec::ready_check`]) can no longer fail.
//! A table with `gpus` is expanded into one worker per GPU on the way ([`gpus`]). Without a
//! file, [`DEFAULT_CONFIG_TOML`] goes through the same path.

mod gpu_key;
mod gpus;
mod restart;
mod spec;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use gpu_key::{GpuSelection, GpuSlot, WORKER_NAME_ENV};
pub use restart::{RestartConfig, RestartPolicy};
pub use spec::{Launch, ReadinessConfig, ReadyCheck, WorkerSpec, BUILTIN_KINDS};

use crate::consts::{DEFAULT_ORCHESTRATOR_LISTEN, DEFAULT_WORKER_PORT};
use crate::duration;
use crate::error::ConfigError;
use crate::gpu::{self, Gpus};
use crate::home;
use crate::settings;

/// The config used when there is no file: one SDXL worker on the Python worker's port.
pub const DEFAULT_CONFIG_TOML: &str = r#"
[[workers]]
name = "sdxl"
kind = "sdxl"
priority = 1
"#;

/// Longer than the default stop grace, so a graceful stop is never cut short by default.
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(120);
/// `describe --json` and check commands do no model loading; a minute is generous.
const DEFAULT_PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(60);

type Result<T, E = ConfigError> = std::result::Result<T, E>;

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

/// The whole `easel.toml` as serde reads it: the one schema every command reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// The data home (embedded queue, job table, local storage) of every command.
    pub data_dir: Option<PathBuf>,
    /// `[worker]`: the worker runtime's settings (keys of [`settings::SETTINGS`]).
    pub worker: Option<toml::Table>,
    /// `[orchestrator]`.
    #[serde(default)]
    pub orchestrator: OrchestratorConfig,
    /// `[[workers]]`; `None` when the file has none.
    pub workers: Option<Vec<WorkerSpec>>,
    /// `[worker]` as text values, each key checked against the settings table.
    #[serde(skip)]
    pub worker_values: BTreeMap<String, String>,
}

/// Parses TOML text into the schema: unknown keys anywhere are errors (toml names the line),
/// and `[worker]` keys must be settings (with a "did you mean" hint).
pub fn parse_schema(text: &str, origin: &str) -> Result<Schema> {
    let schema: Schema = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        origin: origin.to_string(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    let mut schema = schema;
    schema.worker_values = settings::worker_table(schema.worker.as_ref(), origin)?;
    Ok(schema)
}

/// What the orchestrator runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Settings of the orchestrator itself.
    pub orchestrator: OrchestratorConfig,
    /// The supervised workers, as `[[workers]]` tables, a table with `gpus` replaced by its
    /// workers (one per GPU, in the table's place). A file without any runs the embedded
    /// default (one SDXL worker); `workers = []` runs none.
    pub workers: Vec<WorkerSpec>,
    /// `[worker]`: settings of the worker runtime itself (queue, storage, model), read by
    /// `easel worker` from the same file; the orchestrator only notices when they change.
    pub worker_runtime: Option<toml::Table>,
    /// The file's top-level `data_dir`, passed on to the workers by the file itself.
    pub data_dir: Option<PathBuf>,
    /// Where this config came from.
    pub origin: Origin,
}

/// `[orchestrator]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrchestratorConfig {
    /// Address of `/status`, `/metrics`, `/livez`, `/readyz` (port 0 picks a free one).
    pub listen: SocketAddr,
    /// On SIGTERM/SIGINT, how long all workers together get to stop before SIGKILL.
    #[serde(deserialize_with = "duration::deserialize")]
    pub shutdown_timeout: Duration,
    /// How long one preflight (`describe --json`, a check command) may take.
    #[serde(deserialize_with = "duration::deserialize")]
    pub preflight_timeout: Duration,
    /// The `easel` executable that runs built-in workers (default: the running one;
    /// the environment variable `EASEL_WORKER_BIN` overrides both).
    pub worker_bin: Option<PathBuf>,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_ORCHESTRATOR_LISTEN,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            preflight_timeout: DEFAULT_PREFLIGHT_TIMEOUT,
            worker_bin: None,
        }
    }
}

impl Config {
    /// The embedded default config (one SDXL worker).
    pub fn embedded() -> Result<Self> {
        Self::from_toml(DEFAULT_CONFIG_TOML, Origin::Embedded)
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_owned(),
            msg: e.to_string(),
        })?;
        Self::from_toml(&text, Origin::File(path.to_owned()))
    }

    /// `explicit` if given, else `$EASEL_CONFIG`, else `./easel.toml` if it exists, else the
    /// embedded defaults.
    pub fn discover(explicit: Option<&Path>) -> Result<Self> {
        match home::config_file(explicit, &home::process_env) {
            Some(path) => Self::load(&path),
            None => Self::embedded(),
        }
    }

    /// The `[orchestrator]` table alone, found as [`Config::discover`] finds the file, for
    /// commands that only need its address (`easel status`): the workers are neither checked
    /// nor expanded, so a `gpus = "all"` table needs no GPU where the command runs.
    pub fn discover_orchestrator(explicit: Option<&Path>) -> Result<OrchestratorConfig> {
        let Some(path) = home::config_file(explicit, &home::process_env) else {
            return Ok(OrchestratorConfig::default());
        };
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::File {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        Ok(parse_schema(&text, &path.display().to_string())?.orchestrator)
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
        let schema = parse_schema(text, &origin.to_string())?;
        Self::from_schema(schema, origin)
    }

    /// Fills in defaults, validates a parsed file and expands its `gpus` tables, counting
    /// this host's GPUs ([`gpu::discover_host`]) if a table says `gpus = "all"`.
    pub fn from_schema(schema: Schema, origin: Origin) -> Result<Self> {
        Self::from_schema_with(schema, origin, &mut gpu::discover_host)
    }

    /// [`Config::from_schema`] with `discover` counting the GPUs (called at most once, and
    /// only for `gpus = "all"`).
    pub fn from_schema_with(
        schema: Schema,
        origin: Origin,
        discover: &mut dyn FnMut() -> Result<Gpus, ConfigError>,
    ) -> Result<Self> {
        let workers = match schema.workers {
            Some(w) => w,
            None => embedded_workers()?,
        };
        let mut config = Config {
            orchestrator: schema.orchestrator,
            workers,
            worker_runtime: schema.worker,
            data_dir: schema.data_dir,
            origin,
        };
        config.fill_defaults();
        config.validate_tables()?;
        let tables = config.expand_gpus(discover)?;
        config.check(&tables)?;
        Ok(config)
    }

    /// The enabled workers, in start order (priority, then file order).
    pub fn start_order(&self) -> Vec<&WorkerSpec> {
        let mut workers: Vec<&WorkerSpec> = self.workers.iter().filter(|w| w.enabled).collect();
        workers.sort_by_key(|w| w.priority);
        workers
    }

    fn fill_defaults(&mut self) {
        for worker in &mut self.workers {
            if worker.port.is_none() && worker.kind.as_deref() == Some("sdxl") {
                worker.port = Some(DEFAULT_WORKER_PORT);
            }
        }
    }

    /// Checks what serde cannot: uniqueness, exclusive keys, ranges. Workers expanded from
    /// one `gpus` table are named after it.
    pub fn validate(&self) -> Result<()> {
        let mut tables = Vec::with_capacity(self.workers.len());
        let mut previous: Option<&str> = None;
        for worker in &self.workers {
            let table = worker.gpu.as_ref().map(|slot| slot.table.as_str());
            let same = table.is_some() && table == previous;
            let number = tables
                .last()
                .copied()
                .map_or(0, |n: usize| if same { n } else { n + 1 });
            tables.push(number);
            previous = table;
        }
        self.check(&tables)
    }

    fn invalid(&self, message: String) -> ConfigError {
        ConfigError::Schema {
            origin: self.origin.to_string(),
            message,
        }
    }

    /// Each table on its own, before `gpus` tables are expanded, and their names unique.
    fn validate_tables(&self) -> Result<()> {
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (index, worker) in self.workers.iter().enumerate() {
            let at = format!("[[workers]] #{} (name = {:?})", index + 1, worker.name);
            worker.validate().map_err(|m| self.invalid(format!("{at}: {m}")))?;
            if let Some(first) = names.insert(&worker.name, index) {
                return Err(self.invalid(format!(
                    "{at}: the name {:?} is already used by [[workers]] #{}; give each worker its own name",
                    worker.name,
                    first + 1
                )));
            }
        }
        Ok(())
    }

    /// Replaces each table with `gpus` by its workers; returns, for each worker, the index of
    /// its table in the file.
    fn expand_gpus(&mut self, discover: &mut dyn FnMut() -> Result<Gpus, ConfigError>) -> Result<Vec<usize>> {
        let mut found: Option<std::result::Result<Gpus, String>> = None;
        let mut count = || {
            found
                .get_or_insert_with(|| discover().map_err(|e| e.to_string()))
                .clone()
        };
        let mut workers = Vec::with_capacity(self.workers.len());
        let mut tables = Vec::with_capacity(self.workers.len());
        for (index, worker) in std::mem::take(&mut self.workers).into_iter().enumerate() {
            let Some(selection) = worker.gpus.clone() else {
                workers.push(worker);
                tables.push(index);
                continue;
            };
            let expanded = gpus::expand(&worker, &selection, &mut count)
                .map_err(|m| self.invalid(format!("[[workers]] #{} (name = {:?}): {m}", index + 1, worker.name)))?;
            tables.extend(std::iter::repeat_n(index, expanded.len()));
            workers.extend(expanded);
        }
        self.workers = workers;
        Ok(tables)
    }

    /// Every worker, with `tables[i]` the file index of the table worker `i` came from:
    /// uniqueness of names and ports across all of them.
    fn check(&self, tables: &[usize]) -> Result<()> {
        let mut names: HashMap<&str, String> = HashMap::new();
        let mut ports: HashMap<u16, String> = HashMap::new();
        ports.insert(self.orchestrator.listen.port(), "[orchestrator] listen".to_owned());
        for (index, worker) in self.workers.iter().enumerate() {
            let table = tables.get(index).copied().unwrap_or(index) + 1;
            let at = match &worker.gpu {
                Some(slot) => format!(
                    "[[workers]] #{table} (name = {:?}, its worker {:?} for cuda:{})",
                    slot.table, worker.name, slot.gpu
                ),
                None => format!("[[workers]] #{table} (name = {:?})", worker.name),
            };
            worker.validate().map_err(|m| self.invalid(format!("{at}: {m}")))?;
            if let Some(first) = names.insert(&worker.name, format!("[[workers]] #{table}")) {
                return Err(self.invalid(format!(
                    "{at}: the name {:?} is already used by {first}; give each worker its own name",
                    worker.name
                )));
            }
            if let (Some(port), true) = (worker.port, worker.enabled) {
                let owner = match &worker.gpu {
                    Some(_) => format!("worker {:?} (of [[workers]] #{table}, gpus)", worker.name),
                    None => format!("worker {:?}", worker.name),
                };
                if let Some(owner) = ports.insert(port, owner) {
                    let why = match &worker.gpu {
                        Some(slot) => format!(
                            " (the workers of a `gpus` table take consecutive ports from `port`: this one port + {})",
                            slot.offset
                        ),
                        None => String::new(),
                    };
                    return Err(self.invalid(format!(
                        "{at}: port = {port} is already used by {owner}{why}; give each worker its own port"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The workers of [`DEFAULT_CONFIG_TOML`].
fn embedded_workers() -> Result<Vec<WorkerSpec>> {
    let schema = parse_schema(DEFAULT_CONFIG_TOML, &Origin::Embedded.to_string())?;
    Ok(schema.workers.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use restart::DEFAULT_MULTIPLIER;
    use spec::{DEFAULT_START_TIMEOUT, DEFAULT_STOP_GRACE};

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
        assert_eq!(config.orchestrator.listen, DEFAULT_ORCHESTRATOR_LISTEN);
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
        let readme = include_str!("../../../../README.md");
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
    fn the_orchestrator_table_alone_needs_no_gpu_discovery() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("easel.toml");
        let text =
            "[orchestrator]\nlisten = \"127.0.0.1:9100\"\n[[workers]]\nname = \"s\"\nkind = \"sdxl\"\ngpus = \"all\"\n";
        std::fs::write(&path, text).unwrap();
        let orchestrator = Config::discover_orchestrator(Some(&path)).unwrap();
        assert_eq!(orchestrator.listen.port(), 9100);
        std::fs::write(&path, "[orchestrator]\nlissen = 1\n").unwrap();
        let message = Config::discover_orchestrator(Some(&path)).unwrap_err().to_string();
        assert!(message.contains("lissen"), "{message}");
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
