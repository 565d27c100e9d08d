//! Why this exists: what happens to one leased job, start to finish, in one readable place.
//!
//! Flow: payload bytes → text (not UTF-8 → dead letter, bytes kept) → read the id (none →
//! dead letter; unparsable but with a readable id → `failed`) → the job already has an outcome?
//! (a re-push → its recorded callback is sent again; a redelivery of a run that finished
//! elsewhere → dropped) → delivered too often? `failed` + dead letter → validate (ids must be
//! safe path segments) → fetch the reference (img2img) → generate → encode PNG + thumbnail →
//! upload (PNG first, then its thumbnail) → [`crate::queue::Queue::finish`]: the outcome
//! recorded, its callback queued and the delivery removed, in one atomic step. Every failure
//! once the id is known becomes a `failed` body; if even the outcome cannot be recorded, the
//! delivery is left in flight so the job comes back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::Instrument;

use crate::config::duration::Human;
use crate::contract::wire::{self, Asset, AssetMetadata, Img2ImgMetadata};
use crate::contract::{self, Envelope, ErrorKind, JobError, JobSpec, JobType, Unreadable};
use crate::encode;
use crate::generator::{GeneratedImage, GenerationSpec, InitSpec};
use crate::logsafe::Safe;
use crate::metrics::{Outcome, Phase};
use crate::queue::{Delivery, Finish, Recorded};
use crate::reference;
use crate::shared::Shared;
use crate::state::JobState;
use crate::storage;
use crate::watch::{Reports, Stop, Watch};

/// Handles one delivery to its end; returns how it ended (`None` if it could not be recorded
/// and was left for redelivery).
pub async fn handle(ctx: Arc<Shared>, d: Delivery) -> Option<Outcome> {
    let text = match d.text() {
        Ok(t) => t.to_string(),
        Err(e) => {
            let reason = format!(
                "payload is not UTF-8 text (invalid byte at offset {}); its bytes are kept in the dead letter",
                e.valid_up_to()
            );
            return dead_letter_unreadable(&ctx, &d, &reason).await;
        }
    };
    match contract::parse(&text) {
        Ok(env) => {
            let span = job_span(&ctx, &d, &env.id);
            handle_job(ctx, d, env).instrument(span).await
        }
        Err(Unreadable { reason, id: Some(id) }) => {
            let span = job_span(&ctx, &d, &id);
            let env = Envelope {
                id,
                fields: Default::default(),
            };
            let fail = async {
                let err = JobError::invalid(reason);
                tracing::warn!(error = %Safe(&err.message), "payload refused by the JSON parser; failing the job");
                finish(
                    &ctx,
                    &d,
                    &env,
                    failed_body(&env, &err),
                    Outcome::Failed,
                    None,
                    JobState::Leased,
                )
                .await
            };
            fail.instrument(span).await
        }
        Err(unreadable) => dead_letter_unreadable(&ctx, &d, &unreadable.reason).await,
    }
}

fn job_span(ctx: &Shared, d: &Delivery, id: &str) -> tracing::Span {
    tracing::info_span!("job", job.id = %Safe(id), worker.name = %ctx.name, delivery = d.deliveries)
}

async fn dead_letter_unreadable(ctx: &Shared, d: &Delivery, reason: &str) -> Option<Outcome> {
    let mut st = JobState::Leased;
    tracing::warn!(worker.name = %ctx.name, reason = %Safe(reason), "payload without a readable job id; dead-lettered");
    if let Err(e) = ctx.queue.dead_letter(d, reason).await {
        tracing::error!(error = %e, "cannot dead-letter the payload; it will be redelivered");
        return None;
    }
    advance(&mut st, JobState::DeadLettered);
    ctx.metrics.job(Outcome::DeadLettered);
    Some(Outcome::DeadLettered)
}

