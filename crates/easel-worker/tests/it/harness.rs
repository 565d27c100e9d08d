//! In-process workers for tests: hermetic configuration (no process environment), fast
//! timings, a temporary data dir, and readiness awaited through `/readyz`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use easel_worker::config::Layers;
use easel_worker::generator::{GeneratedImage, GenerationSpec, Generator, GeneratorError, GeneratorInfo};
use easel_worker::metrics::Metrics;
use easel_worker::queue::Queue;
use easel_worker::{Error, FakeGenerator, SdxlWorker, Worker, WorkerConfig};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::support::{free_port, SupabaseStub, DEADLINE};

/// The smallest valid contract job with id `id`.
pub fn job(id: &str) -> String {
    serde_json::json!({"id": id, "type": "sdxl_image_fast", "prompt": "p", "user_id": "u"}).to_string()
}

/// Settings that point a worker's storage and callbacks at `stub`.
pub fn stub_settings(stub: &SupabaseStub) -> Vec<(&'static str, String)> {
    vec![
        ("supabase_url", stub.url.clone()),
        ("supabase_service_key", stub.key.clone()),
    ]
}

/// A running in-process worker.
pub struct TestWorker {
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<Result<(), Error>>,
    pub port: u16,
    pub metrics: Arc<Metrics>,
    pub config: WorkerConfig,
    pub dir: Arc<tempfile::TempDir>,
}

/// Settings every test worker gets unless overridden: fake generator, fast timings.
fn defaults(dir: &tempfile::TempDir, port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("data_dir", dir.path().display().to_string()),
        ("port", port.to_string()),
        ("generator", "fake".into()),
        ("poll", "20ms".into()),
        ("lease_ttl", "2s".into()),
        ("retry_base", "20ms".into()),
        ("shutdown_grace", "10s".into()),
        // Reference images come from stub servers on loopback.
        ("reference_allow_private", "true".into()),
    ]
}

/// Hermetic configuration: `settings` over the test defaults; the process environment is ignored.
pub fn config(dir: &tempfile::TempDir, settings: &[(&'static str, String)]) -> WorkerConfig {
    let mut all = defaults(dir, free_port());
    all.retain(|(k, _)| !settings.iter().any(|(s, _)| s == k));
    all.extend(settings.iter().cloned());
    let layers = Layers::resolve(&all, &|_| None, None).expect("test settings");
    WorkerConfig::from_layers(&layers).expect("test config")
}

/// Starts a worker with `settings` (and `generator`, default the fake) in a new data dir.
pub async fn start(settings: &[(&'static str, String)], generator: Option<Arc<dyn Generator>>) -> TestWorker {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    start_in(dir, settings, generator).await
}

/// Starts a worker in an existing data dir.
pub async fn start_in(
    dir: Arc<tempfile::TempDir>,
    settings: &[(&'static str, String)],
    generator: Option<Arc<dyn Generator>>,
) -> TestWorker {
    let config = config(&dir, settings);
    let generator = generator.unwrap_or_else(|| Arc::new(FakeGenerator::new(Duration::ZERO)));
    let worker = SdxlWorker::with_generator(config.clone(), generator).expect("worker");
    let metrics = worker.metrics();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let handle = tokio::spawn(async move { worker.run(token).await });
    let w = TestWorker {
        shutdown,
        handle,
        port: config.port,
        metrics,
        config,
        dir,
    };
    w.wait_ready().await;
    w
}

impl TestWorker {
    /// The worker's `/metrics` text.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.url("/metrics")).await.unwrap().text().await.unwrap()
    }

    /// The worker's base URL.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            if let Ok(r) = reqwest::get(self.url("/readyz")).await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(!self.handle.is_finished(), "worker exited before it was ready");
            assert!(start.elapsed() < DEADLINE, "worker not ready in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A producer on the same queue (its own consumer id).
    pub async fn producer(&self) -> Arc<dyn Queue> {
        easel_worker::submit::open_queue_as(&self.config, "producer").expect("queue")
    }

    /// Requests a graceful shutdown and waits for `run` to return.
    pub async fn stop(self) -> Result<(), Error> {
        self.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.handle)
            .await
            .expect("worker stops in time")
            .expect("worker task")
    }
}

/// A generator that announces when a job starts and can be held until released, to put a job
/// "in flight" deterministically (no sleeps).
pub struct GatedGenerator {
    inner: FakeGenerator,
    pub started: Notify,
    gate: std::sync::Mutex<bool>,
    open: std::sync::Condvar,
}

impl GatedGenerator {
    /// A gate that starts closed.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: FakeGenerator::new(Duration::ZERO),
            started: Notify::new(),
            gate: std::sync::Mutex::new(false),
            open: std::sync::Condvar::new(),
        })
    }

    /// Lets running and future jobs finish.
    pub fn release(&self) {
        *self.gate.lock().unwrap() = true;
        self.open.notify_all();
    }
}

impl Generator for GatedGenerator {
    fn info(&self) -> GeneratorInfo {
        self.inner.info()
    }
    fn is_loaded(&self) -> bool {
        self.inner.is_loaded()
    }
    fn load(&self) -> Result<(), GeneratorError> {
        self.inner.load()
    }
    fn unload(&self) -> Result<(), GeneratorError> {
        self.inner.unload()
    }
    fn generate(
        &self,
        spec: &GenerationSpec,
        progress: &mut dyn FnMut(u32, u32),
    ) -> Result<Vec<GeneratedImage>, GeneratorError> {
        self.started.notify_one();
        let mut open = self.gate.lock().unwrap();
        while !*open {
            open = self.open.wait(open).unwrap();
        }
        drop(open);
        self.inner.generate(spec, progress)
    }
}
