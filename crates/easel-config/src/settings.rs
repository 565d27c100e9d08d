//! Why this exists: the one list of the worker runtime's settings — the `[worker]` table of
//! `easel.toml`, their environment names (the ourvidz names first where both exist), which are
//! secrets, their kind and their default. Defaults are written here and nowhere else; the old
//! integer keys (`poll_ms`, `lease_ttl_secs`, ...) are read as deprecated aliases of the
//! duration keys.

use std::collections::BTreeMap;

use crate::consts::{DEFAULT_BIND, DEFAULT_BUCKET, DEFAULT_QUEUE, DEFAULT_WORKER_PORT};
use crate::error::ConfigError;

/// What a setting holds (for parsing and for `easel config show`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    Secret,
    Path,
    Duration,
    Bool,
    Count,
    Port,
    Address,
}

/// A setting's default.
#[derive(Clone, Copy, Debug)]
pub enum Default {
    /// Unset unless given.
    None,
    /// This text, parsed like any other value.
    Text(&'static str),
    /// A port number.
    Port(u16),
    /// The platform data home (see [`crate::home`]).
    DataHome,
}

/// An old spelling of a duration setting: an integer in `unit`, under another key and
/// environment variable. Read when the new names are absent, with a deprecation note.
#[derive(Clone, Copy, Debug)]
pub struct Legacy {
    pub key: &'static str,
    pub env: &'static str,
    /// `"ms"` or `"s"`: the unit the integer was in.
    pub unit: &'static str,
}

/// One setting.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    /// Its key in `[worker]` (and the name flags map to).
    pub key: &'static str,
    /// Environment variables, in priority order.
    pub env: &'static [&'static str],
    pub kind: Kind,
    pub default: Default,
    pub legacy: Option<Legacy>,
    /// Read from the top level of `easel.toml` instead of `[worker]` (settings every command
    /// shares, such as the data home).
    pub top_level: bool,
    /// One line for `easel config show --help` and errors.
    pub about: &'static str,
}

const fn s(
    key: &'static str,
    env: &'static [&'static str],
    kind: Kind,
    default: Default,
    about: &'static str,
) -> Setting {
    Setting {
        key,
        env,
        kind,
        default,
        legacy: None,
        top_level: false,
        about,
    }
}

const fn dur(
    key: &'static str,
    env: &'static [&'static str],
    default: &'static str,
    legacy: Legacy,
    about: &'static str,
) -> Setting {
    Setting {
        key,
        env,
        kind: Kind::Duration,
        default: Default::Text(default),
        legacy: Some(legacy),
        top_level: false,
        about,
    }
}

const fn old(key: &'static str, env: &'static str, unit: &'static str) -> Legacy {
    Legacy { key, env, unit }
}

use Kind::*;