async fn handle_job(ctx: Arc<Shared>, d: Delivery, env: Envelope) -> Option<Outcome> {
    match ctx.queue.outcome(&env.id).await {
        Ok(Some(_)) => return answer_finished(&ctx, &d, &env.id).await,
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = %e, "cannot read the job's outcome record; leaving the job for redelivery");
            return None;
        }
    }
    if d.deliveries > ctx.max_deliveries {
        return fail_over_limit(&ctx, &d, &env).await;
    }
    tracing::info!(
        job.r#type = %Safe(env.job_type_text().as_deref().unwrap_or("?")),
        "job started"
    );
    let started = Instant::now();
    if let Some(q) = d.queued_at() {
        ctx.metrics
            .queue_wait(Duration::from_secs_f64((crate::db::now() - q).max(0.0)));
    }
    let mut st = JobState::Leased;
    let job_type = env.job_type_text();
    let user = env
        .field(&["user_id", "userId"])
        .and_then(|v| v.as_str())
        .map(str::to_string);
    if let Err(e) = ctx
        .queue
        .running(&d, &env.id, job_type.as_deref(), user.as_deref())
        .await
    {
        tracing::warn!(error = %e, "cannot record the job as running; `easel jobs` will not show its progress");
    }
    let (body, outcome) = match execute(&ctx, &env, &mut st).await {
        Ok(body) => (body, Outcome::Completed),
        Err(e) => {
            tracing::warn!(error_type = e.kind.as_str(), error = %Safe(&e.message), "job failed");
            (failed_body(&env, &e), Outcome::Failed)
        }
    };
    // No longer running before the outcome exists: nothing lists the job as running once its
    // callback can have been delivered.
    if let Err(e) = ctx.queue.ended(&env.id).await {
        tracing::debug!(error = %e, "cannot clear the job's running record (it expires on its own)");
    }
    let ended = finish(&ctx, &d, &env, body, outcome, None, st).await;
    ctx.metrics.job_duration(started.elapsed());
    tracing::info!(outcome = ?ended, secs = started.elapsed().as_secs_f64(), "job finished");
    ended
}

/// A job id that already has an outcome: a first delivery is a producer pushing the job again
/// (it never heard back), so the recorded callback is sent again; a redelivery is a second run
/// of a job another run finished first (its lease had expired), so nothing is sent.
async fn answer_finished(ctx: &Shared, d: &Delivery, id: &str) -> Option<Outcome> {
    if d.deliveries > 1 {
        tracing::info!("job already has an outcome recorded by another run; dropping this redelivery");
        if let Err(e) = ctx.queue.ack(d).await {
            tracing::error!(error = %e, "cannot acknowledge the redelivered job; it will come back and be dropped again");
            return None;
        }
        ctx.metrics.job(Outcome::Duplicate);
        return Some(Outcome::Duplicate);
    }
    match ctx.queue.resend(d, id).await {
        Ok(true) => {
            tracing::warn!(
                "job id already has an outcome (pushed again?); re-sending its recorded callback, not running it"
            );
            ctx.notifier.wake();
            ctx.metrics.job(Outcome::Resent);
            Some(Outcome::Resent)
        }
        Ok(false) => {
            tracing::warn!("the job's outcome record expired meanwhile; it will be run when it comes back");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot re-send the recorded callback; the job will come back");
            None
        }
    }
}

async fn fail_over_limit(ctx: &Shared, d: &Delivery, env: &Envelope) -> Option<Outcome> {
    let msg = format!(
        "job was delivered {} times without finishing (the worker stopped or crashed each time); giving up after {}",
        d.deliveries, ctx.max_deliveries
    );
    tracing::error!(
        deliveries = d.deliveries,
        "delivery limit exceeded; failing and dead-lettering the job"
    );
    let body = failed_body(env, &JobError::new(ErrorKind::DeliveryLimit, msg.clone()));
    finish(ctx, d, env, body, Outcome::DeadLettered, Some(&msg), JobState::Leased).await
}

