//! Why this exists: the worker runtime's settings as types — which queue, store, callback
//! target and generator, and the loop timings — built from [`Layers`] with every value
//! checked. Errors name the setting, where its value came from, and what to write instead.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::consts::DB_FILE;
use crate::error::ConfigError;
use crate::layers::Layers;
use crate::secret::Secret;

/// Where jobs come from.
#[derive(Clone, Debug)]
pub enum QueueBackend {
    /// The embedded SQLite queue in the data dir's database.
    Sqlite,
    /// Native Redis (`redis://`, `rediss://`); the URL may hold a password.
    Redis { url: Secret },
    /// Upstash REST (`https://`), bearer token.
    Upstash { url: String, token: Secret },
}

/// Where images go.
#[derive(Clone, Debug)]
pub enum StorageBackend {
    /// `{data_dir}/storage/{bucket}/{key}`.
    Local { root: PathBuf },
    /// Supabase Storage REST at `{url}/storage/v1/object/{bucket}/{key}`.
    Supabase { url: String, key: Secret },
    /// An S3-compatible bucket.
    S3 {
        bucket: String,
        endpoint: Option<String>,
        region: String,
        access_key_id: Option<String>,
        secret_access_key: Option<Secret>,
    },
}

/// Where terminal callbacks go.
#[derive(Clone, Debug)]
pub enum CallbackTarget {
    /// An HTTP endpoint (Supabase `job-callback`), with the service key as bearer token.
    Http { url: String, bearer: Option<Secret> },
    /// Kept in the embedded job table (no services configured).
    JobTable,
}

/// Which [`crate::Generator`] runs jobs.
#[derive(Clone, Debug)]
pub enum GeneratorChoice {
    /// The SDXL engine.
    Sdxl(ModelChoice),
    /// The fast fake (tests and demos): solid images after `delay`.
    Fake { delay: Duration },
}

/// The model the SDXL engine loads, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelChoice {
    /// A diffusers folder or a single-file `.safetensors` checkpoint; `None`: the bundled tiny model.
    pub model: Option<PathBuf>,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// `f32`, `f16` or `bf16`; `None`: the device's default.
    pub dtype: Option<String>,
    /// Run candle's own CPU ops instead of Easel's kernels (`EASEL_CANDLE_KERNELS`).
    pub candle_kernels: bool,
}

/// Loop timings. Derived values say why they are what they are.
#[derive(Clone, Debug)]
pub struct Timing {
    /// Sleep between polls of an empty queue (the Python worker polls every 2 s).
    pub poll: Duration,
    /// How long a lease lives without a heartbeat before any worker may reclaim the job.
    pub lease_ttl: Duration,
    /// How long a running job may take to finish after SIGTERM before its lease is handed back.
    pub shutdown_grace: Duration,
    /// First retry delay of storage uploads and callbacks (doubles per attempt).
    pub retry_base: Duration,
    /// How long one upload keeps retrying a failing store before the job fails (default 60 s:
    /// rides out a storage restart or a short outage).
    pub upload_budget: Duration,
    /// How long a job's recorded outcome is kept (default 7 days): a redelivery or re-push
    /// within it is answered from the record instead of being run again.
    pub outcome_ttl: Duration,
    /// Time limit of an `sdxl_image_fast` job without `config.timeout_secs` (default 15 min).
    pub timeout_fast: Duration,
    /// Time limit of an `sdxl_image_high` job without `config.timeout_secs` (default 30 min).
    pub timeout_high: Duration,
}

impl Timing {
    /// A third of the lease: two heartbeats may be lost before the lease expires.
    pub fn heartbeat(&self) -> Duration {
        self.lease_ttl / 3
    }
    /// Half the lease: a dead worker's job waits at most 1.5 leases before it is taken again.
    pub fn reclaim_every(&self) -> Duration {
        self.lease_ttl / 2
    }
}

