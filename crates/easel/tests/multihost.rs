//! Several worker hosts on one Redis queue and one bucket, simulated with network namespaces
//! this test creates (one per host, joined to a bridge by veth pairs; only the bridge's own
//! 10.x.y.0/24 addresses are used). Redis and a Supabase stand-in (Storage + the callback,
//! enforcing the service key) listen on the bridge.
//!
//! - **A host cut off mid-job**: its link goes down while it generates; its lease expires,
//!   the other host takes the job over and finishes it; when the link comes back, the
//!   cut-off host's late result is dropped — one terminal callback in all.
//! - **A scale-down**: SIGTERM to the worker running a job, with a grace shorter than the
//!   job (what an autoscaler removing a pod does): the job is handed back and the other host
//!   finishes it — nothing lost, one callback.
//!
//! Needs root (CAP_NET_ADMIN) and iproute2; `scripts/test.sh` runs as root. Elsewhere it is
//! skipped with a message, except in CI (`CI=true`) where it must run.

#[path = "../../easel-worker/tests/support/mod.rs"]
mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{unique, SupabaseStub};

const EASEL: &str = env!("CARGO_BIN_EXE_easel");
const KEY: &str = "service-key";
/// Generous: a debug build on two busy cores.
const LONG: Duration = Duration::from_secs(120);

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn must(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("run ip");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bridge with one namespace per host; everything is removed on drop.
struct Net {
    bridge: String,
    prefix: String,
    hosts: Vec<(String, String)>,
}

impl Net {
    fn available() -> bool {
        let probe = format!("easel-probe-{}", std::process::id());
        let ok = sh(&["ip", "netns", "add", &probe]);
        if ok {
            sh(&["ip", "netns", "del", &probe]);
        } else {
            assert!(
                std::env::var("CI").map(|v| v != "true").unwrap_or(true),
                "cannot create a network namespace: in CI the tests run as root with iproute2"
            );
            eprintln!("SKIPPED: creating network namespaces needs root and iproute2 (scripts/test.sh runs as root)");
        }
        ok
    }

    fn new(hosts: usize) -> Self {
        let pid = std::process::id();
        let net = Net {
            bridge: format!("ezb{}", pid % 100_000),
            prefix: format!("10.{}.{}", 200 + pid % 50, (pid / 50) % 250),
            hosts: Vec::new(),
        };
        let mut net = net;
        must(&["ip", "link", "add", &net.bridge, "type", "bridge"]);
        must(&["ip", "addr", "add", &format!("{}.1/24", net.prefix), "dev", &net.bridge]);
        must(&["ip", "link", "set", &net.bridge, "up"]);
        for i in 1..=hosts {
            let ns = format!("easel-{pid}-h{i}");
            let veth = format!("ez{}h{i}", pid % 100_000);
            must(&["ip", "netns", "add", &ns]);
            net.hosts.push((ns.clone(), veth.clone()));
            must(&[
                "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]);
            must(&["ip", "link", "set", &veth, "master", &net.bridge, "up"]);
            let addr = format!("{}.{}/24", net.prefix, 10 + i);
            must(&["ip", "netns", "exec", &ns, "ip", "addr", "add", &addr, "dev", "eth0"]);
            must(&["ip", "netns", "exec", &ns, "ip", "link", "set", "eth0", "up"]);
            must(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
        }
        net
    }

    fn gateway(&self) -> IpAddr {
        let ip: Ipv4Addr = format!("{}.1", self.prefix).parse().expect("an IPv4 address");
        ip.into()
    }

    /// Takes host `i`'s link down (`false`) or up again (`true`).
    fn link(&self, i: usize, up: bool) {
        must(&[
            "ip",
            "link",
            "set",
            &self.hosts[i - 1].1,
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for (ns, veth) in &self.hosts {
            sh(&["ip", "link", "del", veth]);
            sh(&["ip", "netns", "del", ns]);
        }
        sh(&["ip", "link", "del", &self.bridge]);
    }
}

/// A process this test started; stopped by its pid on drop.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        sh(&["kill", sig, &self.child.id().to_string()]);
    }

    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn redis_at(dir: &Path, ip: IpAddr) -> (Proc, u16) {
    let port = support::free_port();
    let log = dir.join("redis.log");
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            &ip.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
        ])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (scripts/test.sh installs it)");
    let end = Instant::now() + LONG;
    while std::net::TcpStream::connect((ip, port)).is_err() {
        assert!(Instant::now() < end, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Proc { child, log }, port)
}

/// The environment of a host's worker: the shared queue and bucket, short leases.
fn worker_env(queue: &str, stub: &SupabaseStub, host: &str, dir: &Path, grace: &str) -> Vec<(String, String)> {
    [
        ("EASEL_QUEUE_URL", queue.to_owned()),
        ("SUPABASE_URL", stub.url.clone()),
        ("SUPABASE_SERVICE_KEY", KEY.into()),
        ("EASEL_WORKER_NAME", host.into()),
        ("EASEL_DATA_DIR", dir.join(host).display().to_string()),
        ("EASEL_LEASE_TTL", "2s".into()),
        ("EASEL_POLL", "100ms".into()),
        ("EASEL_SHUTDOWN_GRACE", grace.into()),
        ("EASEL_UPLOAD_BUDGET", "120s".into()),
        ("EASEL_LOG", "info".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn start_worker(net: &Net, i: usize, env: &[(String, String)], dir: &Path) -> Proc {
    let log = dir.join(format!("h{i}.log"));
    let child = Command::new("ip")
        .args(["netns", "exec", &net.hosts[i - 1].0, EASEL, "worker", "sdxl", "run"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start a worker in its namespace");
    Proc { child, log }
}

fn easel(dir: &Path, queue: &str, args: &[&str]) -> std::process::Output {
    Command::new(EASEL)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("EASEL_DATA_DIR", dir.join("producer"))
        .env("EASEL_QUEUE_URL", queue)
        .output()
        .expect("easel runs")
}

fn submit(dir: &Path, queue: &str, id: &str) {
    let out = easel(
        dir,
        queue,
        &[
            "submit", "--id", id, "--prompt", "p", "--seed", "5", "--steps", "200", "--width", "128", "--height", "128",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The consumer running job `id`, once one does.
fn running_on(dir: &Path, queue: &str, id: &str) -> Option<String> {
    let out = easel(dir, queue, &["jobs", "list", "--state", "running", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    let job = v["jobs"].as_array()?.iter().find(|j| j["id"] == id)?.clone();
    job["progress"]["step"].as_u64().filter(|s| *s > 0)?;
    job["worker"].as_str().map(str::to_owned)
}

fn wait<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn terminal_callbacks(stub: &SupabaseStub, id: &str) -> Vec<Value> {
    stub.callbacks()
        .into_iter()
        .map(|c| c.body)
        .filter(|b| b["job_id"] == id && (b["status"] == "completed" || b["status"] == "failed"))
        .collect()
}

#[test]
fn a_host_cut_off_mid_job_and_a_scaled_down_host_lose_nothing_and_answer_once() {
    if !Net::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let net = Net::new(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stub = rt.block_on(SupabaseStub::start_at(KEY, net.gateway()));
    let (_redis, redis_port) = redis_at(d, net.gateway());
    let queue = format!("redis://{}:{redis_port}", net.gateway());

    // Host 1 takes the job; host 2 starts once it has.
    let mut h1 = start_worker(&net, 1, &worker_env(&queue, &stub, "h1", d, "60s"), d);
    let cut = unique("cut");
    submit(d, &queue, &cut);
    let on = wait("host 1 to run the job", LONG, || running_on(d, &queue, &cut));
    assert!(on.starts_with("h1-"), "{on}\n{}", h1.log());
    let mut h2 = start_worker(&net, 2, &worker_env(&queue, &stub, "h2", d, "1s"), d);

    // Cut host 1 off: its lease expires and host 2 finishes the job.
    net.link(1, false);
    let done = rt.block_on(stub.callback_for(&cut));
    assert_eq!(done.body["status"], "completed", "{}", done.raw);
    let taken_by = h2.log();
    assert!(taken_by.contains(&cut), "host 2 ran the job:\n{taken_by}");

    // Host 1 comes back; its late result is dropped, not answered again.
    net.link(1, true);
    wait("host 1 to drop its late result", LONG, || {
        h1.log().contains("this run's result is dropped").then_some(())
    });
    std::thread::sleep(Duration::from_secs(2)); // time for any second callback to arrive
    assert_eq!(
        terminal_callbacks(&stub, &cut).len(),
        1,
        "{:?}",
        terminal_callbacks(&stub, &cut)
    );

    // Scale-down: SIGTERM to the host running a job, with a grace shorter than the job.
    // Host 1 is stopped first so that host 2 takes the next job; host 3 stands by.
    h1.signal("-TERM");
    assert_eq!(h1.wait_exit(LONG), Some(0), "{}", h1.log());
    let down = unique("down");
    submit(d, &queue, &down);
    let on = wait("host 2 to run the next job", LONG, || running_on(d, &queue, &down));
    assert!(on.starts_with("h2-"), "{on}");
    let _h3 = start_worker(&net, 3, &worker_env(&queue, &stub, "h3", d, "60s"), d);
    h2.signal("-TERM");
    assert_eq!(
        h2.wait_exit(LONG),
        Some(0),
        "a scaled-down worker exits 0:\n{}",
        h2.log()
    );
    assert!(
        h2.log().contains("handing its lease back"),
        "the job went back to the queue:\n{}",
        h2.log()
    );
    let done = rt.block_on(stub.callback_for(&down));
    assert_eq!(done.body["status"], "completed", "{}", done.raw);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(terminal_callbacks(&stub, &down).len(), 1);
    let objects = stub.objects();
    assert!(objects.contains_key(&format!("workspace-temp/local-user/{down}/0.png")));
}
