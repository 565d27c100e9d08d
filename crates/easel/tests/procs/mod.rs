//! Why this exists: the CLI process tests (`worker.rs`, `jobs.rs`, `console.rs`) start `easel` the same
//! way — in a temporary directory, with a clean worker environment and the data home under it
//! — and keep each worker's log for the failure message.
// Each test binary that includes this module uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::{free_port, DEADLINE};

const EASEL: &str = env!("CARGO_BIN_EXE_easel");

/// Variables of the parent environment that would change what a worker connects to.
const INHERITED: [&str; 11] = [
    "SUPABASE_URL",
    "SUPABASE_SERVICE_KEY",
    "UPSTASH_REDIS_REST_URL",
    "UPSTASH_REDIS_REST_TOKEN",
    "WORKER_PORT",
    "EASEL_QUEUE_URL",
    "EASEL_DATA_DIR",
    "EASEL_CONFIG",
    "EASEL_MODEL",
    "EASEL_STORAGE",
    "EASEL_ADMIN_TOKEN",
];

/// `easel <args>` in `dir` with a clean worker environment plus `env`.
pub fn easel(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Command {
    let mut c = Command::new(EASEL);
    c.args(args)
        .current_dir(dir)
        .env("EASEL_DATA_DIR", dir.join("data"))
        .env("EASEL_LOG", "info");
    for v in INHERITED.iter().filter(|v| **v != "EASEL_DATA_DIR") {
        c.env_remove(v);
    }
    c.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    c
}

/// A worker process whose log goes to a file (shown when a test fails).
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
    pub port: u16,
}

impl Proc {
    pub fn spawn(dir: &Path, name: &str, args: &[&str], env: &[(&str, String)]) -> Self {
        let port = free_port();
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut env = env.to_vec();
        env.push(("WORKER_PORT", port.to_string()));
        let child = easel(dir, args, &env)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn easel");
        Self { child, log, port }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn wait_ready(&mut self) {
        let start = Instant::now();
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        loop {
            if reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("worker exited with {status} before it was ready:\n{}", self.log());
            }
            assert!(start.elapsed() < DEADLINE, "worker not ready in time:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    pub async fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < DEADLINE, "worker did not exit:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn fake() -> Vec<(&'static str, String)> {
    vec![
        ("EASEL_GENERATOR", "fake".into()),
        ("EASEL_POLL", "50ms".into()),
        ("EASEL_RETRY_BASE", "50ms".into()),
    ]
}