/// Everything a worker needs to start, resolved and checked.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub worker_name: String,
    pub data_dir: PathBuf,
    pub queue: QueueBackend,
    pub queue_name: String,
    pub storage: StorageBackend,
    pub bucket: String,
    pub callback: CallbackTarget,
    pub callback_secret: Option<Secret>,
    pub bind: IpAddr,
    pub port: u16,
    pub admin_token: Option<Secret>,
    pub generator: GeneratorChoice,
    pub timing: Timing,
    /// Deliveries after which a job that never finished is failed and dead-lettered.
    pub max_deliveries: u32,
    /// Fall back to text-to-image when a reference image cannot be fetched (Python's behaviour).
    pub reference_fallback: bool,
    /// Let reference URLs reach loopback/private/link-local addresses (off: a job must not
    /// make the worker probe its own network).
    pub reference_allow_private: bool,
    /// Send `status: "processing"` callbacks with `metadata.progress` while a job runs (off:
    /// the ourvidz edge function expects terminal callbacks only).
    pub progress_callbacks: bool,
}

/// The longest lease accepted: a day; anything longer means a crashed worker's job waits too long.
const MAX_LEASE: Duration = Duration::from_secs(86_400);

impl WorkerConfig {
    /// Resolves flags over the process environment and `easel.toml`.
    pub fn load(flags: &[(&str, String)], config_file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_layers(&Layers::from_process(flags, config_file)?)
    }

    /// Builds the typed configuration from resolved layers.
    pub fn from_layers(l: &Layers) -> Result<Self, ConfigError> {
        let data_dir = data_dir(l)?;
        let supabase = supabase(l)?;
        Ok(Self {
            worker_name: l.text("worker_name").to_string(),
            queue: queue(l)?,
            queue_name: queue_name(l)?,
            storage: storage(l, &data_dir, supabase.as_ref())?,
            bucket: l.text("bucket").to_string(),
            callback: callback(l, supabase.as_ref())?,
            callback_secret: l.secret("callback_secret"),
            bind: l.number("bind", "an IP address such as 127.0.0.1 or 0.0.0.0")?,
            port: l.number("port", "a port number (0-65535)")?,
            admin_token: l.secret("admin_token"),
            generator: generator(l)?,
            timing: timing(l)?,
            max_deliveries: l.positive("max_deliveries")?,
            reference_fallback: l.flag("reference_fallback")?,
            reference_allow_private: l.flag("reference_allow_private")?,
            progress_callbacks: l.flag("progress_callbacks")?,
            data_dir,
        })
    }

    /// The embedded database file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join(DB_FILE)
    }
}

/// The data home alone (for `submit`, `jobs` and `config show`).
pub fn data_dir(l: &Layers) -> Result<PathBuf, ConfigError> {
    l.get("data_dir").map(PathBuf::from).ok_or_else(|| {
        ConfigError::Missing(
            "no data home: neither EASEL_DATA_DIR, data_dir in easel.toml, XDG_DATA_HOME nor HOME is set; set EASEL_DATA_DIR=/path/to/easel-data".into(),
        )
    })
}

/// The queue name alone (for `describe` and `submit`).
pub fn queue_name(l: &Layers) -> Result<String, ConfigError> {
    let name = l.text("queue_name");
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(l.invalid("queue_name", "must be a non-empty name without spaces, e.g. sdxl_queue"));
    }
    Ok(name.to_string())
}

/// The queue backend alone (for `submit`).
pub fn queue(l: &Layers) -> Result<QueueBackend, ConfigError> {
    let url = l.text("queue_url");
    if url == "sqlite" {
        return Ok(QueueBackend::Sqlite);
    }
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        return Ok(QueueBackend::Redis { url: Secret::new(url) });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        let token = l.secret("queue_token").ok_or_else(|| {
            ConfigError::Missing(
                "the queue is Upstash REST but UPSTASH_REDIS_REST_TOKEN is not set: set it to the REST token".into(),
            )
        })?;
        return Ok(QueueBackend::Upstash {
            url: url.trim_end_matches('/').to_string(),
            token,
        });
    }
    Err(l.invalid(
        "queue_url",
        "is not a queue: use sqlite, redis://..., rediss://... or an Upstash https:// URL",
    ))
}