/// Records `body` as the job's outcome and removes the delivery; `outcome` is counted only if
/// this run's outcome is the one recorded.
async fn finish(
    ctx: &Shared,
    d: &Delivery,
    env: &Envelope,
    body: String,
    outcome: Outcome,
    dead_reason: Option<&str>,
    mut st: JobState,
) -> Option<Outcome> {
    let f = Finish {
        job_id: &env.id,
        body: &body,
        target: ctx.notifier.target(),
        dead_reason,
    };
    match ctx.queue.finish(d, f).await {
        Ok(Recorded::New) => {
            advance(&mut st, JobState::Recorded);
            advance(
                &mut st,
                if dead_reason.is_some() {
                    JobState::DeadLettered
                } else {
                    JobState::Acked
                },
            );
            ctx.notifier.wake();
            ctx.metrics.job(outcome);
            Some(outcome)
        }
        Ok(Recorded::Existing) => {
            tracing::info!("another run recorded this job's outcome first; this run's result is dropped");
            ctx.metrics.job(Outcome::Duplicate);
            Some(Outcome::Duplicate)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot record the job's outcome; leaving it in flight so it is retried");
            None
        }
    }
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

/// Validates the job, then runs it under a [`Watch`] (progress, cancel requests, time limit).
async fn execute(ctx: &Shared, env: &Envelope, st: &mut JobState) -> Result<String, JobError> {
    let spec = JobSpec::from_envelope(env, ctx.generator.info().preset_side)?;
    advance(st, JobState::Accepted);
    let reports = Reports {
        queue: ctx.queue.clone(),
        metrics: ctx.metrics.clone(),
        callbacks: ctx.progress_callbacks.then(|| ctx.notifier.clone()),
    };
    let watch = Watch::start(reports, &spec.id, time_limit(ctx, &spec));
    ctx.set_current(Some(watch.clone()));
    let result = run_watched(ctx, &spec, &watch, st).await;
    watch.end();
    ctx.set_current(None);
    ctx.metrics.progress(0, 0);
    match (result, watch.stopped()) {
        (Ok(body), _) => Ok(body),
        (Err(e), None) => Err(e),
        (Err(_), Some(why)) => {
            let (kind, label, message) = match why {
                Stop::Cancelled => (ErrorKind::Cancelled, "cancelled", "the job was cancelled".to_string()),
                Stop::Timeout(d) => (
                    ErrorKind::Timeout,
                    "timeout",
                    format!("the job ran longer than its time limit of {}", Human(d)),
                ),
            };
            ctx.metrics.stopped(spec.job_type.as_str(), label);
            Err(JobError::new(kind, message))
        }
    }
}

/// The job's own `config.timeout_secs`, else the worker's limit for its type.
fn time_limit(ctx: &Shared, spec: &JobSpec) -> Duration {
    match (spec.timeout_secs, spec.job_type) {
        (Some(s), _) => Duration::from_secs(s),
        (None, JobType::SdxlImageFast) => ctx.timeouts.0,
        (None, JobType::SdxlImageHigh) => ctx.timeouts.1,
    }
}

/// Fails with the stop's reason (filled in by [`execute`]) if the job was stopped.
fn check_stop(watch: &Watch) -> Result<(), JobError> {
    match watch.stopped() {
        Some(_) => Err(JobError::new(ErrorKind::Cancelled, "stopped")),
        None => Ok(()),
    }
}

async fn run_watched(ctx: &Shared, spec: &JobSpec, watch: &Arc<Watch>, st: &mut JobState) -> Result<String, JobError> {
    let info = ctx.generator.info();
    let spec = spec.clone();
    if spec.reference.is_some() {
        watch.phase("fetching_reference");
    }
    let init = fetch_reference(ctx, &spec).await?;
    check_stop(watch)?;
    let img2img = init.as_ref().and(spec.reference.as_ref()).map(|r| Img2ImgMetadata {
        denoise_strength: r.strength,
        pipeline: "img2img",
        resize_policy: wire::RESIZE_POLICY,
        effective_steps: r.effective_steps,
        exact_copy_mode: r.exact_copy,
    });
    let started = Instant::now();
    advance(st, JobState::Generating);
    watch.phase("encoding");
    let images = generate(ctx, &spec, init, watch).await?;
    check_stop(watch)?;
    advance(st, JobState::Uploading);
    watch.phase("uploading");
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

async fn generate(
    ctx: &Shared,
    spec: &JobSpec,
    init: Option<InitSpec>,
    watch: &Arc<Watch>,
) -> Result<Vec<GeneratedImage>, JobError> {
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
        cancel: watch.cancel_flag(),
    };
    let _engine = ctx.engine.lock().await;
    let generator = ctx.generator.clone();
    let started = Instant::now();
    let w = watch.clone();
    let joined =
        tokio::task::spawn_blocking(move || generator.generate(&gspec, &mut |step, total| w.step(step, total))).await;
    ctx.metrics.phase(Phase::Generate, started.elapsed());
    let result = joined.map_err(|e| JobError::new(ErrorKind::Generation, format!("the engine crashed: {e}")))?;
    result.map_err(|e| {
        tracing::warn!(cause = e.cause().as_str(), "the engine failed");
        JobError::new(e.job_error_kind(), e.to_string())
    })
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
