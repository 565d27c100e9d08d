//! Why this exists: the suite's real processes — a `redis-server` with AOF on (restartable on
//! the same port and data), and `easel worker sdxl run` processes (killable, restartable, each
//! with its own data dir and log) — started, signalled and ended only by their own pid.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::free_port;

/// The easel binary under test: `EASEL_CHAOS_BIN` (the release build, from scripts/chaos.sh)
/// or the one Cargo built for this test.
pub fn easel_bin() -> PathBuf {
    std::env::var_os("EASEL_CHAOS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_easel")))
}

/// Sends `sig` (`TERM`, `KILL`) to `pid`.
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// A Redis server on a fixed port with an append-only file in `dir`.
pub struct Redis {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Redis {
    /// Starts Redis on a free port (AOF on, fsync every write).
    pub async fn start(dir: &Path) -> Self {
        let mut r = Self {
            port: free_port(),
            dir: dir.join("redis"),
            child: None,
        };
        std::fs::create_dir_all(&r.dir).unwrap();
        r.up().await;
        r
    }

    /// Where a server will be, without starting it (scenario e).
    pub fn planned(dir: &Path) -> Self {
        let r = Self {
            port: free_port(),
            dir: dir.join("redis"),
            child: None,
        };
        std::fs::create_dir_all(&r.dir).unwrap();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on its port and data, and waits until it answers.
    pub async fn up(&mut self) {
        let log = std::fs::File::create(self.dir.join("redis.log")).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
            .arg(&self.dir)
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        self.child = Some(child);
        let start = Instant::now();
        while self.client().await.is_none() {
            assert!(start.elapsed() < Duration::from_secs(20), "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server: gracefully (SIGTERM, waits) or by SIGKILL.
    pub fn down(&mut self, graceful: bool) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), if graceful { "TERM" } else { "KILL" });
            let _ = c.wait();
        }
    }

    /// A connection, or `None` while the server does not answer.
    pub async fn client(&self) -> Option<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut c = tokio::time::timeout(Duration::from_secs(2), client.get_multiplexed_async_connection())
            .await
            .ok()?
            .ok()?;
        let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut c).await;
        pong.ok().map(|_| c)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.down(false);
    }
}

/// One worker process.
pub struct Worker {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

/// The worker processes of one scenario, sharing an environment.
pub struct Workers {
    dir: PathBuf,
    env: Vec<(String, String)>,
    pub procs: Vec<Worker>,
    /// Exits the suite did not cause (non-zero status without a kill from us), with their logs.
    pub crashes: Vec<String>,
    starts: u32,
}

impl Workers {
    pub fn new(dir: &Path, env: Vec<(String, String)>) -> Self {
        Self {
            dir: dir.to_path_buf(),
            env,
            procs: Vec::new(),
            crashes: Vec::new(),
            starts: 0,
        }
    }

    fn spawn(&mut self, i: usize) -> Worker {
        self.starts += 1;
        let port = free_port();
        let log = self.dir.join(format!("w{i}-{}.log", self.starts));
        let mut c = Command::new(easel_bin());
        c.args(["worker", "sdxl", "run"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("EASEL_DATA_DIR", self.dir.join(format!("w{i}")))
            .env("EASEL_WORKER_NAME", format!("w{i}"))
            .env("WORKER_PORT", port.to_string())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = c.spawn().expect("spawn easel worker");
        Worker { child, port, log }
    }

    /// Starts `n` workers.
    pub fn start(&mut self, n: usize) {
        for i in 0..n {
            let w = self.spawn(i);
            self.procs.push(w);
        }
    }

    /// Notes workers that exited by themselves.
    pub fn check(&mut self) {
        for w in &mut self.procs {
            if let Ok(Some(status)) = w.child.try_wait() {
                let log = std::fs::read_to_string(&w.log).unwrap_or_default();
                self.crashes.push(format!("exited with {status}: {}", tail(&log)));
            }
        }
    }

    /// SIGKILLs worker `i` and starts it again at once (same data dir).
    pub fn kill_and_restart(&mut self, i: usize) {
        self.check();
        let w = &mut self.procs[i];
        let _ = w.child.kill();
        let _ = w.child.wait();
        self.procs[i] = self.spawn(i);
    }

    /// Waits until every worker answers `/readyz` 200, or `limit` passes.
    pub async fn wait_ready(&self, limit: Duration) -> bool {
        let start = Instant::now();
        for w in &self.procs {
            while !ready(w.port).await {
                if start.elapsed() > limit {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        true
    }

    /// SIGTERMs every worker; one that does not exit 0 within `limit` is a crash (then killed).
    pub async fn stop(&mut self, limit: Duration) {
        self.check();
        for w in &self.procs {
            signal(w.child.id(), "TERM");
        }
        let start = Instant::now();
        for w in &mut self.procs {
            loop {
                match w.child.try_wait() {
                    Ok(Some(s)) if s.success() => break,
                    Ok(Some(s)) => {
                        let log = std::fs::read_to_string(&w.log).unwrap_or_default();
                        self.crashes.push(format!("SIGTERM exit {s}: {}", tail(&log)));
                        break;
                    }
                    _ if start.elapsed() > limit => {
                        let _ = w.child.kill();
                        let _ = w.child.wait();
                        self.crashes.push(format!("ignored SIGTERM for {limit:?}"));
                        break;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
        self.procs.clear();
        for log in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(log.path()).unwrap_or_default();
            if text.contains("panicked") {
                self.crashes
                    .push(format!("panic in {}: {}", log.path().display(), tail(&text)));
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for w in &mut self.procs {
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
    }
}

/// Whether the worker on `port` answers `/readyz` with 200.
pub async fn ready(port: u16) -> bool {
    status(port, "/readyz").await == Some(200)
}

/// The HTTP status of `GET path` on the worker's port.
pub async fn status(port: u16, path: &str) -> Option<u16> {
    let url = format!("http://127.0.0.1:{port}{path}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    client.get(url).send().await.ok().map(|r| r.status().as_u16())
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

impl Workers {
    /// Worker `i`'s pid.
    pub fn pid(&self, i: usize) -> u32 {
        self.procs[i].child.id()
    }

    /// Waits up to `limit` for worker `i` to exit; its exit code (`None`: still running, killed).
    pub async fn wait_exit(&mut self, i: usize, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        let w = &mut self.procs[i];
        loop {
            if let Ok(Some(s)) = w.child.try_wait() {
                return s.code();
            }
            if start.elapsed() > limit {
                let _ = w.child.kill();
                let _ = w.child.wait();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits for worker `i` (sent SIGTERM by the caller) to exit 0, then starts it again; a
    /// worker that does not exit 0 within `limit` is a crash.
    pub async fn restart_after_exit(&mut self, i: usize, limit: Duration) {
        match self.wait_exit(i, limit).await {
            Some(0) => {}
            other => self.crashes.push(format!("worker {i} after SIGTERM: exit {other:?}")),
        }
        self.procs[i] = self.spawn(i);
    }
}