fn supabase(l: &Layers) -> Result<Option<(String, Secret)>, ConfigError> {
    let Some(url) = l.get("supabase_url") else {
        return Ok(None);
    };
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(l.invalid("supabase_url", "must be an http(s) URL such as https://xyz.supabase.co"));
    }
    let key = l.secret("supabase_service_key").ok_or_else(|| {
        ConfigError::Missing("SUPABASE_URL is set but SUPABASE_SERVICE_KEY is not: set the service-role key".into())
    })?;
    Ok(Some((url.trim_end_matches('/').to_string(), key)))
}

fn storage(l: &Layers, data_dir: &Path, supabase: Option<&(String, Secret)>) -> Result<StorageBackend, ConfigError> {
    let default = if supabase.is_some() { "supabase" } else { "local" };
    let choice = l.get("storage").unwrap_or(default);
    if choice == "local" {
        return Ok(StorageBackend::Local {
            root: data_dir.join("storage"),
        });
    }
    if choice == "supabase" {
        let (url, key) = supabase.cloned().ok_or_else(|| {
            ConfigError::Missing("EASEL_STORAGE=supabase needs SUPABASE_URL and SUPABASE_SERVICE_KEY".into())
        })?;
        return Ok(StorageBackend::Supabase { url, key });
    }
    if let Some(bucket) = choice.strip_prefix("s3://") {
        if bucket.is_empty() || bucket.contains('/') {
            return Err(l.invalid("storage", "must name a bucket: s3://BUCKET"));
        }
        return Ok(StorageBackend::S3 {
            bucket: bucket.to_string(),
            endpoint: l.get("s3_endpoint").map(str::to_string),
            region: l.text("s3_region").to_string(),
            access_key_id: l.get("s3_access_key_id").map(str::to_string),
            secret_access_key: l.secret("s3_secret_access_key"),
        });
    }
    Err(l.invalid("storage", "is not a store: use local, supabase or s3://BUCKET"))
}

fn callback(l: &Layers, supabase: Option<&(String, Secret)>) -> Result<CallbackTarget, ConfigError> {
    let bearer = supabase.map(|(_, k)| k.clone());
    match (l.get("callback_url"), supabase) {
        (Some("job-table"), _) => Ok(CallbackTarget::JobTable),
        (Some(url), _) if url.starts_with("http://") || url.starts_with("https://") => Ok(CallbackTarget::Http {
            url: url.to_string(),
            bearer,
        }),
        (Some(_), _) => Err(l.invalid("callback_url", "must be an http(s) URL, or job-table")),
        (None, Some((url, _))) => Ok(CallbackTarget::Http {
            url: format!("{url}/functions/v1/job-callback"),
            bearer,
        }),
        (None, None) => Ok(CallbackTarget::JobTable),
    }
}

fn generator(l: &Layers) -> Result<GeneratorChoice, ConfigError> {
    match l.text("generator") {
        "sdxl" => Ok(GeneratorChoice::Sdxl(model_choice(l)?)),
        "fake" => Ok(GeneratorChoice::Fake {
            delay: l.duration("fake_delay")?,
        }),
        _ => Err(l.invalid("generator", "is not a generator: use sdxl (or fake, for tests)")),
    }
}

/// The model, device and dtype alone (for `generate` and `bench`, which read the same
/// settings as the worker).
pub fn model_choice(l: &Layers) -> Result<ModelChoice, ConfigError> {
    Ok(ModelChoice {
        model: l.get("model").map(PathBuf::from),
        device: l.text("device").to_string(),
        dtype: l.get("dtype").map(str::to_string),
        candle_kernels: l.flag("candle_kernels")?,
    })
}

fn timing(l: &Layers) -> Result<Timing, ConfigError> {
    let lease = l.duration("lease_ttl")?;
    if lease.is_zero() || lease > MAX_LEASE {
        return Err(l.invalid("lease_ttl", "must be longer than 0s and at most a day (\"1d\")"));
    }
    let nonzero = |key: &str| -> Result<Duration, ConfigError> {
        let d = l.duration(key)?;
        if d.is_zero() {
            return Err(l.invalid(key, "must be longer than 0s"));
        }
        Ok(d)
    };
    Ok(Timing {
        poll: nonzero("poll")?,
        lease_ttl: lease,
        shutdown_grace: l.duration("shutdown_grace")?,
        retry_base: nonzero("retry_base")?,
        upload_budget: l.duration("upload_budget")?,
        outcome_ttl: nonzero("outcome_ttl")?,
        timeout_fast: nonzero("timeout_fast")?,
        timeout_high: nonzero("timeout_high")?,
    })
}
#[cfg(test)]
mod tests {
    use super::*;

