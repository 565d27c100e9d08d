//! Why this exists: `easel submit` pushes a job exactly as the ourvidz producers do (a contract
//! payload, `LPUSH <queue> <json>`) to whichever queue is configured, and waits for the job's
//! outcome record in that queue's store (every backend keeps one) and says where the images are.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::db::{Db, DbError};
use crate::queue::control::Progress;
use crate::queue::{self, QueueError};
use easel_config::{Layers, StorageBackend, WorkerConfig};

/// How often `--wait` looks for the outcome: fast enough to feel immediate, cheap for any store.
const WAIT_POLL: Duration = Duration::from_millis(200);

/// What to submit.
#[derive(Clone, Debug, Default)]
pub struct Submission {
    pub prompt: String,
    pub job_type: String,
    pub user_id: String,
    pub num_images: Option<u32>,
    pub seed: Option<u64>,
    pub negative_prompt: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub steps: Option<u32>,
    pub reference_image_url: Option<String>,
    pub denoise_strength: Option<f64>,
    /// The job's own time limit (`config.timeout_secs`).
    pub timeout_secs: Option<u64>,
}

/// A new job id (a random UUID v4, as Supabase's `gen_random_uuid()`).
pub fn new_job_id() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    let variant = ((u8::from_str_radix(&h[16..17], 16).unwrap_or(0) & 0x3) | 0x8) as u32;
    format!(
        "{}-{}-4{}-{:x}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        variant,
        &h[17..20],
        &h[20..32]
    )
}

/// The contract payload of `s` with job id `id`.
pub fn payload(s: &Submission, id: &str) -> Value {
    let mut config = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            config.insert(k.to_string(), v);
        }
    };
    put("num_images", s.num_images.map(Value::from));
    put("seed", s.seed.map(Value::from));
    put("negative_prompt", s.negative_prompt.clone().map(Value::from));
    put("width", s.width.map(Value::from));
    put("height", s.height.map(Value::from));
    put("num_inference_steps", s.steps.map(Value::from));
    put("timeout_secs", s.timeout_secs.map(Value::from));
    let mut metadata = Map::new();
    if let Some(url) = &s.reference_image_url {
        metadata.insert("reference_image_url".into(), url.clone().into());
    }
    if let Some(d) = s.denoise_strength {
        metadata.insert("denoise_strength".into(), d.into());
    }
    json!({"id": id, "type": s.job_type, "prompt": s.prompt, "user_id": s.user_id, "config": config,
           "metadata": metadata, "queued_at": crate::db::now()})
}

/// A submit failure.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Config(#[from] easel_config::ConfigError),
    #[error("job {0} has no outcome after {1:?}; is a worker running (`easel worker sdxl run`)?")]
    Timeout(String, Duration),
}

/// What [`push`] did.
#[derive(Clone, Debug)]
pub struct Pushed {
    /// The queue, as the worker describes it (backend, place, name).
    pub queue: String,
    /// Whether any worker has ever started on this queue: if not, the job waits until one
    /// starts with the same settings (data home, queue URL, queue name).
    pub worker_seen: bool,
}

/// Pushes `payload` (a JSON object) to the queue `layers` configure.
pub async fn push(layers: &Layers, payload: &Value) -> Result<Pushed, SubmitError> {
    let config = WorkerConfig::from_layers(layers)?;
    let q = open_queue_as(&config, "submit")?;
    q.push(payload.to_string().as_bytes()).await?;
    Ok(Pushed {
        queue: q.describe(),
        worker_seen: q.worker_started().await?.is_some(),
    })
}

/// The configured queue, opened as consumer `role` (a tool, not a worker: it never leases).
pub fn open_queue_as(config: &WorkerConfig, role: &str) -> Result<std::sync::Arc<dyn queue::Queue>, SubmitError> {
    let db = Db::open(&config.db_path())?;
    let opts = queue::QueueOptions::of(config);
    Ok(queue::open(
        &config.queue,
        &config.queue_name,
        queue::consumer_id(role),
        &db,
        opts,
    )?)
}

/// The end of a job as its outcome record says.
#[derive(Clone, Debug)]
pub struct Finished {
    /// The terminal callback body.
    pub outcome: Value,
    /// Local paths of the assets (local storage only).
    pub files: Vec<PathBuf>,
}

/// Waits up to `timeout` for job `id`'s outcome record in the configured queue's store,
/// telling `progress` what the job is doing while it runs.
pub async fn wait(
    layers: &Layers,
    id: &str,
    timeout: Duration,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<Finished, SubmitError> {
    let config = WorkerConfig::from_layers(layers)?;
    let q = open_queue_as(&config, "submit")?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(p)) = q.show(id).await.map(|d| d.and_then(|d| d.row.progress)) {
            progress(&p);
        }
        if let Some(body) = q.outcome(id).await? {
            let outcome = serde_json::from_str(&body).unwrap_or(Value::String(body));
            return Ok(Finished {
                files: asset_files(&config, &outcome),
                outcome,
            });
        }
        if Instant::now() >= deadline {
            return Err(SubmitError::Timeout(id.to_string(), timeout));
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

fn asset_files(config: &WorkerConfig, outcome: &Value) -> Vec<PathBuf> {
    let StorageBackend::Local { root } = &config.storage else {
        return Vec::new();
    };
    let bucket = root.join(&config.bucket);
    let assets = outcome
        .get("assets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    assets
        .iter()
        .flat_map(|a| ["url", "thumbnail_url"].map(|k| a.get(k).and_then(Value::as_str).map(|p| bucket.join(p))))
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_uuid_v4_shaped() {
        let id = new_job_id();
        let parts: Vec<_> = id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12], "{id}");
        assert_eq!(&id[14..15], "4");
        assert!("89ab".contains(&id[19..20]), "{id}");
    }

    #[test]
    fn the_payload_is_a_contract_job() {
        let s = Submission {
            prompt: "p".into(),
            job_type: "sdxl_image_fast".into(),
            user_id: "u".into(),
            seed: Some(3),
            ..Default::default()
        };
        let v = payload(&s, "j");
        let env = crate::contract::parse(&v.to_string()).unwrap();
        let spec = crate::contract::JobSpec::from_envelope(&env, None).unwrap();
        assert_eq!((spec.id.as_str(), spec.seed, spec.num_images), ("j", 3, 1));
    }
}
