//! Why this exists: a worker must start with the same environment variables as the Python
//! worker (`SUPABASE_URL`, `UPSTASH_REDIS_REST_URL`, `WORKER_PORT`, ...) and also be
//! configurable by flags and `easel.toml`. This file resolves every setting once, in the order
//! flags > environment > `easel.toml` (`[worker]` table) > defaults, and turns the result into
//! a typed [`WorkerConfig`]. Every error names the setting, where its value came from, and what
//! to write instead. Secrets are kept in [`Secret`], which never prints its value.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A setting: its key (as in `easel.toml` and flags), environment names in priority order,
/// whether it is a secret, and its default.
struct Setting {
    key: &'static str,
    env: &'static [&'static str],
    secret: bool,
    default: Option<&'static str>,
}

const fn s(key: &'static str, env: &'static [&'static str], default: Option<&'static str>) -> Setting {
    Setting {
        key,
        env,
        secret: false,
        default,
    }
}

const fn secret(key: &'static str, env: &'static [&'static str]) -> Setting {
    Setting {
        key,
        env,
        secret: true,
        default: None,
    }
}

/// Every setting the worker reads. The ourvidz names come first where both exist.
const SETTINGS: &[Setting] = &[
    s("worker_name", &["EASEL_WORKER_NAME"], Some("sdxl")),
    s("data_dir", &["EASEL_DATA_DIR"], Some("./easel-data")),
    s(
        "queue_url",
        &["EASEL_QUEUE_URL", "UPSTASH_REDIS_REST_URL"],
        Some("sqlite"),
    ),
    secret("queue_token", &["UPSTASH_REDIS_REST_TOKEN"]),
    s("queue_name", &["EASEL_QUEUE_NAME"], Some(DEFAULT_QUEUE)),
    s("supabase_url", &["SUPABASE_URL"], None),
    secret("supabase_service_key", &["SUPABASE_SERVICE_KEY"]),
    s("storage", &["EASEL_STORAGE"], None),
    s("bucket", &["EASEL_BUCKET"], Some(DEFAULT_BUCKET)),
    s("s3_endpoint", &["EASEL_S3_ENDPOINT", "AWS_ENDPOINT_URL"], None),
    s("s3_region", &["EASEL_S3_REGION", "AWS_REGION"], Some("us-east-1")),
    s("s3_access_key_id", &["AWS_ACCESS_KEY_ID"], None),
    secret("s3_secret_access_key", &["AWS_SECRET_ACCESS_KEY"]),
    s("callback_url", &["EASEL_CALLBACK_URL"], None),
    secret("callback_secret", &["EASEL_CALLBACK_SECRET"]),
    s("bind", &["EASEL_BIND"], Some("127.0.0.1")),
    s("port", &["WORKER_PORT"], Some("7859")),
    secret("admin_token", &["EASEL_ADMIN_TOKEN"]),
    s("generator", &["EASEL_GENERATOR"], Some("sdxl")),
    s("model", &["EASEL_MODEL"], None),
    s("device", &["EASEL_DEVICE"], Some("cpu")),
    s("dtype", &["EASEL_DTYPE"], None),
    s("fake_delay_ms", &["EASEL_FAKE_DELAY_MS"], Some("0")),
    s("poll_ms", &["EASEL_POLL_MS"], Some("2000")),
    s("lease_ttl_secs", &["EASEL_LEASE_TTL_SECS"], Some("60")),
    s("shutdown_grace_secs", &["EASEL_SHUTDOWN_GRACE_SECS"], Some("60")),
    s("max_deliveries", &["EASEL_MAX_DELIVERIES"], Some("3")),
    s("retry_base_ms", &["EASEL_RETRY_BASE_MS"], Some("1000")),
    s("upload_budget_secs", &["EASEL_UPLOAD_BUDGET_SECS"], Some("60")),
    s("outcome_ttl_secs", &["EASEL_OUTCOME_TTL_SECS"], Some("604800")),
    s("reference_fallback", &["EASEL_REFERENCE_FALLBACK"], Some("false")),
    s(
        "reference_allow_private",
        &["EASEL_REFERENCE_ALLOW_PRIVATE"],
        Some("false"),
    ),
];

/// The queue name producers push to (`LPUSH sdxl_queue <json>`).
pub const DEFAULT_QUEUE: &str = "sdxl_queue";
/// The Supabase bucket the Python worker uploads to.
pub const DEFAULT_BUCKET: &str = "workspace-temp";
/// The file name of the embedded database under the data dir.
pub const DB_FILE: &str = "easel.db";

/// A configuration error: a setting is missing, malformed, or inconsistent with another.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{setting} = {value:?} (from {origin}) {problem}")]
    Invalid {
        setting: String,
        value: String,
        origin: Source,
        problem: String,
    },
    #[error("{0}")]
    Missing(String),
    #[error("cannot read config file {path}: {msg}")]
    File { path: PathBuf, msg: String },
    /// A setting whose value is well-formed but unusable (a device this build lacks, ...).
    #[error("{0}")]
    Unusable(String),
    #[error("unknown setting {0:?} passed as a flag (a bug in the caller)")]
    UnknownFlag(String),
}

/// Where a setting's value came from (for error messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env(&'static str),
    File(PathBuf),
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => write!(f, "a command-line flag"),
            Source::Env(name) => write!(f, "environment variable {name}"),
            Source::File(p) => write!(f, "{} [worker]", p.display()),
            Source::Default => write!(f, "the default"),
        }
    }
}