    fn layers(flags: &[(&str, &str)], env: &[(&str, &str)]) -> Layers {
        let flags: Vec<(&str, String)> = flags.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let mut env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        env.push(("HOME".into(), "/home/test".into()));
        let get = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        Layers::resolve(&flags, &get, None).expect("layers")
    }

    #[test]
    fn defaults_are_the_embedded_backends() {
        let c = WorkerConfig::from_layers(&layers(&[], &[])).unwrap();
        assert!(matches!(c.queue, QueueBackend::Sqlite));
        assert!(matches!(c.storage, StorageBackend::Local { .. }));
        assert!(matches!(c.callback, CallbackTarget::JobTable));
        assert_eq!(
            (c.port, c.queue_name.as_str(), c.bucket.as_str()),
            (7859, "sdxl_queue", "workspace-temp")
        );
        assert_eq!(c.bind.to_string(), "127.0.0.1");
    }

    #[test]
    fn the_python_workers_variables_select_supabase_and_upstash() {
        let env = [
            ("SUPABASE_URL", "https://x.supabase.co/"),
            ("SUPABASE_SERVICE_KEY", "svc"),
            ("UPSTASH_REDIS_REST_URL", "https://u.upstash.io"),
            ("UPSTASH_REDIS_REST_TOKEN", "tok"),
        ];
        let c = WorkerConfig::from_layers(&layers(&[], &env)).unwrap();
        assert!(matches!(c.queue, QueueBackend::Upstash { ref url, .. } if url == "https://u.upstash.io"));
        assert!(matches!(c.storage, StorageBackend::Supabase { ref url, .. } if url == "https://x.supabase.co"));
        assert!(
            matches!(c.callback, CallbackTarget::Http { ref url, .. } if url == "https://x.supabase.co/functions/v1/job-callback")
        );
    }

    #[test]
    fn flags_beat_environment() {
        let c = WorkerConfig::from_layers(&layers(&[("port", "9000")], &[("WORKER_PORT", "8000")])).unwrap();
        assert_eq!(c.port, 9000);
    }

    #[test]
    fn environment_beats_the_file_which_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("easel.toml");
        std::fs::write(&path, "[worker]\nport = 7000\npoll_ms = 5\n").unwrap();
        let get = |k: &str| match k {
            "WORKER_PORT" => Some("8000".to_string()),
            "HOME" => Some("/home/test".to_string()),
            _ => None,
        };
        let file = crate::file::ConfigFile::read(&path).unwrap();
        let l = Layers::resolve(&[], &get, Some(file)).unwrap();
        let c = WorkerConfig::from_layers(&l).unwrap();
        assert_eq!((c.port, c.timing.poll), (8000, Duration::from_millis(5)));
    }

    #[test]
    fn a_bad_value_names_the_variable_and_the_fix() {
        let err = WorkerConfig::from_layers(&layers(&[], &[("WORKER_PORT", "http")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("port") && err.contains("WORKER_PORT") && err.contains("a port number"),
            "{err}"
        );
    }

    #[test]
    fn secrets_never_appear_in_errors_or_debug_output() {
        let env = [
            ("UPSTASH_REDIS_REST_URL", "https://u"),
            ("UPSTASH_REDIS_REST_TOKEN", "hunter2"),
        ];
        let c = WorkerConfig::from_layers(&layers(&[], &env)).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        let err = WorkerConfig::from_layers(&layers(&[], &[("SUPABASE_URL", "https://x")])).unwrap_err();
        assert!(err.to_string().contains("SUPABASE_SERVICE_KEY"));
    }

    #[test]
    fn upstash_without_a_token_is_a_configuration_error() {
        let err = WorkerConfig::from_layers(&layers(&[], &[("UPSTASH_REDIS_REST_URL", "https://u")])).unwrap_err();
        assert!(err.to_string().contains("UPSTASH_REDIS_REST_TOKEN"));
    }
}
