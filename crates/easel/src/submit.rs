//! Why this exists: `easel submit --prompt ...`, a producer for trying a worker: it builds a
//! contract payload, pushes it to the configured queue the way ourvidz's edge functions do,
//! prints the job id, and with `--wait` (embedded outcomes) prints the outcome and asset paths.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use easel_config::Layers;
use easel_jobs::submit::{self, Submission, SubmitError};
use easel_sdxl::pipeline::MAX_BATCH;

use crate::job_bar::JobBar;

/// Examples shown under `easel submit --help`.
pub const EXAMPLES: &str = "Examples:
  easel submit --prompt \"a lighthouse at dusk\" --wait
  easel submit --prompt \"a fox\" --type sdxl_image_high --num-images 2 --seed 7
  easel submit --prompt \"a fox\" --queue redis://127.0.0.1:6379";

/// Arguments of `easel submit`.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    /// What to draw.
    #[arg(long)]
    prompt: String,
    /// Job type: sdxl_image_fast or sdxl_image_high.
    #[arg(long = "type", default_value = "sdxl_image_fast")]
    job_type: String,
    /// Images in the job (1–6).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_BATCH as i64))]
    num_images: Option<u32>,
    /// Seed of image 0 (image i uses seed + i); default: random.
    #[arg(long)]
    seed: Option<u64>,
    /// Negative prompt; default: the contract's.
    #[arg(long)]
    negative: Option<String>,
    /// Width in pixels (multiple of 8); default: the preset's.
    #[arg(long)]
    width: Option<u32>,
    /// Height in pixels (multiple of 8); default: the preset's.
    #[arg(long)]
    height: Option<u32>,
    /// Denoising steps; default: the preset's.
    #[arg(long)]
    steps: Option<u32>,
    /// Image-to-image from this http(s) URL.
    #[arg(long)]
    reference_url: Option<String>,
    /// Image-to-image strength in [0, 1].
    #[arg(long)]
    strength: Option<f64>,
    /// The user id in storage paths.
    #[arg(long, default_value = "local-user")]
    user_id: String,
    /// The job id; default: a new UUID.
    #[arg(long)]
    id: Option<String>,
    /// The job's own time limit in seconds (`config.timeout_secs`, 1–7200); default: the
    /// worker's limit for the job type.
    #[arg(long, value_name = "SECS")]
    job_timeout: Option<u64>,
    /// Wait for the outcome and print it with the asset paths (embedded outcomes only).
    #[arg(long)]
    wait: bool,
    /// How long --wait waits, in seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// The queue: sqlite, redis://..., rediss://... or an Upstash https:// URL.
    #[arg(long)]
    queue: Option<String>,
    /// The data home: embedded queue, job table, local storage (EASEL_DATA_DIR, else easel.toml's
    /// data_dir, else ~/.local/share/easel).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// An `easel.toml` to read.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Runs `easel submit`.
pub fn run(args: SubmitArgs) -> Result<()> {
    let mut flags = Vec::new();
    if let Some(q) = &args.queue {
        flags.push(("queue_url", q.clone()));
    }
    if let Some(d) = &args.data_dir {
        flags.push(("data_dir", d.display().to_string()));
    }
    let layers = Layers::from_process(&flags, args.config.as_deref())?;
    let id = args.id.clone().unwrap_or_else(submit::new_job_id);
    let payload = submit::payload(&submission(&args), &id);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let pushed = rt.block_on(submit::push(&layers, &payload)).map_err(anyhow_of)?;
    println!("{id}");
    if !pushed.worker_seen {
        eprintln!(
            "warning: no worker has ever opened queue {}; the job waits there until a worker starts with the same settings (see `easel config show`)",
            pushed.queue
        );
    }
    if !args.wait {
        return Ok(());
    }
    let finished = rt
        .block_on(async {
            let mut bar = JobBar::new();
            let r = submit::wait(&layers, &id, Duration::from_secs(args.timeout), &mut |p| bar.show(p)).await;
            bar.finish();
            r
        })
        .map_err(anyhow_of)?;
    println!("{}", serde_json::to_string_pretty(&finished.outcome)?);
    for f in &finished.files {
        println!("{}", f.display());
    }
    if finished.outcome.get("status").and_then(|s| s.as_str()) != Some("completed") {
        anyhow::bail!("job {id} did not complete");
    }
    Ok(())
}

fn submission(a: &SubmitArgs) -> Submission {
    Submission {
        prompt: a.prompt.clone(),
        job_type: a.job_type.clone(),
        user_id: a.user_id.clone(),
        num_images: a.num_images,
        seed: a.seed,
        negative_prompt: a.negative.clone(),
        width: a.width,
        height: a.height,
        steps: a.steps,
        reference_image_url: a.reference_url.clone(),
        denoise_strength: a.strength,
        timeout_secs: a.job_timeout,
    }
}

/// Keeps configuration errors recognisable for the exit code.
fn anyhow_of(e: SubmitError) -> anyhow::Error {
    match e {
        SubmitError::Config(c) => anyhow::Error::new(c),
        other => anyhow::Error::new(other),
    }
}
