//! Why this exists: the five fault scenarios of the reliability suite, each against real
//! processes on loopback: (a) SIGKILLed workers restarted at once, (b) Redis restarted
//! gracefully and SIGKILLed (AOF on), then a worker stopped, (c) storage answering 503 and the
//! callback endpoint refusing connections, for an outage each, (d) fuzzed payloads, (e) a
//! worker started before Redis. Each is bounded in jobs, faults and time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::json;

use crate::cluster::{self, Redis, Workers};
use crate::fuzz::{self, Expect};
use crate::gate::Gate;
use crate::report::{secs, Row};
use crate::support::{unique, SupabaseStub};

/// The queue every scenario uses (its own Redis each time).
const QUEUE: &str = "sdxl_queue";
const KEY: &str = "chaos-service-key";

/// How big a run is.
#[derive(Clone, Debug)]
pub struct Scale {
    pub workers: usize,
    pub kill_jobs: usize,
    pub kills: usize,
    /// Milliseconds between kills (drawn in this range).
    pub kill_every: (u64, u64),
    pub redis_jobs: usize,
    pub outage: Duration,
    pub outage_jobs: usize,
    pub fuzz: usize,
    pub early_jobs: usize,
    /// Denoising steps of each pushed job: long enough that a kill often lands mid-job.
    pub steps: u32,
    /// Worker settings that differ between runs (generator, lease).
    pub env: Vec<(&'static str, String)>,
    /// Longest wait for a scenario to drain after its faults.
    pub drain: Duration,
}

impl Scale {
    /// The CI run: every property, fewer jobs and faults, the fake generator.
    pub fn reduced() -> Self {
        Self {
            workers: 3,
            kill_jobs: 40,
            kills: 8,
            kill_every: (400, 900),
            redis_jobs: 20,
            outage: Duration::from_secs(5),
            outage_jobs: 6,
            fuzz: 300,
            early_jobs: 5,
            steps: 4,
            env: vec![
                ("EASEL_GENERATOR", "fake".into()),
                ("EASEL_FAKE_DELAY", "300ms".into()),
                ("EASEL_LEASE_TTL", "3s".into()),
            ],
            drain: Duration::from_secs(90),
        }
    }

    /// The full run of scripts/chaos.sh: the figures, the bundled tiny model.
    pub fn full() -> Self {
        Self {
            workers: 3,
            kill_jobs: 200,
            kills: 40,
            kill_every: (2000, 3000),
            redis_jobs: 50,
            outage: Duration::from_secs(60),
            outage_jobs: 20,
            fuzz: 2000,
            early_jobs: 20,
            steps: 40,
            env: vec![("EASEL_GENERATOR", "sdxl".into()), ("EASEL_LEASE_TTL", "5s".into())],
            drain: Duration::from_secs(420),
        }
    }
}

/// One scenario's services and workers.
struct Ctx {
    dir: tempfile::TempDir,
    redis: Redis,
    stub: SupabaseStub,
    gate: Gate,
    workers: Workers,
    expect: Vec<Expect>,
    started: Instant,
    steps: u32,
}

fn worker_env(scale: &Scale, redis: &Redis, stub: &SupabaseStub, gate: &Gate) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("EASEL_QUEUE_URL", redis.url()),
        ("EASEL_QUEUE_NAME", QUEUE.into()),
        ("SUPABASE_URL", stub.url.clone()),
        ("SUPABASE_SERVICE_KEY", KEY.into()),
        (
            "EASEL_CALLBACK_URL",
            format!("{}/functions/v1/job-callback", gate.url()),
        ),
        ("EASEL_POLL", "100ms".into()),
        ("EASEL_RETRY_BASE", "100ms".into()),
        ("EASEL_MAX_DELIVERIES", "20".into()),
        ("EASEL_SHUTDOWN_GRACE", "20s".into()),
        ("EASEL_LOG", "info".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    env.extend(scale.env.iter().map(|(k, v)| (k.to_string(), v.clone())));
    env
}

impl Ctx {
    async fn new(scale: &Scale, redis_now: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let redis = if redis_now {
            Redis::start(dir.path()).await
        } else {
            Redis::planned(dir.path())
        };
        let stub = SupabaseStub::start(KEY).await;
        let upstream = stub.url.trim_start_matches("http://").parse().expect("stub address");
        let gate = Gate::start(upstream);
        let workers = Workers::new(dir.path(), worker_env(scale, &redis, &stub, &gate));
        Self {
            dir,
            redis,
            stub,
            gate,
            workers,
            expect: Vec::new(),
            started: Instant::now(),
            steps: scale.steps,
        }
    }

    /// Redis up and `scale.workers` workers ready.
    async fn running(scale: &Scale) -> Self {
        let mut ctx = Self::new(scale, true).await;
        ctx.workers.start(scale.workers);
        assert!(ctx.workers.wait_ready(Duration::from_secs(60)).await, "workers ready");
        ctx
    }

