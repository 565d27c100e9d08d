//! Why this exists: the callback bodies the `job-callback` edge function reads. Their key
//! names are frozen by the contract, so they are plain structs serialised in declaration
//! order, pinned by snapshot tests (`tests/wire_snapshots.rs`). Nothing else builds them.

use serde::Serialize;

use super::spec::JobSpec;
use super::JobError;

/// The terminal callback body: `{job_id, status, assets, error_message, metadata}`.
#[derive(Clone, Debug, Serialize)]
pub struct CallbackBody<M> {
    pub job_id: String,
    pub status: &'static str,
    pub assets: Vec<Asset>,
    pub error_message: Option<String>,
    pub metadata: M,
}

/// One uploaded image.
#[derive(Clone, Debug, Serialize)]
pub struct Asset {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Bucket-relative path `{user_id}/{job_id}/{i}.png`.
    pub url: String,
    /// Bucket-relative path of the WebP thumbnail; omitted when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    pub metadata: AssetMetadata,
}

/// Per-image metadata.
#[derive(Clone, Debug, Serialize)]
pub struct AssetMetadata {
    pub width: u32,
    pub height: u32,
    pub format: &'static str,
    pub batch_size: u32,
    pub steps: u32,
    pub guidance_scale: f64,
    /// The seed this image used (`seed + asset_index`).
    pub seed: u64,
    pub file_size_bytes: u64,
    pub asset_index: u32,
    pub negative_prompt_used: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub img2img: Option<Img2ImgMetadata>,
}

/// Added to an asset's metadata for image-to-image: the values actually used.
#[derive(Clone, Debug, Serialize)]
pub struct Img2ImgMetadata {
    pub denoise_strength: f64,
    pub pipeline: &'static str,
    pub resize_policy: &'static str,
    pub effective_steps: u32,
    pub exact_copy_mode: bool,
}

/// The success body's `metadata`.
#[derive(Clone, Debug, Serialize)]
pub struct SuccessMetadata {
    pub seed: u64,
    pub generation_time: f64,
    pub num_images: u32,
    pub job_type: &'static str,
    pub original_prompt: String,
    pub final_prompt: String,
    pub compel_enabled: bool,
    pub compel_weights: Option<String>,
    pub compel_success: bool,
    pub enhancement_strategy: &'static str,
    pub final_prompt_type: &'static str,
}

/// The failure body's `metadata`.
#[derive(Clone, Debug, Serialize)]
pub struct FailureMetadata {
    pub error_type: &'static str,
    pub job_type: Option<String>,
    pub timestamp: f64,
}

/// How an image-to-image reference is fitted to the job's size: scaled to cover, then
/// centre-cropped (no stretching, no black bars).
pub const RESIZE_POLICY: &str = "center_crop";

impl SuccessMetadata {
    /// The success metadata of `spec`, with `uploaded` images and the time generation took.
    ///
    /// Compel: the weights are appended to the prompt (as the Python worker does) and, when
    /// the generator applies A1111-style weighting (`weighted`), the whole prompt is parsed
    /// as weighted text: `compel_success` is then `true` and the strategy `a1111_weighting`.
    /// A generator without weighting reports `fallback` (weights kept as plain text).
    pub fn new(spec: &JobSpec, uploaded: u32, generation_time: f64, weighted: bool) -> Self {
        let strategy = match (spec.compel_enabled, weighted) {
            (false, _) => "none",
            (true, true) => "a1111_weighting",
            (true, false) => "fallback",
        };
        Self {
            seed: spec.seed,
            generation_time,
            num_images: uploaded,
            job_type: spec.job_type.as_str(),
            original_prompt: spec.prompt.clone(),
            final_prompt: spec.final_prompt.clone(),
            compel_enabled: spec.compel_enabled,
            compel_weights: spec.compel_weights.clone().filter(|_| spec.compel_enabled),
            compel_success: spec.compel_enabled && weighted,
            enhancement_strategy: strategy,
            final_prompt_type: "string",
        }
    }
}

/// The success body.
pub fn completed(
    spec: &JobSpec,
    assets: Vec<Asset>,
    generation_time: f64,
    weighted: bool,
) -> CallbackBody<SuccessMetadata> {
    let uploaded = assets.len() as u32;
    CallbackBody {
        job_id: spec.id.clone(),
        status: "completed",
        assets,
        error_message: None,
        metadata: SuccessMetadata::new(spec, uploaded, generation_time, weighted),
    }
}

/// The failure body for job `id` (of `job_type` as written, if readable) at `timestamp`.
pub fn failed(id: &str, job_type: Option<String>, error: &JobError, timestamp: f64) -> CallbackBody<FailureMetadata> {
    CallbackBody {
        job_id: id.to_string(),
        status: "failed",
        assets: Vec::new(),
        error_message: Some(error.message.clone()),
        metadata: FailureMetadata {
            error_type: error.kind.as_str(),
            job_type,
            timestamp,
        },
    }
}

/// A `processing` callback (sent only when progress callbacks are enabled): the job's phase
/// and denoising step, `assets` empty. Producers that know only `completed` and `failed`
/// ignore it; it never follows the terminal callback.
pub fn progress(id: &str, phase: &str, step: u32, total: u32, timestamp: f64) -> String {
    serde_json::json!({
        "job_id": id,
        "status": "processing",
        "assets": [],
        "error_message": null,
        "metadata": {"progress": {"phase": phase, "step": step, "total": total}, "timestamp": timestamp},
    })
    .to_string()
}

/// The bucket-relative key of image `i`.
pub fn image_key(user_id: &str, job_id: &str, i: u32) -> String {
    format!("{user_id}/{job_id}/{i}.png")
}

/// The bucket-relative key of image `i`'s thumbnail.
pub fn thumbnail_key(user_id: &str, job_id: &str, i: u32) -> String {
    format!("{user_id}/{job_id}/{i}.thumb.webp")
}

/// Serialises a body to the exact bytes sent (and stored in the outbox).
pub fn to_json<M: Serialize>(body: &CallbackBody<M>) -> String {
    serde_json::to_string(body).unwrap_or_else(|e| {
        // Serialising these plain structs cannot fail; keep a valid body if it ever does.
        format!(
            r#"{{"job_id":{:?},"status":"failed","assets":[],"error_message":"serialisation failed: {e}"}}"#,
            body.job_id
        )
    })
}
