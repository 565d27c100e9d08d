//! Why this exists: process hygiene in one place. Every process the orchestrator starts
//! (workers, preflight and readiness commands) leads its own process group, so that one
//! signal reaches everything it spawned; and on Linux it gets SIGTERM the moment the
//! orchestrator dies (`PR_SET_PDEATHSIG`). The `watchdog` module covers what that
//! misses (grandchildren, other Unixes).
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that spawned the child ends, so spawns must
//! happen on threads that live as long as the orchestrator (the runtime's own threads do;
//! never `spawn_blocking`).
//!
//! Liveness of a group is read from `/proc`, not from `kill(-pgid, 0)`: where PID 1 does
//! not reap orphans (containers, micro-VMs), dead members linger as zombies and `kill`
//! would call them alive.

use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use rustix::process::{Pid, Signal};

pub(crate) use rustix::process::Signal as GroupSignal;

mod error;

pub use error::{CommandError, ProgramError, SpawnError};

/// A command that starts in its own process group and dies with the orchestrator.
pub(crate) fn command(program: &Path, args: &[String]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).stdin(Stdio::null()).process_group(0);
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs between fork and exec and only makes raw system calls
    // (prctl, getppid) and builds an error from an errno, none of which allocate or lock.
    unsafe {
        cmd.pre_exec(move || die_with_parent(parent));
    }
    cmd
}

/// Runs `cmd` (built by [`command`]) to completion within `timeout`, capturing its
/// output; on timeout its whole group is killed.
pub(crate) async fn run_bounded(
    mut cmd: tokio::process::Command,
    timeout: std::time::Duration,
) -> Result<std::process::Output, CommandError> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let child = cmd.spawn().map_err(|source| CommandError::Start { source })?;
    let pgid = child.id();
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(source)) => Err(CommandError::Wait { source }),
        Err(_) => {
            if let Some(pgid) = pgid {
                let _ = signal_group(pgid, Signal::KILL);
            }
            Err(CommandError::TimedOut { timeout })
        }
    }
}

/// In the child, before exec: SIGTERM when the orchestrator dies; fail the spawn if it
/// already has (the child would otherwise be an orphan from its first instruction).
fn die_with_parent(parent: Pid) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    rustix::process::set_parent_process_death_signal(Some(Signal::TERM))?;
    if rustix::process::getppid() != Some(parent) {
        return Err(io::Error::from_raw_os_error(rustix::io::Errno::SRCH.raw_os_error()));
    }
    Ok(())
}

/// Sends `signal` to the process group `pgid`. `Ok(false)`: the group no longer exists.
pub(crate) fn signal_group(pgid: u32, signal: Signal) -> io::Result<bool> {
    let Some(pid) = i32::try_from(pgid).ok().and_then(Pid::from_raw) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid process group {pgid}"),
        ));
    };
    if pid.is_init() {
        // kill(-1, ...) would signal every process we may signal: never.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to signal process group 1",
        ));
    }
    match rustix::process::kill_process_group(pid, signal) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::SRCH) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether any live (non-zombie) process is left in the group `pgid`.
pub(crate) fn group_alive(pgid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        if let Ok(entries) = std::fs::read_dir("/proc") {
            return entries.flatten().any(|entry| {
                let stat = entry
                    .file_name()
                    .to_str()
                    .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok());
                stat.as_deref()
                    .and_then(parse_stat)
                    .is_some_and(|(state, pgrp)| pgrp == pgid && !is_dead(state))
            });
        }
    }
    let Some(pid) = i32::try_from(pgid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    rustix::process::test_kill_process_group(pid).is_ok()
}

/// Whether the single process `pid` is alive (not gone, not a zombie).
pub fn process_alive(pid: u32) -> bool {
    if Path::new("/proc/self/stat").exists() {
        return std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .as_deref()
            .and_then(parse_stat)
            .is_some_and(|(state, _)| !is_dead(state));
    }
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .is_some_and(|pid| rustix::process::test_kill_process(pid).is_ok())
}

fn is_dead(state: char) -> bool {
    matches!(state, 'Z' | 'X' | 'x')
}

/// `(state, pgrp)` from a `/proc/<pid>/stat` line (the command may contain spaces and ')').
fn parse_stat(stat: &str) -> Option<(char, u32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// Whether something already listens on `127.0.0.1:port` (a worker from an earlier run
/// that would answer our readiness probe and double-consume the queue).
pub(crate) fn port_in_use(port: u16) -> bool {
    match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
        Ok(_) => false,
        Err(e) => e.kind() == io::ErrorKind::AddrInUse,
    }
}

/// Resolves `program` as exec would: a path (relative to `cwd`) or a name in `path_var`.
pub(crate) fn find_program(program: &str, cwd: Option<&Path>, path_var: Option<&str>) -> Result<PathBuf, ProgramError> {
    if program.contains('/') {
        let path = match cwd {
            Some(cwd) if Path::new(program).is_relative() => cwd.join(program),
            _ => PathBuf::from(program),
        };
        return if is_executable(&path) {
            Ok(path)
        } else if path.exists() {
            Err(ProgramError::NotExecutable { path })
        } else {
            Err(ProgramError::Missing { path })
        };
    }
    let path_var = path_var
        .map(str::to_owned)
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    std::env::split_paths(&path_var)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
        .ok_or_else(|| ProgramError::NotInPath {
            program: program.to_owned(),
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_even_with_odd_command_names() {
        let stat = "4242 (my (worker) x) S 1 4240 4240 0 -1 4194560 100";
        assert_eq!(parse_stat(stat), Some(('S', 4240)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn refuses_to_signal_process_group_one() {
        assert!(signal_group(1, Signal::TERM).is_err());
        assert!(signal_group(0, Signal::TERM).is_err());
    }

    #[test]
    fn finds_programs_in_path_and_explains_missing_ones() {
        assert!(find_program("sh", None, None).is_ok());
        let err = find_program("no-such-program-xyz", None, None).unwrap_err();
        assert_eq!(
            err,
            ProgramError::NotInPath {
                program: "no-such-program-xyz".into()
            }
        );
        assert!(
            err.to_string().contains("\"no-such-program-xyz\" not found in PATH"),
            "{err}"
        );
        let err = find_program("./nope", Some(Path::new("/tmp")), None).unwrap_err();
        assert!(err.to_string().contains("/tmp/./nope does not exist"), "{err}");
        let plain = tempfile::NamedTempFile::new().unwrap();
        let err = find_program(&plain.path().to_string_lossy(), None, None).unwrap_err();
        assert!(matches!(err, ProgramError::NotExecutable { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_bounded_command_that_runs_too_long_is_killed_and_says_so() {
        let cmd = command(Path::new("sleep"), &["5".to_owned()]);
        let err = run_bounded(cmd, std::time::Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(err, CommandError::TimedOut { .. }), "{err:?}");
        assert!(err.to_string().contains("still running after 100ms; killed"), "{err}");
        let missing = command(Path::new("/no/such/program"), &[]);
        let err = run_bounded(missing, std::time::Duration::from_secs(5))
            .await
            .unwrap_err();
        let shown = crate::Chain(&err).to_string();
        assert!(shown.starts_with("cannot start it: "), "{shown}");
    }

    #[test]
    fn our_own_process_is_alive_and_its_group_too() {
        let me = std::process::id();
        assert!(process_alive(me));
        let pgid = rustix::process::getpgrp().as_raw_nonzero().get() as u32;
        assert!(group_alive(pgid));
    }
}