    async fn push_raw(&mut self, payload: &[u8], expect: Expect) {
        let mut c = self.redis.client().await.expect("redis for the producer");
        let _: i64 = redis::cmd("LPUSH")
            .arg(QUEUE)
            .arg(payload)
            .query_async(&mut c)
            .await
            .unwrap();
        self.expect.push(expect);
    }

    async fn push_jobs(&mut self, n: usize) {
        for _ in 0..n {
            let id = unique("job");
            let p = json!({"id": id, "type": "sdxl_image_fast", "prompt": "a lighthouse", "user_id": "u",
                           "config": {"num_inference_steps": self.steps}});
            self.push_raw(p.to_string().as_bytes(), Expect::Callback(id)).await;
        }
    }

    /// Terminal callbacks received (answered 200), by job id.
    fn callbacks(&self) -> BTreeMap<String, usize> {
        let mut by_id = BTreeMap::new();
        for c in self.stub.callbacks() {
            let id = c.body["job_id"].as_str().unwrap_or("").to_string();
            *by_id.entry(id).or_insert(0) += 1;
        }
        by_id
    }

    /// (queued + in processing lists, dead letters, callbacks not yet delivered).
    async fn redis_state(&self) -> Option<(u64, u64, u64)> {
        let mut c = self.redis.client().await?;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{QUEUE}:processing:*"))
            .query_async(&mut c)
            .await
            .ok()?;
        let mut left: u64 = redis::cmd("LLEN").arg(QUEUE).query_async(&mut c).await.ok()?;
        for k in keys {
            let n: u64 = redis::cmd("LLEN").arg(&k).query_async(&mut c).await.ok()?;
            left += n;
        }
        let dead: u64 = redis::cmd("LLEN")
            .arg(format!("{QUEUE}:dead"))
            .query_async(&mut c)
            .await
            .ok()?;
        let pending: u64 = redis::cmd("ZCARD")
            .arg(format!("{QUEUE}:callbacks"))
            .query_async(&mut c)
            .await
            .ok()?;
        Some((left, dead, pending))
    }

    fn expected_dead(&self) -> u64 {
        self.expect.iter().filter(|e| **e == Expect::Dead).count() as u64
    }

    fn drained(&self, state: (u64, u64, u64)) -> bool {
        let got = self.callbacks();
        let all = self.expect.iter().all(|e| match e {
            Expect::Callback(id) => got.contains_key(id),
            Expect::Dead => true,
        });
        all && state.0 == 0 && state.1 >= self.expected_dead() && state.2 == 0
    }

