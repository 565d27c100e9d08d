//! `easel up` and `easel status` as a user runs them: a bad config is refused with its key
//! and line; `easel orchestrate` (the alias) supervises the real built-in SDXL worker, which
//! `easel submit --wait` then reaches and gets an image from; `easel status` shows it
//! running; SIGTERM stops everything and exits 0. A `gpus` table runs one worker per GPU on
//! the shared queue — here with `EASEL_GPUS=2` standing in for two GPUs and the fake generator
//! (which never opens a device) standing in for the model, so each worker runs on the CPU
//! with exactly the command line it would have on a GPU host.
//! (Restart, FATAL, signal and orphan behaviour is tested with fake workers in
//! crates/easel-orchestrator/tests/supervision.rs.)

#[path = "../../easel-worker/tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::free_port;

const EASEL: &str = env!("CARGO_BIN_EXE_easel");
/// Generous: a debug build on two busy cores.
const DEADLINE: Duration = Duration::from_secs(120);

/// The variables that would point the worker at real services or another config.
const SERVICE_VARS: &[&str] = &[
    "EASEL_CONFIG",
    "EASEL_MODEL",
    "EASEL_DATA_DIR",
    "EASEL_QUEUE_URL",
    "EASEL_STORAGE",
    "EASEL_WORKER_BIN",
    "EASEL_ORCHESTRATOR_ADDR",
    "EASEL_GPUS",
    "EASEL_WORKER_NAME",
    "WORKER_PORT",
    "SUPABASE_URL",
    "SUPABASE_SERVICE_KEY",
    "UPSTASH_REDIS_REST_URL",
    "UPSTASH_REDIS_REST_TOKEN",
];

fn easel(dir: &Path) -> Command {
    let mut cmd = Command::new(EASEL);
    // The data home comes from XDG_DATA_HOME here, never from the working directory.
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .env("XDG_DATA_HOME", dir.join("xdg"));
    for var in SERVICE_VARS {
        cmd.env_remove(var);
    }
    cmd
}

