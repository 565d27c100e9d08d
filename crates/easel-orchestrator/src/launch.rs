//! Why this exists: how a `[[workers]]` becomes a command line and an environment, in one
//! place, so that preflight (`describe --json`), the run itself and a check command all
//! see the same program, working directory and variables.
//!
//! A built-in kind `k` runs as `<worker_bin> worker k run <args>`; its preflight is
//! `<worker_bin> worker k describe --json`. An external worker runs its `command`.

use std::path::{Path, PathBuf};

use crate::config::{Launch, WorkerSpec};
use crate::process;

/// Overrides the executable of built-in workers (tests, or a separately built worker).
pub const WORKER_BIN_ENV: &str = "EASEL_WORKER_BIN";

/// Python buffers stdout in blocks when it is a pipe: a crash would lose its last lines.
const UNBUFFERED_PYTHON: (&str, &str) = ("PYTHONUNBUFFERED", "1");

/// For a worker of a `gpus` table: number devices as `nvidia-smi` and the driver do (by PCI
/// bus), not CUDA's default fastest-first, so that `--device cuda:N` is the driver's GPU N.
const PCI_DEVICE_ORDER: (&str, &str) = ("CUDA_DEVICE_ORDER", "PCI_BUS_ID");

/// The executable of built-in workers: `EASEL_WORKER_BIN`, else `[orchestrator]
/// worker_bin`, else the running executable (`easel` itself).
pub fn resolve_worker_bin(configured: Option<&Path>) -> PathBuf {
    if let Some(from_env) = std::env::var_os(WORKER_BIN_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(from_env);
    }
    if let Some(configured) = configured {
        return configured.to_owned();
    }
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("easel"))
}

/// Names the worker runtime reads its `[worker]` settings from (the same file as ours).
pub const CONFIG_ENV: &str = "EASEL_CONFIG";

/// What every launch needs besides the worker's own config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launcher {
    /// The executable of built-in workers ([`resolve_worker_bin`]).
    pub worker_bin: PathBuf,
    /// The config file, passed to built-in workers as `EASEL_CONFIG` (absolute).
    pub config_file: Option<PathBuf>,
}

impl Launcher {
    /// The launcher for `config`.
    pub fn for_config(config: &crate::config::Config) -> Self {
        let config_file = match &config.origin {
            crate::config::Origin::File(path) => Some(std::path::absolute(path).unwrap_or_else(|_| path.clone())),
            crate::config::Origin::Embedded => None,
        };
        Self {
            worker_bin: resolve_worker_bin(config.orchestrator.worker_bin.as_deref()),
            config_file,
        }
    }
}

/// The program and arguments that run `worker`.
pub(crate) fn run_line(worker: &WorkerSpec, worker_bin: &Path) -> (PathBuf, Vec<String>) {
    match worker.launch() {
        Launch::Builtin { kind, args } => {
            let mut all = vec!["worker".to_owned(), kind, "run".to_owned()];
            all.extend(args);
            (worker_bin.to_owned(), all)
        }
        Launch::External { program, args } => (PathBuf::from(program), args),
    }
}

/// The command that runs `worker`, ready to spawn (own group, dies with the orchestrator).
pub(crate) fn run_command(worker: &WorkerSpec, launcher: &Launcher) -> tokio::process::Command {
    let (program, args) = run_line(worker, &launcher.worker_bin);
    let mut cmd = configured(process::command(&program, &args), worker);
    pass_config_file(&mut cmd, worker, launcher);
    cmd
}

/// `<worker_bin> worker <kind> describe --json`, with the worker's environment.
pub(crate) fn describe_command(worker: &WorkerSpec, kind: &str, launcher: &Launcher) -> tokio::process::Command {
    let args = ["worker", kind, "describe", "--json"].map(str::to_owned);
    let mut cmd = configured(process::command(&launcher.worker_bin, &args), worker);
    pass_config_file(&mut cmd, worker, launcher);
    cmd
}

/// A built-in worker reads its `[worker]` settings from our config file, unless its own
/// `env` names another one.
fn pass_config_file(cmd: &mut tokio::process::Command, worker: &WorkerSpec, launcher: &Launcher) {
    if let (Some(file), Some(_), false) = (&launcher.config_file, &worker.kind, worker.env.contains_key(CONFIG_ENV)) {
        cmd.env(CONFIG_ENV, file);
    }
}