/// Every setting the worker runtime reads.
pub const SETTINGS: &[Setting] = &[
    s(
        "worker_name",
        &["EASEL_WORKER_NAME"],
        Text,
        Default::Text("sdxl"),
        "name in logs, metrics and the job table",
    ),
    Setting {
        top_level: true,
        ..s(
            "data_dir",
            &["EASEL_DATA_DIR"],
            Path,
            Default::DataHome,
            "the data home: embedded queue, job table, local storage",
        )
    },
    s(
        "queue_url",
        &["EASEL_QUEUE_URL", "UPSTASH_REDIS_REST_URL"],
        Text,
        Default::Text("sqlite"),
        "sqlite, redis://..., rediss://... or an Upstash https:// URL",
    ),
    s(
        "queue_token",
        &["UPSTASH_REDIS_REST_TOKEN"],
        Secret,
        Default::None,
        "the Upstash REST token",
    ),
    s(
        "queue_name",
        &["EASEL_QUEUE_NAME"],
        Text,
        Default::Text(DEFAULT_QUEUE),
        "the list producers push jobs to",
    ),
    s(
        "supabase_url",
        &["SUPABASE_URL"],
        Text,
        Default::None,
        "Supabase project URL (storage and callback)",
    ),
    s(
        "supabase_service_key",
        &["SUPABASE_SERVICE_KEY"],
        Secret,
        Default::None,
        "Supabase service-role key",
    ),
    s(
        "storage",
        &["EASEL_STORAGE"],
        Text,
        Default::None,
        "local, supabase or s3://BUCKET (default: supabase if SUPABASE_URL is set, else local)",
    ),
    s(
        "bucket",
        &["EASEL_BUCKET"],
        Text,
        Default::Text(DEFAULT_BUCKET),
        "the bucket images are uploaded to",
    ),
    s(
        "s3_endpoint",
        &["EASEL_S3_ENDPOINT", "AWS_ENDPOINT_URL"],
        Text,
        Default::None,
        "S3-compatible endpoint URL",
    ),
    s(
        "s3_region",
        &["EASEL_S3_REGION", "AWS_REGION"],
        Text,
        Default::Text("us-east-1"),
        "S3 region",
    ),
    s(
        "s3_access_key_id",
        &["AWS_ACCESS_KEY_ID"],
        Text,
        Default::None,
        "S3 access key id",
    ),
    s(
        "s3_secret_access_key",
        &["AWS_SECRET_ACCESS_KEY"],
        Secret,
        Default::None,
        "S3 secret access key",
    ),
    s(
        "callback_url",
        &["EASEL_CALLBACK_URL"],
        Text,
        Default::None,
        "http(s) URL, or job-table (default: Supabase's job-callback, else job-table)",
    ),
    s(
        "callback_secret",
        &["EASEL_CALLBACK_SECRET"],
        Secret,
        Default::None,
        "HMAC key signing callback bodies",
    ),
    s(
        "bind",
        &["EASEL_BIND"],
        Address,
        Default::Text(DEFAULT_BIND),
        "address of the worker's HTTP endpoints",
    ),
    s(
        "port",
        &["WORKER_PORT"],
        Port,
        Default::Port(DEFAULT_WORKER_PORT),
        "port of the worker's HTTP endpoints (0: any free one)",
    ),
    s(
        "admin_token",
        &["EASEL_ADMIN_TOKEN"],
        Secret,
        Default::None,
        "bearer token of the /memory/* endpoints",
    ),
    s(
        "generator",
        &["EASEL_GENERATOR"],
        Text,
        Default::Text("sdxl"),
        "sdxl, or fake for tests",
    ),
    s(
        "model",
        &["EASEL_MODEL"],
        Path,
        Default::None,
        "diffusers folder or single-file .safetensors (default: the bundled tiny model)",
    ),
    s(
        "device",
        &["EASEL_DEVICE"],
        Text,
        Default::Text("cpu"),
        "cpu, cuda or cuda:N",
    ),
    s(
        "dtype",
        &["EASEL_DTYPE"],
        Text,
        Default::None,
        "f32, f16 or bf16 (default: f32 on cpu, f16 on cuda)",
    ),
    dur(
        "fake_delay",
        &["EASEL_FAKE_DELAY"],
        "0s",
        old("fake_delay_ms", "EASEL_FAKE_DELAY_MS", "ms"),
        "time the fake generator takes per job",
    ),
    dur(
        "poll",
        &["EASEL_POLL"],
        "2s",
        old("poll_ms", "EASEL_POLL_MS", "ms"),
        "sleep between polls of an empty queue",
    ),
    dur(
        "lease_ttl",
        &["EASEL_LEASE_TTL"],
        "60s",
        old("lease_ttl_secs", "EASEL_LEASE_TTL_SECS", "s"),
        "a lease without heartbeat expires after this",
    ),
    dur(
        "shutdown_grace",
        &["EASEL_SHUTDOWN_GRACE"],
        "60s",
        old("shutdown_grace_secs", "EASEL_SHUTDOWN_GRACE_SECS", "s"),
        "time a running job gets to finish after SIGTERM",
    ),
    s(
        "candle_kernels",
        &["EASEL_CANDLE_KERNELS"],
        Bool,
        Default::Text("false"),
        "run candle's own CPU ops instead of Easel's kernels (for comparing the two)",
    ),
    s(
        "timeout_fast",
        &["EASEL_TIMEOUT_FAST"],
        Duration,
        Default::Text("15m"),
        "time limit of an sdxl_image_fast job (config.timeout_secs overrides)",
    ),
    s(
        "timeout_high",
        &["EASEL_TIMEOUT_HIGH"],
        Duration,
        Default::Text("30m"),
        "time limit of an sdxl_image_high job (config.timeout_secs overrides)",
    ),
    s(
        "progress_callbacks",
        &["EASEL_PROGRESS_CALLBACKS"],
        Bool,
        Default::Text("false"),
        "send status \"processing\" callbacks with metadata.progress while a job runs",
    ),
    s(
        "max_deliveries",
        &["EASEL_MAX_DELIVERIES"],
        Count,
        Default::Text("3"),
        "deliveries after which an unfinished job is failed",
    ),
    dur(
        "retry_base",
        &["EASEL_RETRY_BASE"],
        "1s",
        old("retry_base_ms", "EASEL_RETRY_BASE_MS", "ms"),
        "first retry delay of uploads and callbacks",
    ),
    dur(
        "upload_budget",
        &["EASEL_UPLOAD_BUDGET"],
        "60s",
        old("upload_budget_secs", "EASEL_UPLOAD_BUDGET_SECS", "s"),
        "how long one upload keeps retrying",
    ),
    dur(
        "outcome_ttl",
        &["EASEL_OUTCOME_TTL"],
        "7d",
        old("outcome_ttl_secs", "EASEL_OUTCOME_TTL_SECS", "s"),
        "how long a job's outcome is kept",
    ),
    s(
        "reference_fallback",
        &["EASEL_REFERENCE_FALLBACK"],
        Bool,
        Default::Text("false"),
        "text-to-image when a reference image cannot be fetched",
    ),
    s(
        "reference_allow_private",
        &["EASEL_REFERENCE_ALLOW_PRIVATE"],
        Bool,
        Default::Text("false"),
        "let reference URLs reach private addresses",
    ),
];

