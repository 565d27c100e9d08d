//! Why this exists: a worker that cannot work should be reported before anything
//! starts, with the reason, instead of crash-looping. The Python orchestrator pinned
//! torch versions and grepped worker source; Easel asks the worker itself.
//!
//! Checks, in order (the first failure is the reason): the working directory exists; the
//! worker of a `gpus` table has its GPU on this host ([`easel_config::gpu`]); a
//! built-in kind is known, its executable exists and `worker <kind> describe --json` lists
//! the kind, all four entry points and its job types; an external program is found; the
//! optional `check` command exits 0. Each command runs within the preflight timeout.

use std::time::Duration;

use easel_config::gpu::{self, Gpus};
use easel_config::ConfigError;
use serde::Deserialize;

use crate::config::{Config, GpuSlot, Launch, WorkerSpec, BUILTIN_KINDS};
use crate::error::Chain;
use crate::launch::{self, Launcher};
use crate::process;
use crate::restart::ExitInfo;

mod error;

pub use error::{DescribeLine, DescriptionError, PreflightError};

/// Every built-in worker must answer to all of these (supervisors call different names;
/// one missing alias once crashed every start of the Python worker).
pub const REQUIRED_ENTRY_POINTS: [&str; 4] = ["run", "start", "serve", "launch"];

/// What `easel worker <kind> describe --json` prints (other fields are ignored).
#[derive(Debug, Deserialize)]
struct Describe {
    kind: String,
    #[serde(default)]
    entry_points: Vec<String>,
    #[serde(default)]
    job_types: serde_json::Value,
}

/// Preflights every enabled worker of `config` in start order (`easel up --check`):
/// each worker's name with `Err(reason)` if it failed; the reason shows its causes.
pub async fn check_all(config: &Config) -> Vec<(String, Result<(), Chain<PreflightError>>)> {
    let launcher = Launcher::for_config(config);
    let mut results = Vec::new();
    for worker in config.start_order() {
        let verdict = check(worker, &launcher, config.orchestrator.preflight_timeout).await;
        results.push((worker.name.clone(), verdict.map_err(Chain)));
    }
    results
}

/// What `easel up` says about this host's GPUs before it starts anything, e.g. `found 2
/// NVIDIA GPU(s) (/proc/driver/nvidia/gpus)` or `no NVIDIA GPU found (looked in ...)`.
pub fn gpu_summary() -> String {
    match gpu::discover_host() {
        Ok(gpus) => gpus.to_string(),
        Err(e) => format!("cannot count them: {e}"),
    }
}

/// Runs every check for `worker`; `Err` is the first that failed.
pub(crate) async fn check(worker: &WorkerSpec, launcher: &Launcher, timeout: Duration) -> Result<(), PreflightError> {
    if let Some(cwd) = &worker.cwd {
        if !cwd.is_dir() {
            return Err(PreflightError::CwdNotADirectory { cwd: cwd.clone() });
        }
    }
    if let Some(slot) = &worker.gpu {
        check_gpu(slot, gpu::discover_host())?;
    }
    match worker.launch() {
        Launch::Builtin { kind, .. } => check_builtin(worker, &kind, launcher, timeout).await?,
        Launch::External { program, .. } => {
            process::find_program(&program, worker.cwd.as_deref(), path_of(worker)).map_err(PreflightError::Program)?;
        }
    }
    if let Some(argv) = &worker.check {
        check_command(worker, argv, timeout).await?;
    }
    Ok(())
}

/// The GPU of a `gpus` worker must be among those found (`cuda:0` to `cuda:{count - 1}`).
fn check_gpu(slot: &GpuSlot, found: Result<Gpus, ConfigError>) -> Result<(), PreflightError> {
    let found = found.map_err(|source| PreflightError::GpuDiscovery { source })?;
    if slot.gpu < found.count {
        return Ok(());
    }
    Err(PreflightError::NoSuchGpu { gpu: slot.gpu, found })
}

/// The `PATH` a worker's commands are looked up in: its own `env`, else ours.
fn path_of(worker: &WorkerSpec) -> Option<&str> {
    worker.env.get("PATH").map(String::as_str)
}

