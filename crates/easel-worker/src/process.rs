//! Why this exists: what happens to one leased job, start to finish, in one readable place.
//!
//! Flow: read the id (none → dead letter) → already finished (a redelivery)? ack → delivered
//! too often? fail + dead letter → validate → fetch the reference (img2img) → generate →
//! encode PNG + thumbnail → upload (PNG first, then its thumbnail) → store the terminal
//! callback in the outbox → ack. Every failure once the id is known becomes a `failed` body;
//! if even the outbox cannot be written, the lease is left to expire so the job comes back.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tracing::Instrument;

use crate::contract::wire::{self, Asset, AssetMetadata, Img2ImgMetadata};
use crate::contract::{self, Envelope, ErrorKind, JobError, JobSpec};
use crate::encode;
use crate::generator::{GeneratedImage, GenerationSpec, InitSpec};
use crate::metrics::{Outcome, Phase};
use crate::queue::Delivery;
use crate::reference;
use crate::state::JobState;
use crate::storage;
use crate::worker::Shared;

/// Handles one delivery to its end; returns how it ended (`None` if it could not be recorded
/// and was left for redelivery).
pub async fn handle(ctx: Arc<Shared>, d: Delivery) -> Option<Outcome> {
    let env = match contract::parse(&d.payload) {
        Ok(env) => env,
        Err(unreadable) => return dead_letter_unreadable(&ctx, &d, &unreadable.reason).await,
    };
    let span = tracing::info_span!("job", job.id = %env.id, worker.name = %ctx.name, delivery = d.deliveries);
    handle_job(ctx, d, env).instrument(span).await
}

async fn dead_letter_unreadable(ctx: &Shared, d: &Delivery, reason: &str) -> Option<Outcome> {
    let mut st = JobState::Leased;
    tracing::warn!(worker.name = %ctx.name, reason, "payload without a readable job id; dead-lettered");
    if let Err(e) = ctx.queue.dead_letter(d, reason).await {
        tracing::error!(error = %e, "cannot dead-letter the payload; it will be redelivered");
        return None;
    }
    advance(&mut st, JobState::DeadLettered);
    ctx.metrics.job(Outcome::DeadLettered);
    Some(Outcome::DeadLettered)
}

async fn handle_job(ctx: Arc<Shared>, d: Delivery, env: Envelope) -> Option<Outcome> {
    let mut st = JobState::Leased;
    match ctx.notifier.has_terminal(&env.id).await {
        Ok(true) => return ack_redelivery(&ctx, &d, &mut st).await,
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "cannot check the outbox for an earlier outcome"),
    }
    if d.deliveries > ctx.max_deliveries {
        return fail_over_limit(&ctx, &d, &env, &mut st).await;
    }
    tracing::info!(
        job.r#type = env.job_type_text().as_deref().unwrap_or("?"),
        "job started"
    );
    let started = Instant::now();
    let (body, outcome) = match execute(&ctx, &env, &mut st).await {
        Ok(body) => (body, Outcome::Completed),
        Err(e) => {
            tracing::warn!(error_type = e.kind.as_str(), error = %e.message, "job failed");
            (failed_body(&env, &e), Outcome::Failed)
        }
    };
    record_and_ack(&ctx, &d, &env.id, body, &mut st).await?;
    ctx.metrics.job(outcome);
    tracing::info!(outcome = ?outcome, secs = started.elapsed().as_secs_f64(), "job finished");
    Some(outcome)
}

async fn ack_redelivery(ctx: &Shared, d: &Delivery, st: &mut JobState) -> Option<Outcome> {
    tracing::info!("job already has a terminal callback (a redelivery after a crash); acknowledging it");
    if let Err(e) = ctx.queue.ack(d).await {
        tracing::error!(error = %e, "cannot acknowledge the redelivered job");
        return None;
    }
    advance(st, JobState::Acked);
    None
}