/// The setting named `key` (new spelling).
pub fn find(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

/// The setting whose old spelling is `key`.
pub fn find_legacy(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.legacy.is_some_and(|l| l.key == key))
}

/// The closest known key to a misspelt one, for "did you mean" hints.
pub fn suggest(key: &str) -> Option<&'static str> {
    SETTINGS
        .iter()
        .map(|s| (distance(key, s.key), s.key))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k)
}

/// `[worker]` as text values: every key must be a setting (or an old spelling of one).
pub fn worker_table(table: Option<&toml::Table>, origin: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let schema = |message: String| ConfigError::Schema {
        origin: origin.to_string(),
        message,
    };
    let mut out = BTreeMap::new();
    for (k, v) in table.into_iter().flatten() {
        if find(k).is_none() && find_legacy(k).is_none() {
            let hint = suggest(k).map(|s| format!("; did you mean {s}?")).unwrap_or_default();
            return Err(schema(format!("[worker] has no setting {k:?}{hint}")));
        }
        let text = match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            _ => return Err(schema(format!("[worker] {k} must be a string, number or boolean"))),
        };
        out.insert(k.clone(), text);
    }
    Ok(out)
}

/// Levenshtein distance (keys are short ASCII).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_environment_names_are_unique() {
        let mut names: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        names.extend(SETTINGS.iter().filter_map(|s| s.legacy.map(|l| l.key)));
        let mut env: Vec<&str> = SETTINGS.iter().flat_map(|s| s.env.iter().copied()).collect();
        env.extend(SETTINGS.iter().filter_map(|s| s.legacy.map(|l| l.env)));
        for list in [&mut names, &mut env] {
            let before = list.len();
            list.sort_unstable();
            list.dedup();
            assert_eq!(before, list.len());
        }
    }

    #[test]
    fn a_misspelt_key_gets_a_suggestion() {
        assert_eq!(suggest("lease_tll"), Some("lease_ttl"));
        assert_eq!(suggest("completely_unrelated_thing"), None);
    }
}