async fn check_builtin(
    worker: &WorkerSpec,
    kind: &str,
    launcher: &Launcher,
    timeout: Duration,
) -> Result<(), PreflightError> {
    let worker_bin = &launcher.worker_bin;
    if !BUILTIN_KINDS.contains(&kind) {
        return Err(PreflightError::UnknownKind { kind: kind.to_owned() });
    }
    process::find_program(&worker_bin.to_string_lossy(), None, None)
        .map_err(|source| PreflightError::WorkerBin { source })?;
    let describe = DescribeLine {
        worker_bin: worker_bin.clone(),
        kind: kind.to_owned(),
    };
    let output = match process::run_bounded(launch::describe_command(worker, kind, launcher), timeout).await {
        Ok(output) => output,
        Err(source) => return Err(PreflightError::DescribeDidNotRun { describe, source }),
    };
    if !output.status.success() {
        return Err(PreflightError::DescribeFailed {
            describe,
            exit: ExitInfo::from_status(output.status),
            stderr: last_line(&output.stderr),
        });
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let parsed: Describe = match serde_json::from_str(stdout.trim()) {
        Ok(parsed) => parsed,
        Err(source) => return Err(PreflightError::DescribeNotJson { describe, source }),
    };
    verify_describe(&parsed, kind).map_err(|problem| PreflightError::Description { describe, problem })
}

fn verify_describe(describe: &Describe, kind: &str) -> Result<(), DescriptionError> {
    if describe.kind != kind {
        return Err(DescriptionError::WrongKind {
            found: describe.kind.clone(),
            expected: kind.to_owned(),
        });
    }
    let missing: Vec<&'static str> = REQUIRED_ENTRY_POINTS
        .iter()
        .copied()
        .filter(|e| !describe.entry_points.iter().any(|have| have == e))
        .collect();
    if !missing.is_empty() {
        return Err(DescriptionError::MissingEntryPoints {
            listed: describe.entry_points.clone(),
            missing,
        });
    }
    let has_job_types = match &describe.job_types {
        serde_json::Value::Array(items) => !items.is_empty(),
        serde_json::Value::Object(items) => !items.is_empty(),
        _ => false,
    };
    if !has_job_types {
        return Err(DescriptionError::NoJobTypes);
    }
    Ok(())
}

async fn check_command(worker: &WorkerSpec, argv: &[String], timeout: Duration) -> Result<(), PreflightError> {
    let Some(program) = argv.first() else {
        return Err(PreflightError::EmptyCheck);
    };
    process::find_program(program, worker.cwd.as_deref(), path_of(worker)).map_err(|source| {
        PreflightError::CheckProgram {
            argv: argv.to_vec(),
            source,
        }
    })?;
    let cmd = launch::aux_command(worker, argv).ok_or(PreflightError::EmptyCheck)?;
    let output = process::run_bounded(cmd, timeout)
        .await
        .map_err(|source| PreflightError::CheckDidNotRun {
            argv: argv.to_vec(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    let detail = if output.stderr.is_empty() {
        &output.stdout
    } else {
        &output.stderr
    };
    Err(PreflightError::CheckFailed {
        argv: argv.to_vec(),
        exit: ExitInfo::from_status(output.status),
        output: last_line(detail),
    })
}

/// The last non-empty line of a command's output, trimmed, if there is one.
fn last_line(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|line| line.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn describe(json: &str) -> Describe {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_complete_description_passes() {
        let d = describe(
            r#"{"kind":"sdxl","entry_points":["run","start","serve","launch"],"queue":"sdxl_queue","job_types":["sdxl_image_fast","sdxl_image_high"]}"#,
        );
        assert_eq!(verify_describe(&d, "sdxl"), Ok(()));
    }

    #[test]
    fn missing_entry_points_are_named() {
        let d = describe(r#"{"kind":"sdxl","entry_points":["run","start"],"job_types":["x"]}"#);
        let err = verify_describe(&d, "sdxl").unwrap_err();
        assert_eq!(
            err,
            DescriptionError::MissingEntryPoints {
                listed: vec!["run".into(), "start".into()],
                missing: vec!["serve", "launch"],
            }
        );
        assert!(err.to_string().contains("missing serve, launch"), "{err}");
    }

    #[test]
    fn a_wrong_kind_or_no_job_types_fail() {
        let d = describe(r#"{"kind":"wan","entry_points":["run","start","serve","launch"],"job_types":["x"]}"#);
        assert!(verify_describe(&d, "sdxl").unwrap_err().to_string().contains("\"wan\""));
        let d = describe(r#"{"kind":"sdxl","entry_points":["run","start","serve","launch"]}"#);
        assert_eq!(verify_describe(&d, "sdxl"), Err(DescriptionError::NoJobTypes));
    }

    #[tokio::test]
    async fn check_all_gives_each_failure_with_its_causes() {
        let toml = r#"
[orchestrator]
worker_bin = "/no/such/easel"

[[workers]]
name = "fine"
command = ["sh", "-c", "true"]
port = 27101

[[workers]]
name = "checked"
command = ["sh", "-c", "true"]
port = 27102
check = ["sh", "-c", "echo starting; echo CUDA not found >&2; exit 2"]

[[workers]]
name = "missing"
command = ["no-such-program-xyz"]
port = 27103

[[workers]]
name = "builtin"
kind = "sdxl"
"#;
        let config = Config::from_toml(toml, crate::config::Origin::Embedded).unwrap();
        let results = check_all(&config).await;
        let reason = |name: &str| match results.iter().find(|(n, _)| n == name) {
            Some((_, Err(reason))) => reason.to_string(),
            Some((_, Ok(()))) => String::new(),
            None => panic!("no result for {name}"),
        };
        assert_eq!(reason("fine"), "");
        assert_eq!(
            reason("checked"),
            "check `sh -c echo starting; echo CUDA not found >&2; exit 2` exited with code 2: CUDA not found"
        );
        assert!(
            reason("missing").contains("\"no-such-program-xyz\" not found in PATH"),
            "{}",
            reason("missing")
        );
        if std::env::var_os(launch::WORKER_BIN_ENV).is_some() {
            return; // the environment overrides worker_bin: the built-in case is not ours to set up
        }
        let builtin = reason("builtin");
        assert!(
            builtin
                .starts_with("the worker executable cannot run (set [orchestrator] worker_bin or EASEL_WORKER_BIN): "),
            "{builtin}"
        );
        assert!(builtin.ends_with("/no/such/easel does not exist"), "{builtin}");
        let Some((_, Err(Chain(PreflightError::WorkerBin { source })))) = results.iter().find(|(n, _)| n == "builtin")
        else {
            panic!("builtin: {builtin}");
        };
        assert!(
            matches!(source, crate::process::ProgramError::Missing { .. }),
            "{source:?}"
        );
    }

    #[test]
    fn the_worker_of_a_gpu_the_host_lacks_fails_and_says_what_was_found() {
        let slot = |gpu| GpuSlot {
            table: "sdxl".into(),
            gpu,
            offset: 0,
        };
        assert!(check_gpu(&slot(1), Ok(Gpus::fixed(2))).is_ok());
        let err = check_gpu(&slot(2), Ok(Gpus::fixed(2))).unwrap_err().to_string();
        assert_eq!(
            err,
            "its GPU cuda:2 is not on this host: found 2 NVIDIA GPU(s) (EASEL_GPUS=2)"
        );
        let none = easel_config::gpu::discover(std::path::Path::new("/no/such/root"), &|_| None).unwrap();
        let err = check_gpu(&slot(0), Ok(none)).unwrap_err().to_string();
        assert!(
            err.starts_with("its GPU cuda:0 is not on this host: no NVIDIA GPU found (looked in /no/such/root/proc"),
            "{err}"
        );
        assert!(err.contains("to run on the CPU instead, remove `gpus`"), "{err}");
    }

    #[test]
    fn last_line_skips_blank_lines() {
        assert_eq!(last_line(b"a\n  boom \n\n").as_deref(), Some("boom"));
        assert_eq!(last_line(b""), None);
    }
}