/// A secret value (a key or token). Its `Debug` never shows the value; use [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Settings after layering, still as text, each with its source.
#[derive(Debug, Default)]
pub struct Layers {
    values: BTreeMap<&'static str, (String, Source)>,
}

impl Layers {
    /// Layers `flags` over the environment (`env`) over `file` (an `easel.toml`) over defaults.
    pub fn resolve(
        flags: &[(&str, String)],
        env: &dyn Fn(&str) -> Option<String>,
        file: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let file_values = match file {
            Some(p) => read_file(p)?,
            None => BTreeMap::new(),
        };
        let mut values = BTreeMap::new();
        for set in SETTINGS {
            if let Some(v) = pick(set, flags, env, &file_values, file) {
                values.insert(set.key, v);
            }
        }
        for (k, _) in flags {
            if !SETTINGS.iter().any(|s| s.key == *k) {
                return Err(ConfigError::UnknownFlag(k.to_string()));
            }
        }
        Ok(Self { values })
    }

    /// Layers over the process environment and `easel.toml` (`EASEL_CONFIG`, or `./easel.toml`
    /// if it exists, unless `config_file` is given).
    pub fn from_process(flags: &[(&str, String)], config_file: Option<&Path>) -> Result<Self, ConfigError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let default_file = PathBuf::from("easel.toml");
        let file = match (config_file, env("EASEL_CONFIG")) {
            (Some(p), _) => Some(p.to_path_buf()),
            (None, Some(p)) => Some(PathBuf::from(p)),
            (None, None) => default_file.is_file().then_some(default_file),
        };
        Self::resolve(flags, &env, file.as_deref())
    }

    /// The value of `key`, if set anywhere.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|(v, _)| v.as_str())
    }

    fn source(&self, key: &str) -> Source {
        self.values.get(key).map(|(_, s)| s.clone()).unwrap_or(Source::Default)
    }

    fn invalid(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        let secret = SETTINGS.iter().any(|s| s.key == key && s.secret);
        let value = if secret {
            "<redacted>".to_string()
        } else {
            self.get(key).unwrap_or("").to_string()
        };
        ConfigError::Invalid {
            setting: key.to_string(),
            value,
            origin: self.source(key),
            problem: problem.into(),
        }
    }

    fn secret(&self, key: &str) -> Option<Secret> {
        self.get(key).map(Secret::new)
    }

    fn number<T: std::str::FromStr>(&self, key: &str, what: &str) -> Result<T, ConfigError> {
        let v = self.get(key).unwrap_or("");
        v.trim()
            .parse()
            .map_err(|_| self.invalid(key, format!("is not {what}")))
    }

    fn flag(&self, key: &str) -> Result<bool, ConfigError> {
        match self.get(key).unwrap_or("false").to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" | "" => Ok(false),
            _ => Err(self.invalid(key, "is not a boolean: use true or false")),
        }
    }
}

fn pick(
    set: &Setting,
    flags: &[(&str, String)],
    env: &dyn Fn(&str) -> Option<String>,
    file: &BTreeMap<String, String>,
    path: Option<&Path>,
) -> Option<(String, Source)> {
    if let Some((_, v)) = flags.iter().find(|(k, _)| *k == set.key) {
        return Some((v.clone(), Source::Flag));
    }
    if let Some((name, v)) = set.env.iter().find_map(|n| env(n).map(|v| (*n, v))) {
        return Some((v, Source::Env(name)));
    }
    if let (Some(v), Some(p)) = (file.get(set.key), path) {
        return Some((v.clone(), Source::File(p.to_path_buf())));
    }
    set.default.map(|d| (d.to_string(), Source::Default))
}

/// Reads the `[worker]` table of an `easel.toml` as text values. Keys it does not know are
/// logged and ignored (the file is shared with the orchestrator).
fn read_file(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let err = |msg: String| ConfigError::File {
        path: path.to_path_buf(),
        msg,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| err(format!("{e}")))?;
    let Some(worker) = doc.get("worker") else {
        return Ok(BTreeMap::new());
    };
    let table = worker
        .as_table()
        .ok_or_else(|| err("[worker] must be a table".into()))?;
    let mut out = BTreeMap::new();
    for (k, v) in table {
        if !SETTINGS.iter().any(|s| s.key == k) {
            tracing::warn!(setting = %k, file = %path.display(), "unknown [worker] setting ignored");
            continue;
        }
        let text = match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            _ => return Err(err(format!("[worker] {k} must be a string, number or boolean"))),
        };
        out.insert(k.clone(), text);
    }
    Ok(out)
}

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
    /// The SDXL engine: a diffusers folder, or the bundled tiny model when `model` is `None`.
    Sdxl {
        model: Option<PathBuf>,
        device: String,
        dtype: Option<String>,
    },
    /// The fast fake (tests and demos): solid images after `delay`.
    Fake { delay: Duration },
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
}

