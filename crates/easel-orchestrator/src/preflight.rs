//! Why this exists: a worker that cannot work should be reported before anything
//! starts, with the reason, instead of crash-looping. The Python orchestrator pinned
//! torch versions and grepped worker source; Easel asks the worker itself.
//!
//! Checks, in order (the first failure is the reason): the working directory exists; a
//! built-in kind is known, its executable exists and `worker <kind> describe --json` lists
//! the kind, all four entry points and its job types; an external program is found; the
//! optional `check` command exits 0. Each command runs within the preflight timeout.

use std::time::Duration;

use serde::Deserialize;

use crate::config::{Config, Launch, WorkerSpec, BUILTIN_KINDS};
use crate::launch::{self, Launcher};
use crate::process;

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
/// each worker's name with `Err(reason)` if it failed.
pub async fn check_all(config: &Config) -> Vec<(String, Result<(), String>)> {
    let launcher = Launcher::for_config(config);
    let mut results = Vec::new();
    for worker in config.start_order() {
        let verdict = check(worker, &launcher, config.orchestrator.preflight_timeout).await;
        results.push((worker.name.clone(), verdict));
    }
    results
}

/// Runs every check for `worker`; `Err` is the reason, for people.
pub(crate) async fn check(worker: &WorkerSpec, launcher: &Launcher, timeout: Duration) -> Result<(), String> {
    if let Some(cwd) = &worker.cwd {
        if !cwd.is_dir() {
            return Err(format!("cwd {} is not a directory", cwd.display()));
        }
    }
    match worker.launch() {
        Launch::Builtin { kind, .. } => check_builtin(worker, &kind, launcher, timeout).await?,
        Launch::External { program, .. } => {
            process::find_program(
                &program,
                worker.cwd.as_deref(),
                worker.env.get("PATH").map(String::as_str),
            )
            .map_err(|e| e.to_string())?;
        }
    }
    if let Some(argv) = &worker.check {
        check_command(worker, argv, timeout).await?;
    }
    Ok(())
}

async fn check_builtin(worker: &WorkerSpec, kind: &str, launcher: &Launcher, timeout: Duration) -> Result<(), String> {
    let worker_bin = &launcher.worker_bin;
    if !BUILTIN_KINDS.contains(&kind) {
        return Err(format!(
            "unknown kind {kind:?}; built-in kinds: {} (for another program use command = [...])",
            BUILTIN_KINDS.join(", ")
        ));
    }
    let bin_text = worker_bin.to_string_lossy();
    process::find_program(&bin_text, None, None).map_err(|e| {
        format!(
            "the worker executable cannot run: {e} (set [orchestrator] worker_bin or {})",
            launch::WORKER_BIN_ENV
        )
    })?;
    let shown = format!("`{} worker {kind} describe --json`", worker_bin.display());
    let output = process::run_bounded(launch::describe_command(worker, kind, launcher), timeout)
        .await
        .map_err(|e| format!("{shown}: {}", crate::Chain(e)))?;
    if !output.status.success() {
        return Err(format!(
            "{shown} {}{}",
            crate::restart::ExitInfo::from_status(output.status),
            last_line(&output.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let describe: Describe =
        serde_json::from_str(stdout.trim()).map_err(|e| format!("{shown} did not print the expected JSON: {e}"))?;
    verify_describe(&describe, kind).map_err(|e| format!("{shown} {e}"))
}

fn verify_describe(describe: &Describe, kind: &str) -> Result<(), String> {
    if describe.kind != kind {
        return Err(format!("describes kind {:?}, not {kind:?}", describe.kind));
    }
    let missing: Vec<&str> = REQUIRED_ENTRY_POINTS
        .iter()
        .copied()
        .filter(|e| !describe.entry_points.iter().any(|have| have == e))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "lists entry points [{}]: missing {} (every worker must answer to {})",
            describe.entry_points.join(", "),
            missing.join(", "),
            REQUIRED_ENTRY_POINTS.join(", ")
        ));
    }
    let has_job_types = match &describe.job_types {
        serde_json::Value::Array(items) => !items.is_empty(),
        serde_json::Value::Object(items) => !items.is_empty(),
        _ => false,
    };
    if !has_job_types {
        return Err("lists no job_types".to_owned());
    }
    Ok(())
}

async fn check_command(worker: &WorkerSpec, argv: &[String], timeout: Duration) -> Result<(), String> {
    let shown = format!("check `{}`", argv.join(" "));
    let program = argv.first().map(String::as_str).unwrap_or_default();
    process::find_program(
        program,
        worker.cwd.as_deref(),
        worker.env.get("PATH").map(String::as_str),
    )
    .map_err(|e| format!("{shown}: {e}"))?;
    let cmd = launch::aux_command(worker, argv).ok_or_else(|| format!("{shown}: empty command"))?;
    let output = process::run_bounded(cmd, timeout)
        .await
        .map_err(|e| format!("{shown}: {}", crate::Chain(e)))?;
    if output.status.success() {
        return Ok(());
    }
    let detail = if output.stderr.is_empty() {
        &output.stdout
    } else {
        &output.stderr
    };
    Err(format!(
        "{shown} {}{}",
        crate::restart::ExitInfo::from_status(output.status),
        last_line(detail)
    ))
}

/// `": <last non-empty line>"` of a command's output, or nothing.
fn last_line(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    match text.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(line) => format!(": {}", line.trim()),
        None => String::new(),
    }
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
        assert!(err.contains("missing serve, launch"), "{err}");
    }

    #[test]
    fn a_wrong_kind_or_no_job_types_fail() {
        let d = describe(r#"{"kind":"wan","entry_points":["run","start","serve","launch"],"job_types":["x"]}"#);
        assert!(verify_describe(&d, "sdxl").unwrap_err().contains("\"wan\""));
        let d = describe(r#"{"kind":"sdxl","entry_points":["run","start","serve","launch"]}"#);
        assert!(verify_describe(&d, "sdxl").unwrap_err().contains("no job_types"));
    }

    #[test]
    fn last_line_skips_blank_lines() {
        assert_eq!(last_line(b"a\nboom\n\n"), ": boom");
        assert_eq!(last_line(b""), "");
    }
}