async fn fail_over_limit(ctx: &Shared, d: &Delivery, env: &Envelope, st: &mut JobState) -> Option<Outcome> {
    let msg = format!(
        "job was delivered {} times without finishing (the worker stopped or crashed each time); giving up after {}",
        d.deliveries, ctx.max_deliveries
    );
    tracing::error!(
        deliveries = d.deliveries,
        "delivery limit exceeded; failing and dead-lettering the job"
    );
    let body = failed_body(env, &JobError::new(ErrorKind::DeliveryLimit, msg.clone()));
    if let Err(e) = ctx.notifier.record(&env.id, body).await {
        tracing::error!(error = %e, "cannot store the failure callback; the job will be redelivered");
        return None;
    }
    advance(st, JobState::Recorded);
    if let Err(e) = ctx.queue.dead_letter(d, &msg).await {
        tracing::error!(error = %e, "cannot dead-letter the job");
    }
    advance(st, JobState::DeadLettered);
    ctx.metrics.job(Outcome::DeadLettered);
    Some(Outcome::DeadLettered)
}

async fn record_and_ack(ctx: &Shared, d: &Delivery, id: &str, body: String, st: &mut JobState) -> Option<()> {
    if let Err(e) = ctx.notifier.record(id, body).await {
        tracing::error!(error = %e, "cannot store the terminal callback; leaving the lease to expire so the job is retried");
        return None;
    }
    advance(st, JobState::Recorded);
    if let Err(e) = ctx.queue.ack(d).await {
        tracing::error!(error = %e, "cannot acknowledge the job; a redelivery will be acknowledged without rerunning it");
    }
    advance(st, JobState::Acked);
    Some(())
}

fn failed_body(env: &Envelope, e: &JobError) -> String {
    wire::to_json(&wire::failed(&env.id, env.job_type_text(), e, crate::db::now()))
}

/// Applies a state change; an illegal one is a bug, logged loudly.
fn advance(st: &mut JobState, next: JobState) {
    if let Err(e) = st.move_to(next) {
        tracing::error!(error = %e, "bug: illegal job state change");
    }
}

async fn execute(ctx: &Shared, env: &Envelope, st: &mut JobState) -> Result<String, JobError> {
    let info = ctx.generator.info();
    let spec = JobSpec::from_envelope(env, info.preset_side)?;
    advance(st, JobState::Accepted);
    let init = fetch_reference(ctx, &spec).await?;
    let img2img = init.as_ref().and(spec.reference.as_ref()).map(|r| Img2ImgMetadata {
        denoise_strength: r.strength,
        pipeline: "img2img",
        resize_policy: wire::RESIZE_POLICY,
        effective_steps: r.effective_steps,
        exact_copy_mode: r.exact_copy,
    });
    let started = Instant::now();
    advance(st, JobState::Generating);
    let images = generate(ctx, &spec, init).await?;
    advance(st, JobState::Uploading);
    let assets = upload(ctx, &spec, images, img2img).await?;
    let weighting = spec.compel_enabled && info.weighted_prompts;
    Ok(wire::to_json(&wire::completed(
        &spec,
        assets,
        started.elapsed().as_secs_f64(),
        weighting,
    )))
}

