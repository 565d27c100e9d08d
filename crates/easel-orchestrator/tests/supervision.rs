//! Supervision with real processes: each test runs the orchestrator on small fake workers
//! (`tests/fixtures/fake_worker.py`) that become ready, exit at startup, crash, ignore
//! SIGTERM or spawn children, and checks what happened to the real processes. Time is
//! controlled through the config (short backoffs and graces); every wait polls against a
//! deadline. Two tests run the orchestrator as a separate process (this test binary,
//! re-executed) so that it can be sent real signals, including SIGKILL.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use easel_orchestrator::config::{Config, Origin};
use easel_orchestrator::process::process_alive;
use easel_orchestrator::status::{StatusReport, WorkerReport};
use easel_orchestrator::{CancellationToken, Handle, LineSink, Orchestrator, Stream, WorkerState};
use rustix::process::{Pid, Signal};

/// Generous: CI's two cores may be busy compiling; a passing test takes far less.
const DEADLINE: Duration = Duration::from_secs(20);
/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(20);
/// Set in the re-executed test binary: the config file of the orchestrator to run.
const CHILD_CONFIG_ENV: &str = "EASEL_TEST_ORCHESTRATOR_CONFIG";

// ---------------------------------------------------------------- helpers

/// Collects workers' output lines as `[name] line`.
#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl LineSink for Lines {
    fn line(&self, worker: &str, _stream: Stream, line: &str) {
        self.0.lock().unwrap().push(format!("[{worker}] {line}"));
    }
}

impl Lines {
    fn contains(&self, wanted: &str) -> bool {
        self.0.lock().unwrap().iter().any(|l| l == wanted)
    }
}

/// A temporary directory with a fake `easel` executable and per-worker event logs.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let env = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        let wrapper = format!("#!/bin/sh\nexec python3 {:?} \"$@\"\n", script().display().to_string());
        std::fs::write(env.fake_bin(), wrapper).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(env.fake_bin(), std::fs::Permissions::from_mode(0o755)).unwrap();
        env
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn fake_bin(&self) -> PathBuf {
        self.path("fake-easel")
    }

    fn log(&self, worker: &str) -> EventLog {
        EventLog(self.path(&format!("{worker}.log")))
    }

    /// `command = [...]` running the fake worker with `flags` and its event log.
    fn command(&self, worker: &str, flags: &[&str]) -> String {
        let mut argv = vec!["python3".to_owned(), script().display().to_string()];
        argv.extend(["--log".to_owned(), self.log(worker).0.display().to_string()]);
        argv.extend(flags.iter().map(|f| f.to_string()));
        format!("command = {argv:?}")
    }

    /// `args = [...]` for a built-in worker (the fake `easel worker <kind> run`).
    fn args(&self, worker: &str, flags: &[&str]) -> String {
        let mut argv = vec!["--log".to_owned(), self.log(worker).0.display().to_string()];
        argv.extend(flags.iter().map(|f| f.to_string()));
        format!("args = {argv:?}")
    }

    fn toml(&self, listen: &str, workers: &str) -> String {
        format!(
            "[orchestrator]\nlisten = {listen:?}\nworker_bin = {:?}\nshutdown_timeout = \"10s\"\npreflight_timeout = \"10s\"\n\n{workers}",
            self.fake_bin().display().to_string()
        )
    }

    fn config(&self, workers: &str) -> Config {
        Config::from_toml(&self.toml("127.0.0.1:0", workers), Origin::Embedded).unwrap()
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake_worker.py")
}

/// A free loopback port, never one this test binary handed out before: the kernel may
/// give a just-released port again, and two workers of one config must differ.
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// The fake worker's event log: `<event> <pid> <unix time>` lines.
struct EventLog(PathBuf);

impl EventLog {
    fn events(&self, kind: &str) -> Vec<(u32, f64)> {
        let text = std::fs::read_to_string(&self.0).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                (parts.next()? == kind).then_some(())?;
                Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
            })
            .collect()
    }

    fn pids(&self, kind: &str) -> Vec<u32> {
        self.events(kind).into_iter().map(|(pid, _)| pid).collect()
    }
}

