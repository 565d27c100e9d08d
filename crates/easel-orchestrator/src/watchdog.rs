//! Why this exists: workers must die when the orchestrator dies, even by SIGKILL, and
//! even the processes they spawned (PR_SET_PDEATHSIG reaches only the direct child).
//!
//! Flow: at start the orchestrator spawns a small `/bin/sh` loop in its own process group
//! whose stdin is a pipe from the orchestrator. Each spawned worker group is announced
//! (`add <pgid> <grace>`) and withdrawn once it is gone (`del <pgid>`). When the pipe
//! closes, which the kernel does however the orchestrator ends, the watchdog sends
//! SIGTERM to every group still announced, waits the longest grace, then SIGKILLs them.
//! A clean shutdown withdraws every group first, so the watchdog then has nothing to do.

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// The watchdog loop. `read` returns non-zero at EOF: the orchestrator is gone. It ignores
/// SIGINT/SIGHUP/SIGTERM so that a Ctrl-C meant for the orchestrator cannot remove it.
const SCRIPT: &str = r#"
trap '' INT HUP TERM
groups=""
grace=1
while read -r op pg g; do
  case "$op" in
    add) groups="$groups $pg"; [ "$g" -gt "$grace" ] && grace=$g ;;
    del) kept=""; for x in $groups; do [ "$x" = "$pg" ] || kept="$kept $x"; done; groups=$kept ;;
  esac
done
[ -z "$groups" ] && exit 0
for pg in $groups; do kill -TERM -"$pg" 2>/dev/null; done
sleep "$grace"
for pg in $groups; do kill -KILL -"$pg" 2>/dev/null; done
"#;

/// The handle on the watchdog process.
#[derive(Debug)]
pub(crate) struct Watchdog {
    pipe: Mutex<Option<ChildStdin>>,
    child: Mutex<Option<Child>>,
}

impl Watchdog {
    /// Starts the watchdog process.
    pub(crate) fn start() -> std::io::Result<Self> {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(SCRIPT)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()?;
        let pipe = child.stdin.take();
        Ok(Self {
            pipe: Mutex::new(pipe),
            child: Mutex::new(Some(child)),
        })
    }

    /// From now on, the group `pgid` is killed if the orchestrator dies.
    pub(crate) fn guard(&self, pgid: u32, grace: Duration) {
        let seconds = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        self.send(&format!("add {pgid} {}\n", seconds.max(1)));
    }

    /// The group `pgid` is gone; forget it (its id may be reused).
    pub(crate) fn release(&self, pgid: u32) {
        self.send(&format!("del {pgid}\n"));
    }

    /// Ends the watchdog after a clean shutdown (every group released) and reaps it.
    pub(crate) fn close(&self) {
        drop(self.lock_pipe().take());
        let child = self.child.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut child) = child {
            let _ = child.wait();
        }
    }

    fn send(&self, line: &str) {
        // Lines are shorter than PIPE_BUF: each write is atomic and does not block while
        // the shell keeps reading.
        let mut pipe = self.lock_pipe();
        let failed = pipe.as_mut().is_some_and(|p| p.write_all(line.as_bytes()).is_err());
        if failed {
            tracing::error!(
                "the watchdog process has died: workers will not be cleaned up if the orchestrator is killed"
            );
            *pipe = None;
        }
    }

    fn lock_pipe(&self) -> std::sync::MutexGuard<'_, Option<ChildStdin>> {
        self.pipe.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Watchdog {
    /// Dropping without `close` (an error path, a panic) closes the pipe: the watchdog
    /// then stops whatever is still announced, as if the orchestrator had died.
    fn drop(&mut self) {
        drop(self.lock_pipe().take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::process_alive;
    use std::time::Instant;

    fn wait_until(deadline: Duration, mut done: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        done()
    }

    fn sleeper_in_own_group() -> Child {
        use std::os::unix::process::CommandExt;
        Command::new("sleep").arg("30").process_group(0).spawn().unwrap()
    }

    #[test]
    fn closing_the_pipe_kills_announced_groups_only() {
        let watchdog = Watchdog::start().unwrap();
        let mut announced = sleeper_in_own_group();
        let mut released = sleeper_in_own_group();
        watchdog.guard(announced.id(), Duration::from_millis(100));
        watchdog.guard(released.id(), Duration::from_millis(100));
        watchdog.release(released.id());
        drop(watchdog);
        assert!(wait_until(Duration::from_secs(5), || announced
            .try_wait()
            .unwrap()
            .is_some()));
        assert!(process_alive(released.id()));
        released.kill().unwrap();
        released.wait().unwrap();
    }
}