    /// Waits for the queue to drain (bounded), stops the workers, and counts.
    async fn finish(mut self, name: &str, faults: usize, drain: Duration, note: String) -> Row {
        let start = Instant::now();
        while start.elapsed() < drain {
            self.workers.check();
            if self.redis_state().await.is_some_and(|s| self.drained(s)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // A late duplicate would arrive within a lease or two.
        tokio::time::sleep(Duration::from_secs(2)).await;
        self.workers.stop(Duration::from_secs(40)).await;
        let (left, dead, _) = self.redis_state().await.unwrap_or((u64::MAX, 0, 0));
        let got = self.callbacks();
        let mut lost = 0;
        for e in &self.expect {
            if let Expect::Callback(id) = e {
                lost += usize::from(!got.contains_key(id));
            }
        }
        lost += self.expected_dead().saturating_sub(dead) as usize;
        let duplicates = got.values().map(|n| n - 1).sum();
        let allowed: Vec<String> = self
            .expect
            .iter()
            .filter_map(|e| match e {
                Expect::Callback(id) => Some(format!("workspace-temp/u/{id}/")),
                Expect::Dead => None,
            })
            .collect();
        let outside = self
            .stub
            .objects()
            .into_keys()
            .filter(|k| {
                !allowed
                    .iter()
                    .any(|a| k.starts_with(a.as_str()) && !k[a.len()..].contains('/'))
            })
            .collect();
        let _ = &self.dir;
        Row {
            reruns: runs_started(self.dir.path()).values().filter(|n| **n > 1).count(),
            name: name.to_string(),
            jobs: self.expect.len(),
            faults,
            lost,
            duplicates,
            left,
            dead,
            crashes: std::mem::take(&mut self.workers.crashes),
            outside,
            secs: self.started.elapsed().as_secs_f64(),
            note,
        }
    }
}

/// How many times each job was started, from every worker log in `dir` ("job started" lines
/// carry the job's span with `job.id=`).
fn runs_started(dir: &std::path::Path) -> BTreeMap<String, usize> {
    let mut runs = BTreeMap::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines().filter(|l| l.contains("job started")) {
            if let Some(rest) = line.split("job.id=").nth(1) {
                let id: String = rest.chars().take_while(|c| !matches!(c, ' ' | '}')).collect();
                *runs.entry(id).or_insert(0) += 1;
            }
        }
    }
    runs
}

/// (a) A random worker SIGKILLed and restarted at once, again and again, while jobs run.
pub async fn kills(scale: &Scale) -> Row {
    let mut ctx = Ctx::running(scale).await;
    ctx.push_jobs(scale.kill_jobs).await;
    let mut rng = rand::thread_rng();
    for _ in 0..scale.kills {
        tokio::time::sleep(Duration::from_millis(
            rng.gen_range(scale.kill_every.0..=scale.kill_every.1),
        ))
        .await;
        let i = rng.gen_range(0..scale.workers);
        ctx.workers.kill_and_restart(i);
    }
    let name = "(a) SIGKILL a random worker, restart at once";
    let mut row = ctx.finish(name, scale.kills, scale.drain, String::new()).await;
    row.note = format!("{} jobs ran more than once (killed mid-job)", row.reruns);
    row
}

/// (b) Redis restarted gracefully, then SIGKILLed (AOF, fsync always), then one worker
/// stopped by SIGTERM and started again, all while jobs run.
pub async fn redis_restarts(scale: &Scale) -> Row {
    let mut ctx = Ctx::running(scale).await;
    ctx.push_jobs(scale.redis_jobs).await;
    for graceful in [true, false] {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        ctx.redis.down(graceful);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        ctx.redis.up().await;
    }
    ctx.push_jobs(scale.redis_jobs / 2).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    ctx.workers.check();
    let pid = ctx.workers.pid(0);
    cluster::signal(pid, "TERM");
    ctx.workers.restart_after_exit(0, Duration::from_secs(40)).await;
    ctx.finish(
        "(b) Redis restarted, SIGKILLed (AOF), a worker stopped",
        3,
        scale.drain,
        String::new(),
    )
    .await
}

/// (c) Storage answers 503 for an outage, then the callback endpoint refuses connections for
/// one, with jobs running through both.
pub async fn outages(scale: &Scale) -> Row {
    let mut ctx = Ctx::running(scale).await;
    ctx.stub.fail_storage_for(scale.outage);
    ctx.push_jobs(scale.outage_jobs).await;
    tokio::time::sleep(scale.outage).await;
    ctx.gate.close();
    ctx.push_jobs(scale.outage_jobs).await;
    tokio::time::sleep(scale.outage).await;
    ctx.gate.open();
    let note = format!(
        "storage 503 for {}, callbacks refused for {}",
        secs(scale.outage),
        secs(scale.outage)
    );
    ctx.finish("(c) storage 503, then callback endpoint down", 2, scale.drain, note)
        .await
}

/// (d) Fuzzed payloads: invalid UTF-8, deep nesting, huge prompts, out-of-range numbers,
/// path-unsafe ids, truncated JSON, wrong types, internal reference URLs.
pub async fn fuzzed(scale: &Scale) -> Row {
    let mut ctx = Ctx::running(scale).await;
    for (payload, expect) in fuzz::payloads(scale.fuzz, rand::random(), &unique("fz")) {
        ctx.push_raw(&payload, expect).await;
    }
    let n = scale.fuzz;
    ctx.finish("(d) fuzzed payloads", n, scale.drain, String::new()).await
}

/// (e) A worker started before Redis: `/livez` answers, `/readyz` is 503, SIGTERM is obeyed,
/// and it is ready within 5 s of Redis coming up. A broken promise is reported in the row's
/// crashes (so the table is still printed).
pub async fn before_redis(scale: &Scale) -> Row {
    let mut ctx = Ctx::new(scale, false).await;
    let mut broken = Vec::new();
    ctx.workers.start(2);
    let port = ctx.workers.procs[0].port;
    let t0 = Instant::now();
    while cluster::status(port, "/livez").await != Some(200) && t0.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut notes = vec![format!("/livez after {}", secs(t0.elapsed()))];
    if cluster::status(port, "/livez").await != Some(200) {
        broken.push("no /livez while Redis is down".to_string());
    }
    if cluster::status(port, "/readyz").await != Some(503) {
        broken.push("/readyz is not 503 without a queue".to_string());
    }
    let log = std::fs::read_to_string(&ctx.workers.procs[0].log).unwrap_or_default();
    if !log.contains("queue unreachable") || log.contains(KEY) {
        broken.push(format!(
            "the unreachable queue is not logged at once, or a secret is: {log}"
        ));
    }
    let pid = ctx.workers.pid(1);
    let t1 = Instant::now();
    cluster::signal(pid, "TERM");
    match ctx.workers.wait_exit(1, Duration::from_secs(10)).await {
        Some(0) => notes.push(format!("SIGTERM exit 0 in {}", secs(t1.elapsed()))),
        other => broken.push(format!(
            "SIGTERM while Redis is down: exit {other:?} (None: needed SIGKILL)"
        )),
    }
    ctx.workers.restart_after_exit(1, Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t2 = Instant::now();
    ctx.redis.up().await;
    while !cluster::ready(port).await && t2.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let ready_after = t2.elapsed();
    notes.push(format!("ready {} after Redis was started", secs(ready_after)));
    if ready_after > Duration::from_secs(5) {
        broken.push(format!("ready only {ready_after:?} after Redis was started"));
    }
    ctx.workers.crashes.extend(broken);
    ctx.push_jobs(scale.early_jobs).await;
    ctx.finish("(e) worker started before Redis", 1, scale.drain, notes.join("; "))
        .await
}