/// Polls `check` until it holds, or panics with `what` and the last status.
async fn eventually(what: &str, status: impl Fn() -> String, mut check: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if check() {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("timed out waiting for: {what}\nstatus: {}", status());
}

/// An orchestrator running in this test's runtime.
struct Running {
    handle: Handle,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<easel_orchestrator::Result<()>>,
    lines: Arc<Lines>,
}

impl Running {
    fn start(config: Config) -> Self {
        let lines = Arc::new(Lines::default());
        let orchestrator = Orchestrator::new(config).with_output(lines.clone());
        let handle = orchestrator.handle();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(orchestrator.run(shutdown.clone()));
        Self {
            handle,
            shutdown,
            task,
            lines,
        }
    }

    fn worker(&self, name: &str) -> WorkerReport {
        worker(&self.handle.status(), name)
    }

    fn describe(&self) -> String {
        serde_json::to_string_pretty(&self.handle.status()).unwrap()
    }

    async fn wait_state(&self, name: &str, state: WorkerState) -> WorkerReport {
        let reached = || {
            self.handle
                .status()
                .workers
                .iter()
                .any(|w| w.name == name && w.state == state)
        };
        eventually(&format!("{name} {state}"), || self.describe(), reached).await;
        self.worker(name)
    }

    /// Cancels, waits for `run` to return `Ok`; returns the handle and how long it took.
    async fn stop(self) -> (Handle, Duration) {
        let began = Instant::now();
        self.shutdown.cancel();
        let result = tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("run returns")
            .expect("no panic");
        result.expect("a clean stop");
        (self.handle, began.elapsed())
    }
}

fn worker(report: &StatusReport, name: &str) -> WorkerReport {
    report
        .workers
        .iter()
        .find(|w| w.name == name)
        .cloned()
        .unwrap_or_else(|| panic!("no worker {name} in {report:?}"))
}

fn fast_restarts(max_failures: u32) -> String {
    format!(
        "[workers.restart]\ninitial_delay = \"50ms\"\nmax_delay = \"1s\"\nmax_failures = {max_failures}\nfailure_window = \"1m\"\n"
    )
}

// ---------------------------------------------------------------- in-process tests

#[tokio::test]
async fn a_healthy_builtin_worker_runs_prefixes_its_output_and_stops_cleanly() {
    let env = Env::new();
    let port = free_port();
    let config = env.config(&format!(
        "[[workers]]\nname = \"sdxl\"\nkind = \"sdxl\"\nport = {port}\nstop_grace = \"5s\"\n{}\n",
        env.args("sdxl", &[])
    ));
    let running = Running::start(config);
    let report = running.wait_state("sdxl", WorkerState::Running).await;
    let pid = report.pid.expect("a pid");
    assert_eq!(env.log("sdxl").pids("start"), [pid]);
    assert_eq!(report.restarts, 0);
    assert_eq!(report.port, Some(port));
    assert!(report
        .command
        .ends_with(&format!("worker sdxl run --log {}", env.log("sdxl").0.display())));

    let lines = running.lines.clone();
    eventually(
        "prefixed output",
        || running.describe(),
        || lines.contains(&format!("[sdxl] hello from {pid}")),
    )
    .await;

    let addr = running.handle.listen_addr().unwrap().to_string();
    let over_http = easel_orchestrator::fetch_status(&addr).await.unwrap();
    assert_eq!(worker(&over_http, "sdxl").state, WorkerState::Running);
    assert!(over_http.orchestrator.ready);
    let metrics = easel_orchestrator::http::get(&addr, "/metrics", DEADLINE)
        .await
        .unwrap();
    assert!(
        metrics.body.contains("easel_worker_up{worker=\"sdxl\"} 1"),
        "{}",
        metrics.body
    );
    assert_eq!(
        easel_orchestrator::http::get(&addr, "/readyz", DEADLINE)
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        easel_orchestrator::http::get(&addr, "/livez", DEADLINE)
            .await
            .unwrap()
            .status,
        200
    );

    let (handle, _) = running.stop().await;
    let report = worker(&handle.status(), "sdxl");
    assert_eq!(report.state, WorkerState::Stopped);
    assert_eq!(
        report.last_exit.map(|e| e.code),
        Some(Some(0)),
        "SIGTERM handled: exit 0"
    );
    assert_eq!(env.log("sdxl").pids("term"), [pid]);
    assert!(!process_alive(pid));
}

#[tokio::test]
async fn a_worker_that_exits_at_startup_goes_fatal_after_max_failures_with_the_reason() {
    let env = Env::new();
    let config = env.config(&format!(
        "[[workers]]\nname = \"broken\"\n{}\nport = {}\n{}",
        env.command("broken", &["--exit-at-start", "3"]),
        free_port(),
        fast_restarts(3)
    ));
    let running = Running::start(config);
    let report = running.wait_state("broken", WorkerState::Fatal).await;
    let reason = report.reason.clone().unwrap_or_default();
    assert!(reason.contains("3 failures within 1m"), "{reason}");
    assert!(reason.contains("exited with code 3"), "{reason}");
    assert!(
        reason.contains("last output: fatal: cannot load the model (exit 3)"),
        "{reason}"
    );
    assert_eq!(report.restarts, 2);
    assert_eq!(
        env.log("broken").pids("start").len(),
        3,
        "started exactly max_failures times"
    );
    assert_eq!(report.last_exit.map(|e| e.code), Some(Some(3)));
    running.stop().await;
    assert_eq!(env.log("broken").pids("start").len(), 3, "never started again");
}

#[tokio::test]
async fn exit_code_78_is_fatal_at_once() {
    let env = Env::new();
    let config = env.config(&format!(
        "[[workers]]\nname = \"misconfigured\"\n{}\nport = {}\n{}",
        env.command("misconfigured", &["--exit-at-start", "78"]),
        free_port(),
        fast_restarts(5)
    ));
    let running = Running::start(config);
    let report = running.wait_state("misconfigured", WorkerState::Fatal).await;
    let reason = report.reason.unwrap_or_default();
    assert!(
        reason.contains("code 78") && reason.contains("configuration error"),
        "{reason}"
    );
    assert_eq!(env.log("misconfigured").pids("start").len(), 1);
    assert_eq!(report.restarts, 0);
    running.stop().await;
}

#[tokio::test]
async fn a_worker_that_crashes_after_a_while_is_restarted_with_growing_delays() {
    let env = Env::new();
    let config = env.config(&format!(
        "[[workers]]\nname = \"flaky\"\n{}\nport = {}\n\
         [workers.restart]\ninitial_delay = \"100ms\"\nmultiplier = 4.0\njitter = 0.2\nmax_delay = \"10s\"\n\
         max_failures = 10\nstable_after = \"1m\"\n",
        env.command("flaky", &["--crash-after", "0.3"]),
        free_port()
    ));
    let running = Running::start(config);
    let log = env.log("flaky");
    eventually("four starts", || running.describe(), || log.pids("start").len() >= 4).await;

    let starts = log.events("start");
    let crashes = log.events("crash");
    let delays: Vec<f64> = (0..3).map(|i| starts[i + 1].1 - crashes[i].1).collect();
    assert!(delays.windows(2).all(|d| d[1] > d[0]), "delays grow: {delays:?}");
    assert!(
        delays[0] >= 0.08 && delays[1] >= 0.32 && delays[2] >= 1.28,
        "at least the jittered backoff: {delays:?}"
    );
    let report = running.worker("flaky");
    assert!(report.restarts >= 3);
    let last = report.last_exit.expect("a last exit");
    assert_eq!(last.code, Some(1));
    running.stop().await;
}

#[tokio::test]
async fn a_worker_that_ignores_sigterm_is_killed_after_the_grace() {
    let env = Env::new();
    let config = env.config(&format!(
        "[[workers]]\nname = \"stubborn\"\n{}\nport = {}\nstop_grace = \"500ms\"\n",
        env.command("stubborn", &["--ignore-term"]),
        free_port()
    ));
    let running = Running::start(config);
    let pid = running.wait_state("stubborn", WorkerState::Running).await.pid.unwrap();
    let (handle, took) = running.stop().await;
    let report = worker(&handle.status(), "stubborn");
    assert_eq!(report.state, WorkerState::Stopped);
    assert_eq!(report.last_exit.and_then(|e| e.signal), Some(9), "SIGKILLed");
    assert!(took >= Duration::from_millis(500), "waited the grace: {took:?}");
    assert!(took < Duration::from_secs(5), "did not wait much longer: {took:?}");
    assert!(!process_alive(pid));
}

#[tokio::test]
async fn a_worker_that_spawns_a_child_takes_the_child_down_when_stopped() {
    let env = Env::new();
    let config = env.config(&format!(
        "[[workers]]\nname = \"parent\"\n{}\nport = {}\nstop_grace = \"500ms\"\n",
        env.command("parent", &["--spawn-child"]),
        free_port()
    ));
    let running = Running::start(config);
    let pid = running.wait_state("parent", WorkerState::Running).await.pid.unwrap();
    let log = env.log("parent");
    eventually("the child", || running.describe(), || !log.pids("child").is_empty()).await;
    let child = log.pids("child")[0];
    assert!(process_alive(child));
    running.stop().await;
    assert!(!process_alive(pid));
    assert!(
        !process_alive(child),
        "the child (which ignores SIGTERM) died with its worker"
    );
}

#[tokio::test]
async fn a_crashed_workers_children_die_before_it_is_restarted() {
    let env = Env::new();
    let config = env.config(&format!(
        "[[workers]]\nname = \"crasher\"\n{}\nport = {}\n{}",
        env.command("crasher", &["--spawn-child", "--crash-after", "0.3"]),
        free_port(),
        fast_restarts(10)
    ));
    let running = Running::start(config);
    let log = env.log("crasher");
    eventually("a second start", || running.describe(), || log.pids("start").len() >= 2).await;
    let first_child = log.pids("child")[0];
    assert!(
        !process_alive(first_child),
        "no duplicate consumer left from the first run"
    );
    running.stop().await;
}

#[tokio::test]
async fn a_worker_never_ready_is_killed_at_its_start_timeout_and_counted_as_failing() {
    let env = Env::new();
    let config = env.config(&format!(
        "[[workers]]\nname = \"slow\"\n{}\nport = {}\nstart_timeout = \"300ms\"\n{}",
        env.command("slow", &["--no-http"]),
        free_port(),
        fast_restarts(2)
    ));
    let running = Running::start(config);
    let report = running.wait_state("slow", WorkerState::Fatal).await;
    let reason = report.reason.unwrap_or_default();
    assert!(reason.contains("not ready within start_timeout (300ms)"), "{reason}");
    assert_eq!(report.restarts, 1, "two attempts, then FATAL");
    let pids = env.log("slow").pids("start");
    eventually(
        "killed",
        || running.describe(),
        || pids.iter().all(|p| !process_alive(*p)),
    )
    .await;
    running.stop().await;
}

#[tokio::test]
async fn startup_follows_priority_and_waits_for_readiness() {
    let env = Env::new();
    let config = env.config(&format!(
        "[[workers]]\nname = \"second\"\npriority = 2\n{}\nport = {}\n\n\
         [[workers]]\nname = \"first\"\npriority = 1\n{}\nport = {}\n[workers.readiness]\ninterval = \"50ms\"\n",
        env.command("second", &[]),
        free_port(),
        env.command("first", &["--ready-after", "0.7"]),
        free_port()
    ));
    let running = Running::start(config);
    running.wait_state("second", WorkerState::Running).await;
    let first = env.log("first").events("start")[0].1;
    let second = env.log("second").events("start")[0].1;
    assert!(
        second - first >= 0.7,
        "second started {:.3}s after first, before it was ready",
        second - first
    );
    let names: Vec<String> = running.handle.status().workers.into_iter().map(|w| w.name).collect();
    assert_eq!(names, ["first", "second"], "status lists workers in start order");
    running.stop().await;
}

#[tokio::test]
async fn a_worker_failing_preflight_is_reported_and_not_started_while_others_run() {
    let env = Env::new();
    let config = env.config(&format!(
        "[[workers]]\nname = \"old-sdxl\"\nkind = \"sdxl\"\nport = {}\nenv = {{ FAKE_ENTRY_POINTS = \"run,start\" }}\n{}\n\n\
         [[workers]]\nname = \"missing\"\ncommand = [\"no-such-worker-program\"]\nport = {}\n\n\
         [[workers]]\nname = \"checked\"\n{}\nport = {}\ncheck = [\"sh\", \"-c\", \"echo CUDA not found >&2; exit 2\"]\n\n\
         [[workers]]\nname = \"video\"\n{}\nport = {}\n",
        free_port(),
        env.args("old-sdxl", &[]),
        free_port(),
        env.command("checked", &[]),
        free_port(),
        env.command("video", &[]),
        free_port()
    ));
    let running = Running::start(config);
    running.wait_state("video", WorkerState::Running).await;
    let reason = |name: &str| running.worker(name).reason.unwrap_or_default();
    assert_eq!(running.worker("old-sdxl").state, WorkerState::PreflightFailed);
    assert!(
        reason("old-sdxl").contains("missing serve, launch"),
        "{}",
        reason("old-sdxl")
    );
    assert_eq!(running.worker("missing").state, WorkerState::PreflightFailed);
    assert!(
        reason("missing").contains("\"no-such-worker-program\" not found in PATH"),
        "{}",
        reason("missing")
    );
    assert_eq!(running.worker("checked").state, WorkerState::PreflightFailed);
    assert!(
        reason("checked").contains("exited with code 2: CUDA not found"),
        "{}",
        reason("checked")
    );
    assert!(env.log("old-sdxl").pids("start").is_empty() && env.log("checked").pids("start").is_empty());
    assert!(
        !running.handle.status().orchestrator.ready,
        "not ready while workers are missing"
    );
    running.stop().await;
}

// ---------------------------------------------------------------- the orchestrator as a process

/// Entry point of the orchestrator child process (this binary re-executed); a no-op in
/// a normal test run.
#[test]
fn orchestrator_child_process() {
    let Some(path) = std::env::var_os(CHILD_CONFIG_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = runtime.block_on(async {
        let config = Config::load(Path::new(&path))?;
        easel_orchestrator::run_until_signalled(Orchestrator::new(config)).await
    });
    if let Err(e) = &result {
        eprintln!("orchestrator failed: {e}");
    }
    std::process::exit(i32::from(result.is_err()));
}

/// The orchestrator running as a child process on a config file.
struct Child {
    process: std::process::Child,
    addr: String,
    output: PathBuf,
}

impl Child {
    fn start(env: &Env, config_file: &Path, addr: String) -> Self {
        let output = env.path("orchestrator.out");
        let out = std::fs::File::create(&output).unwrap();
        let process = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "orchestrator_child_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_CONFIG_ENV, config_file)
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Self { process, addr, output }
    }

    fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(self.process.id() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
    }

    async fn status(&self) -> Option<StatusReport> {
        easel_orchestrator::fetch_status(&self.addr).await.ok()
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// Polls `/status` until `check` holds; returns that report.
    async fn wait_status(&self, what: &str, check: impl Fn(&StatusReport) -> bool) -> StatusReport {
        let end = Instant::now() + DEADLINE;
        let mut last = None;
        while Instant::now() < end {
            last = self.status().await;
            if last.as_ref().is_some_and(&check) {
                return last.unwrap_or_else(|| unreachable!());
            }
            tokio::time::sleep(POLL).await;
        }
        panic!(
            "timed out waiting for: {what}\nlast status: {last:#?}\norchestrator output:\n{}",
            self.output()
        );
    }

    async fn wait_exit(&mut self) -> std::process::ExitStatus {
        let end = Instant::now() + DEADLINE;
        while Instant::now() < end {
            if let Some(status) = self.process.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("the orchestrator did not exit\noutput:\n{}", self.output());
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.process.try_wait().ok().flatten().is_none() {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}

fn all_running<'a>(names: &'a [&'a str]) -> impl Fn(&StatusReport) -> bool + 'a {
    move |report| {
        report.workers.len() == names.len()
            && names.iter().all(|n| {
                report
                    .workers
                    .iter()
                    .any(|w| w.name == *n && w.state == WorkerState::Running)
            })
    }
}

#[tokio::test]
async fn killing_the_orchestrator_with_sigkill_takes_its_workers_and_their_children_down() {
    let env = Env::new();
    let addr = format!("127.0.0.1:{}", free_port());
    let file = env.path("easel.toml");
    let workers = format!(
        "[[workers]]\nname = \"w\"\n{}\nport = {}\nstop_grace = \"1s\"\n",
        env.command("w", &["--spawn-child"]),
        free_port()
    );
    std::fs::write(&file, env.toml(&addr, &workers)).unwrap();
    let mut orchestrator = Child::start(&env, &file, addr);
    let report = orchestrator.wait_status("w running", all_running(&["w"])).await;
    let pid = worker(&report, "w").pid.unwrap();
    let log = env.log("w");
    eventually("the child", || orchestrator.output(), || !log.pids("child").is_empty()).await;
    let child = log.pids("child")[0];

    orchestrator.signal(Signal::KILL);
    orchestrator.wait_exit().await;
    eventually(
        "the worker and its child exit",
        || orchestrator.output(),
        || !process_alive(pid) && !process_alive(child),
    )
    .await;
}

#[tokio::test]
async fn sighup_reloads_the_config_and_sigterm_stops_everything_with_exit_0() {
    let env = Env::new();
    let addr = format!("127.0.0.1:{}", free_port());
    let file = env.path("easel.toml");
    let (pa, pb, pc, pd) = (free_port(), free_port(), free_port(), free_port());
    let worker_toml = |name: &str, port: u16, extra: &str| {
        format!(
            "[[workers]]\nname = \"{name}\"\n{}\nport = {port}\nstop_grace = \"2s\"\n{extra}\n",
            env.command(name, &[])
        )
    };
    let before = [
        worker_toml("kept", pa, ""),
        worker_toml("removed", pb, ""),
        worker_toml("changed", pc, "env = { VERSION = \"1\" }"),
    ]
    .concat();
    std::fs::write(&file, env.toml(&addr, &before)).unwrap();
    let mut orchestrator = Child::start(&env, &file, addr);
    let report = orchestrator
        .wait_status("three running", all_running(&["kept", "removed", "changed"]))
        .await;
    let pid = |report: &StatusReport, name: &str| worker(report, name).pid.unwrap();
    let (kept, removed, changed) = (pid(&report, "kept"), pid(&report, "removed"), pid(&report, "changed"));

    let after = [
        worker_toml("kept", pa, ""),
        worker_toml("changed", pc, "env = { VERSION = \"2\" }"),
        worker_toml("added", pd, ""),
    ]
    .concat();
    std::fs::write(&file, env.toml(&orchestrator.addr, &after)).unwrap();
    orchestrator.signal(Signal::HUP);
    let report = orchestrator
        .wait_status("the reload", |r| {
            all_running(&["kept", "changed", "added"])(r) && worker(r, "changed").pid != Some(changed)
        })
        .await;
    assert_eq!(pid(&report, "kept"), kept, "an unchanged worker is left alone");
    assert!(!process_alive(removed), "a removed worker is stopped");
    assert!(!process_alive(changed), "a changed worker is restarted");
    assert_eq!(
        env.log("removed").pids("term"),
        [removed],
        "stopped gracefully (SIGTERM)"
    );

    let survivors = [kept, pid(&report, "changed"), pid(&report, "added")];
    orchestrator.signal(Signal::TERM);
    let status = orchestrator.wait_exit().await;
    assert_eq!(status.code(), Some(0), "output:\n{}", orchestrator.output());
    for pid in survivors {
        assert!(!process_alive(pid), "worker {pid} stopped");
    }
    let output = orchestrator.output();
    assert!(
        output.contains("[kept] stopped cleanly"),
        "prefixed worker output:\n{output}"
    );
}