/// The longest lease accepted: a day; anything longer means a crashed worker's job waits too long.
const MAX_LEASE_SECS: u64 = 86_400;

impl WorkerConfig {
    /// Resolves flags over the process environment and `easel.toml`.
    pub fn load(flags: &[(&str, String)], config_file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_layers(&Layers::from_process(flags, config_file)?)
    }

    /// Builds the typed configuration from resolved layers.
    pub fn from_layers(l: &Layers) -> Result<Self, ConfigError> {
        let data_dir = PathBuf::from(l.get("data_dir").unwrap_or("./easel-data"));
        let supabase = supabase(l)?;
        Ok(Self {
            worker_name: l.get("worker_name").unwrap_or("sdxl").to_string(),
            queue: queue(l)?,
            queue_name: queue_name(l)?,
            storage: storage(l, &data_dir, supabase.as_ref())?,
            bucket: l.get("bucket").unwrap_or(DEFAULT_BUCKET).to_string(),
            callback: callback(l, supabase.as_ref())?,
            callback_secret: l.secret("callback_secret"),
            bind: l.number("bind", "an IP address such as 127.0.0.1 or 0.0.0.0")?,
            port: l.number("port", "a port number (0-65535)")?,
            admin_token: l.secret("admin_token"),
            generator: generator(l)?,
            timing: timing(l)?,
            max_deliveries: positive(l, "max_deliveries")?,
            reference_fallback: l.flag("reference_fallback")?,
            reference_allow_private: l.flag("reference_allow_private")?,
            data_dir,
        })
    }

    /// The embedded database file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join(DB_FILE)
    }
}

/// The queue name alone (for `describe` and `submit`).
pub fn queue_name(l: &Layers) -> Result<String, ConfigError> {
    let name = l.get("queue_name").unwrap_or(DEFAULT_QUEUE);
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(l.invalid("queue_name", "must be a non-empty name without spaces, e.g. sdxl_queue"));
    }
    Ok(name.to_string())
}

/// The queue backend alone (for `submit`).
pub fn queue(l: &Layers) -> Result<QueueBackend, ConfigError> {
    let url = l.get("queue_url").unwrap_or("sqlite");
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
            region: l.get("s3_region").unwrap_or("us-east-1").to_string(),
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
    match l.get("generator").unwrap_or("sdxl") {
        "sdxl" => Ok(GeneratorChoice::Sdxl {
            model: l.get("model").map(PathBuf::from),
            device: l.get("device").unwrap_or("cpu").to_string(),
            dtype: l.get("dtype").map(str::to_string),
        }),
        "fake" => Ok(GeneratorChoice::Fake {
            delay: Duration::from_millis(l.number("fake_delay_ms", "a number of milliseconds")?),
        }),
        _ => Err(l.invalid("generator", "is not a generator: use sdxl (or fake, for tests)")),
    }
}

fn timing(l: &Layers) -> Result<Timing, ConfigError> {
    let lease: u64 = positive(l, "lease_ttl_secs")?;
    if lease > MAX_LEASE_SECS {
        return Err(l.invalid(
            "lease_ttl_secs",
            format!("is longer than a day; use at most {MAX_LEASE_SECS}"),
        ));
    }
    Ok(Timing {
        poll: Duration::from_millis(positive(l, "poll_ms")?),
        lease_ttl: Duration::from_secs(lease),
        shutdown_grace: Duration::from_secs(l.number("shutdown_grace_secs", "a number of seconds")?),
        retry_base: Duration::from_millis(positive(l, "retry_base_ms")?),
        upload_budget: Duration::from_secs(l.number("upload_budget_secs", "a number of seconds")?),
        outcome_ttl: Duration::from_secs(positive(l, "outcome_ttl_secs")?),
    })
}

fn positive<T: std::str::FromStr + PartialOrd + Default>(l: &Layers, key: &str) -> Result<T, ConfigError> {
    let v: T = l.number(key, "a positive whole number")?;
    if v <= T::default() {
        return Err(l.invalid(key, "must be greater than zero"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(flags: &[(&str, &str)], env: &[(&str, &str)]) -> Layers {
        let flags: Vec<(&str, String)> = flags.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
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
        std::fs::write(&path, "[worker]\nport = 7000\npoll_ms = 5\n[orchestrator]\nx = 1\n").unwrap();
        let get = |k: &str| (k == "WORKER_PORT").then(|| "8000".to_string());
        let l = Layers::resolve(&[], &get, Some(&path)).unwrap();
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