fn run(dir: &Path, args: &[&str]) -> Output {
    easel(dir).args(args).output().expect("easel runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Kills the orchestrator if a test fails half-way.
struct Orchestrator(Child);

impl Orchestrator {
    /// SIGTERM, then its exit status once it has stopped (bounded by [`DEADLINE`]).
    fn terminate(&mut self, log: &dyn Fn() -> String) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(exit) = self.0.try_wait().unwrap() {
                return exit;
            }
            assert!(Instant::now() < end, "easel up did not stop\n{}", log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Orchestrator {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn a_config_with_an_unknown_key_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("easel.toml"),
        "[[workers]]\nname = \"sdxl\"\nkind = \"sdxl\"\nprot = 7859\n",
    )
    .unwrap();
    let out = run(dir.path(), &["up", "--check"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("easel.toml") && stderr.contains("line 4") && stderr.contains("prot"),
        "{stderr}"
    );
}

#[test]
fn the_default_config_is_printed_and_passes_its_check() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["up", "--print-default-config"]);
    assert!(text(&out.stdout).contains("kind = \"sdxl\""));
    let out = run(dir.path(), &["up", "--check"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("ok      sdxl"), "{}", text(&out.stdout));
    // The preflight says what this host has, as the child sees it (EASEL_GPUS removed).
    let host = easel_config::gpu::discover(Path::new("/"), &|name| {
        (name != "EASEL_GPUS").then(|| std::env::var(name).ok()).flatten()
    })
    .unwrap();
    let line = format!("gpus: {host}\n");
    assert!(text(&out.stdout).contains(&line), "{line}{}", text(&out.stdout));
    if host.count == 0 {
        assert!(
            line.starts_with(
                "gpus: no NVIDIA GPU found (looked in /proc/driver/nvidia/gpus and for /dev/nvidia[0-9]*)"
            ),
            "{line}"
        );
    }
}

#[test]
fn orchestrate_runs_the_sdxl_worker_which_serves_submit_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let status_port = free_port();
    let config = format!(
        "[orchestrator]\nlisten = \"127.0.0.1:{status_port}\"\n\n[[workers]]\nname = \"sdxl\"\nkind = \"sdxl\"\nport = {}\nstop_grace = \"20s\"\n",
        free_port()
    );
    std::fs::write(dir.path().join("easel.toml"), config).unwrap();
    let log = std::fs::File::create(dir.path().join("up.log")).unwrap();
    let child = easel(dir.path())
        .arg("orchestrate")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut orchestrator = Orchestrator(child);
    let up_log = || std::fs::read_to_string(dir.path().join("up.log")).unwrap_or_default();

    let end = Instant::now() + DEADLINE;
    let status = loop {
        let out = run(dir.path(), &["status", "--json"]);
        let report: Option<serde_json::Value> = serde_json::from_slice(&out.stdout).ok();
        if let Some(report) = report.filter(|r| r["workers"][0]["state"] == "running") {
            break report;
        }
        assert!(Instant::now() < end, "the worker never became ready\n{}", up_log());
        std::thread::sleep(Duration::from_millis(100));
    };
    let worker_pid = status["workers"][0]["pid"].as_u64().unwrap();
    let table = text(&run(dir.path(), &["status"]).stdout);
    assert!(table.contains("sdxl") && table.contains("running"), "{table}");

    let out = run(
        dir.path(),
        &[
            "submit",
            "--prompt",
            "a lighthouse",
            "--seed",
            "1",
            "--wait",
            "--timeout",
            "100",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}\n{}", text(&out.stderr), up_log());
    assert!(stdout.contains("\"completed\"") && stdout.contains("0.png"), "{stdout}");

    assert_eq!(orchestrator.terminate(&up_log).code(), Some(0), "{}", up_log());
    let stat = std::fs::read_to_string(format!("/proc/{worker_pid}/stat")).unwrap_or_default();
    assert!(stat.is_empty() || stat.contains(") Z "), "the worker exited: {stat}");
    assert!(up_log().contains("[sdxl] "), "worker output is prefixed:\n{}", up_log());
}

/// A port whose successor is free too (a `gpus` table of two takes both).
fn two_free_ports() -> u16 {
    loop {
        let base = free_port();
        if base < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", base + 1)).is_ok() {
            return base;
        }
    }
}

/// The body of `GET http://127.0.0.1:<port><path>` (HTTP/1.0: the server closes).
fn get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

#[test]
fn a_gpus_table_runs_one_worker_per_gpu_each_taking_jobs_from_the_shared_queue() {
    let dir = tempfile::tempdir().unwrap();
    let status_port = free_port();
    let base = two_free_ports();
    let config = format!(
        "[worker]\ngenerator = \"fake\"\nfake_delay = \"3s\"\npoll = \"100ms\"\n\n\
         [orchestrator]\nlisten = \"127.0.0.1:{status_port}\"\n\n\
         [[workers]]\nname = \"sdxl\"\nkind = \"sdxl\"\ngpus = \"all\"\nport = {base}\nstop_grace = \"20s\"\n"
    );
    std::fs::write(dir.path().join("easel.toml"), config).unwrap();

    // No GPU: `gpus = "all"` is refused, saying so and how to run on the CPU.
    let out = easel(dir.path())
        .args(["up", "--check"])
        .env("EASEL_GPUS", "0")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("[[workers]] #1 (name = \"sdxl\"): gpus = \"all\", but no NVIDIA GPU (EASEL_GPUS=0)")
            && stderr.contains("to run on the CPU instead, remove `gpus`"),
        "{stderr}"
    );
    // Two: both workers pass preflight, and the count is reported with where it came from.
    let out = easel(dir.path())
        .args(["up", "--check"])
        .env("EASEL_GPUS", "2")
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("gpus: found 2 NVIDIA GPU(s) (EASEL_GPUS=2)"),
        "{stdout}"
    );
    assert!(stdout.contains("ok      sdxl-gpu0\nok      sdxl-gpu1\n"), "{stdout}");

    let log = std::fs::File::create(dir.path().join("up.log")).unwrap();
    let child = easel(dir.path())
        .arg("up")
        .env("EASEL_GPUS", "2")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut orchestrator = Orchestrator(child);
    let up_log = || std::fs::read_to_string(dir.path().join("up.log")).unwrap_or_default();

    // `easel status` reads only [orchestrator]: it runs without EASEL_GPUS, as on a CPU host.
    let end = Instant::now() + DEADLINE;
    let status = loop {
        let out = run(dir.path(), &["status", "--json"]);
        let report: Option<serde_json::Value> = serde_json::from_slice(&out.stdout).ok();
        let running = |r: &serde_json::Value| {
            r["workers"]
                .as_array()
                .is_some_and(|w| w.len() == 2 && w.iter().all(|w| w["state"] == "running"))
        };
        if let Some(report) = report.filter(running) {
            break report;
        }
        assert!(Instant::now() < end, "the workers never became ready\n{}", up_log());
        std::thread::sleep(Duration::from_millis(100));
    };
    for (i, worker) in status["workers"].as_array().unwrap().iter().enumerate() {
        assert_eq!(worker["name"], format!("sdxl-gpu{i}"), "{status}");
        assert_eq!(worker["port"], u64::from(base) + i as u64, "{status}");
        let command = worker["command"].as_str().unwrap_or_default();
        assert!(
            command.ends_with(&format!(" worker sdxl run --device cuda:{i}")),
            "{command}"
        );
    }
    assert!(
        up_log().contains("gpus: found 2 NVIDIA GPU(s) (EASEL_GPUS=2)"),
        "{}",
        up_log()
    );

    // Two jobs at once: the first worker is busy with one for 3s, so the other takes the second.
    let submit = || {
        easel(dir.path())
            .args(["submit", "--prompt", "a lighthouse", "--wait", "--timeout", "100"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let jobs = [submit(), submit()];
    for job in jobs {
        let out = job.wait_with_output().unwrap();
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}{}\n{}", text(&out.stderr), up_log());
        assert!(stdout.contains("\"completed\""), "{stdout}");
    }
    for offset in 0..2 {
        let metrics = get(base + offset, "/metrics");
        assert!(
            metrics.contains("easel_jobs_total{outcome=\"completed\"} 1\n"),
            "the worker on port {} completed one job:\n{metrics}\n{}",
            base + offset,
            up_log()
        );
    }
    let log = up_log();
    for name in ["sdxl-gpu0", "sdxl-gpu1"] {
        assert!(
            log.contains(&format!("worker starting worker.name={name} consumer=\"{name}-")),
            "each worker runs under its own name and consumer id:\n{log}"
        );
    }

    assert_eq!(orchestrator.terminate(&up_log).code(), Some(0), "{}", up_log());
    assert!(
        up_log().contains("[sdxl-gpu0] ") && up_log().contains("[sdxl-gpu1] "),
        "{}",
        up_log()
    );
}