/// An auxiliary command (`check`, readiness `command`) in the worker's environment.
pub(crate) fn aux_command(worker: &WorkerSpec, argv: &[String]) -> Option<tokio::process::Command> {
    let (program, args) = argv.split_first()?;
    Some(configured(process::command(Path::new(program), args), worker))
}

/// The worker's environment as a list: its `env`, `WORKER_PORT`, unbuffered Python, and for
/// the worker of one GPU its device order; ours is inherited, and what it sets wins.
pub(crate) fn environment(worker: &WorkerSpec) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut defaults = vec![UNBUFFERED_PYTHON];
    if worker.gpu.is_some() {
        defaults.push(PCI_DEVICE_ORDER);
    }
    for (key, value) in defaults {
        if std::env::var_os(key).is_none() && !worker.env.contains_key(key) {
            env.push((key.to_owned(), value.to_owned()));
        }
    }
    env.extend(worker.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(port) = worker.port {
        env.push(("WORKER_PORT".to_owned(), port.to_string()));
    }
    env
}

/// The command line as shown to people (status, errors).
pub(crate) fn display_line(program: &Path, args: &[String]) -> String {
    std::iter::once(program.display().to_string())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn configured(mut cmd: tokio::process::Command, worker: &WorkerSpec) -> tokio::process::Command {
    cmd.envs(environment(worker));
    if let Some(cwd) = &worker.cwd {
        cmd.current_dir(cwd);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Origin};

    fn worker(toml: &str) -> WorkerSpec {
        Config::from_toml(toml, Origin::Embedded).unwrap().workers.remove(0)
    }

    #[test]
    fn a_builtin_kind_runs_as_easel_worker_kind_run() {
        let w = worker("[[workers]]\nname = \"s\"\nkind = \"sdxl\"\nargs = [\"--device\", \"cuda\"]\n");
        let (program, args) = run_line(&w, Path::new("/opt/easel"));
        assert_eq!(
            display_line(&program, &args),
            "/opt/easel worker sdxl run --device cuda"
        );
    }

    #[test]
    fn an_external_worker_runs_its_command() {
        let w = worker("[[workers]]\nname = \"v\"\ncommand = [\"python3\", \"v.py\"]\nport = 7000\n");
        let (program, args) = run_line(&w, Path::new("/opt/easel"));
        assert_eq!(display_line(&program, &args), "python3 v.py");
    }

    #[test]
    fn the_port_is_passed_as_worker_port_beside_the_env() {
        let w = worker("[[workers]]\nname = \"s\"\nkind = \"sdxl\"\nport = 7001\nenv = { A = \"1\" }\n");
        let env = environment(&w);
        let get = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(get("A"), Some("1"));
        assert_eq!(get("WORKER_PORT"), Some("7001"));
        assert_eq!(get("CUDA_DEVICE_ORDER"), None, "only the workers of a gpus table");
    }

    #[test]
    fn the_workers_of_a_gpus_table_run_their_own_device_port_and_name() {
        let config = Config::from_toml(
            "[[workers]]\nname = \"sdxl\"\nkind = \"sdxl\"\nport = 7001\ngpus = [0, 3]\nargs = [\"--model\", \"/m\"]\n",
            Origin::Embedded,
        )
        .unwrap();
        let lines: Vec<String> = config
            .workers
            .iter()
            .map(|w| {
                let (program, args) = run_line(w, Path::new("/opt/easel"));
                display_line(&program, &args)
            })
            .collect();
        assert_eq!(
            lines,
            [
                "/opt/easel worker sdxl run --model /m --device cuda:0",
                "/opt/easel worker sdxl run --model /m --device cuda:3"
            ]
        );
        let env = environment(&config.workers[1]);
        let get = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(get("WORKER_PORT"), Some("7002"));
        assert_eq!(get("EASEL_WORKER_NAME"), Some("sdxl-gpu3"));
        if std::env::var_os("CUDA_DEVICE_ORDER").is_none() {
            assert_eq!(get("CUDA_DEVICE_ORDER"), Some("PCI_BUS_ID"));
        }
    }
}