async fn fetch_reference(ctx: &Shared, spec: &JobSpec) -> Result<Option<InitSpec>, JobError> {
    let Some(r) = &spec.reference else { return Ok(None) };
    let started = Instant::now();
    let fetched = reference::fetch(&ctx.http, &r.url, ctx.reference_allow_private).await;
    ctx.metrics.phase(Phase::Reference, started.elapsed());
    match fetched {
        Ok(img) => Ok(Some(InitSpec {
            image: reference::cover(&img, spec.width, spec.height),
            strength: r.strength,
        })),
        Err(e) if ctx.reference_fallback => {
            tracing::warn!(error = %e, "reference image unavailable; falling back to text-to-image (EASEL_REFERENCE_FALLBACK)");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

async fn generate(ctx: &Shared, spec: &JobSpec, init: Option<InitSpec>) -> Result<Vec<GeneratedImage>, JobError> {
    let gspec = GenerationSpec {
        prompt: spec.final_prompt.clone(),
        negative_prompt: spec.negative_prompt.clone(),
        steps: spec.steps,
        guidance: spec.guidance,
        width: spec.width,
        height: spec.height,
        num_images: spec.num_images,
        seed: spec.seed,
        init,
        weighted_prompt: spec.compel_enabled,
    };
    let _engine = ctx.engine.lock().await;
    let generator = ctx.generator.clone();
    let started = Instant::now();
    let joined = tokio::task::spawn_blocking(move || {
        generator.generate(&gspec, &mut |step, total| tracing::debug!(step, total, "denoising"))
    })
    .await;
    ctx.metrics.phase(Phase::Generate, started.elapsed());
    let result = joined.map_err(|e| JobError::new(ErrorKind::Generation, format!("the engine crashed: {e}")))?;
    result.map_err(|e| JobError::new(ErrorKind::Generation, e.to_string()))
}

/// One image's encoded bytes.
struct Encoded {
    png: Bytes,
    thumbnail: Option<Bytes>,
}

async fn encode_all(ctx: &Shared, images: Vec<GeneratedImage>) -> Result<Vec<Encoded>, JobError> {
    let started = Instant::now();
    let joined = tokio::task::spawn_blocking(move || {
        images
            .iter()
            .map(|g| {
                let png = encode::png(&g.rgb, &g.parameters)?;
                let thumbnail = encode::thumbnail(&g.rgb)
                    .map_err(|e| tracing::warn!(error = %e, "no thumbnail"))
                    .ok();
                Ok(Encoded {
                    png: png.into(),
                    thumbnail: thumbnail.map(Bytes::from),
                })
            })
            .collect::<Result<Vec<_>, encode::EncodeError>>()
    })
    .await;
    ctx.metrics.phase(Phase::Encode, started.elapsed());
    let encoded = joined.map_err(|e| JobError::new(ErrorKind::Generation, format!("encoding crashed: {e}")))?;
    encoded.map_err(|e| JobError::new(ErrorKind::Generation, e.to_string()))
}

async fn upload(
    ctx: &Shared,
    spec: &JobSpec,
    images: Vec<GeneratedImage>,
    img2img: Option<Img2ImgMetadata>,
) -> Result<Vec<Asset>, JobError> {
    let encoded = encode_all(ctx, images).await?;
    let started = Instant::now();
    let mut assets = Vec::new();
    let mut last_error = None;
    for (i, e) in encoded.into_iter().enumerate() {
        match upload_one(ctx, spec, i as u32, e, img2img.clone()).await {
            Ok(asset) => assets.push(asset),
            Err(err) => {
                tracing::error!(index = i, error = %err, "image upload failed after retries; skipping it");
                last_error = Some(err);
            }
        }
    }
    ctx.metrics.phase(Phase::Upload, started.elapsed());
    if assets.is_empty() {
        let why = last_error.map(|e| e.to_string()).unwrap_or_default();
        return Err(JobError::new(
            ErrorKind::Storage,
            format!("no image could be uploaded: {why}"),
        ));
    }
    Ok(assets)
}

async fn upload_one(
    ctx: &Shared,
    spec: &JobSpec,
    i: u32,
    e: Encoded,
    img2img: Option<Img2ImgMetadata>,
) -> Result<Asset, storage::StorageError> {
    let key = wire::image_key(&spec.user_id, &spec.id, i);
    let size = e.png.len() as u64;
    storage::put_with_retry(
        ctx.storage.as_ref(),
        &ctx.storage_policy,
        &ctx.metrics,
        &key,
        e.png,
        "image/png",
    )
    .await?;
    let thumbnail_url = match e.thumbnail {
        Some(t) => upload_thumbnail(ctx, spec, i, t).await,
        None => None,
    };
    let metadata = AssetMetadata {
        width: spec.width,
        height: spec.height,
        format: "png",
        batch_size: spec.num_images,
        steps: spec.steps,
        guidance_scale: spec.guidance,
        seed: spec.seed.wrapping_add(i as u64),
        file_size_bytes: size,
        asset_index: i,
        negative_prompt_used: spec.negative_prompt.is_some(),
        img2img,
    };
    Ok(Asset {
        kind: "image",
        url: key,
        thumbnail_url,
        metadata,
    })
}

async fn upload_thumbnail(ctx: &Shared, spec: &JobSpec, i: u32, bytes: Bytes) -> Option<String> {
    let key = wire::thumbnail_key(&spec.user_id, &spec.id, i);
    let r = storage::put_with_retry(
        ctx.storage.as_ref(),
        &ctx.storage_policy,
        &ctx.metrics,
        &key,
        bytes,
        "image/webp",
    )
    .await;
    match r {
        Ok(()) => Some(key),
        Err(e) => {
            tracing::warn!(index = i, error = %e, "thumbnail upload failed; the asset is reported without thumbnail_url");
            None
        }
    }
}
