//! Why this exists: `easel generate PROMPT`, the one-shot path from a prompt to PNG
//! files. Flow: check every flag that needs no model (sizes, counts, dtype, the output
//! folder; read the init image and latents file) → load the model → build and check the
//! request → encode, denoise (with a progress bar on a terminal), decode → write PNGs with
//! their parameters → print the paths (or, with `--json`, one JSON object).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use clap::Args;
use easel_sdxl::device::DeviceSpec;
use easel_sdxl::images;
use easel_sdxl::lora::LoraFile;
use easel_sdxl::metadata;
use easel_sdxl::noise::SeededNoise;
use easel_sdxl::pipeline::{GenerateRequest, InitImage, Progress};
use easel_sdxl::schedulers::SchedulerKind;
use easel_sdxl::{LoadOptions, PromptMode, SdxlModel};
use image::RgbImage;

use crate::checks;
use crate::settings::model_settings;

/// Examples shown under `easel generate --help`.
pub const EXAMPLES: &str = "Examples:
  easel generate \"a lighthouse at dusk\" --seed 42
  easel generate \"a fox in snow\" --model ~/models/sdxl.safetensors --device cuda --num-images 4
  easel generate \"a (red:1.3) fox, BREAK, snow\" --prompt-mode a1111 --negative blurry
  easel generate \"the same, in watercolour\" --init-image fox.png --strength 0.6 --json";

/// Arguments of `easel generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// What to draw.
    prompt: String,
    /// What to steer away from (the negative prompt).
    #[arg(long)]
    negative: Option<String>,
    /// Denoising steps (1–1000).
    #[arg(long, default_value_t = 30)]
    steps: usize,
    /// Classifier-free guidance scale, ≥ 0 (≤ 1 disables guidance).
    #[arg(long, default_value_t = 5.0)]
    guidance: f64,
    /// Image width in pixels (a multiple of 8, up to 4096); default: the model's native size.
    #[arg(long)]
    width: Option<usize>,
    /// Image height in pixels (a multiple of 8, up to 4096); default: the model's native size.
    #[arg(long)]
    height: Option<usize>,
    /// Seed of image 0; image i uses seed + i. Default: random (printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Images to generate in one batch (1–6).
    #[arg(long, default_value_t = 1)]
    num_images: usize,
    /// Sampler: euler, euler_a, dpmpp_2m, dpmpp_2m_karras, ddim.
    #[arg(long, default_value = "euler", value_parser = checks::value::<SchedulerKind>)]
    scheduler: SchedulerKind,
    /// Start from this image (image-to-image).
    #[arg(long)]
    init_image: Option<PathBuf>,
    /// How much image-to-image changes the init image, in (0, 1].
    #[arg(long, default_value_t = 0.3)]
    strength: f64,
    /// A diffusers SDXL folder or a single-file SDXL checkpoint (.safetensors); default: the
    /// bundled tiny model (abstract images). Default: EASEL_MODEL, else easel.toml's
    /// [worker] model, else the tiny model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// An `easel.toml` to read ([worker] model, device, dtype); default `$EASEL_CONFIG` or
    /// `./easel.toml`.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// For a single-file checkpoint not shaped like SDXL-base: a diffusers folder whose
    /// config.json files (and tokenizers) describe it. Default: Easel's SDXL-base configs.
    #[arg(long, value_name = "DIR")]
    model_config: Option<PathBuf>,
    /// A LoRA (kohya or diffusers layout) as FILE or FILE:SCALE (scale 1); repeatable.
    #[arg(long = "lora", value_name = "FILE[:SCALE]")]
    loras: Vec<String>,
    /// How the prompt is read: `plain` (or `diffusers`: as is, 77 tokens) or `a1111` (or
    /// `weighted`: (word:1.3), (word), [word], BREAK, prompts longer than 77 tokens).
    /// compel's syntax is not supported.
    #[arg(long, default_value = "plain", value_parser = checks::value::<PromptMode>)]
    prompt_mode: PromptMode,
    /// f32, f16 or bf16; default: EASEL_DTYPE, else easel.toml's [worker] dtype, else f32 on
    /// CPU and bf16 on CUDA.
    #[arg(long, value_parser = checks::dtype_value)]
    dtype: Option<DType>,
    /// cpu, cuda or cuda:N; default: EASEL_DEVICE, else easel.toml's [worker] device, else cpu.
    #[arg(long, value_parser = checks::value::<DeviceSpec>)]
    device: Option<DeviceSpec>,
    /// A safetensors file with a tensor `latents` [B, 4, h, w] used as the initial latents.
    #[arg(long)]
    latents: Option<PathBuf>,
    /// Also write the final latents (after the last step, before the VAE) to this
    /// safetensors file, as an f32 tensor `latents` [B, 4, h, w]: for comparing runs
    /// number by number (another device or dtype, diffusers' `output_type="latent"`).
    #[arg(long, value_name = "FILE")]
    save_latents: Option<PathBuf>,
    /// Where to write the PNGs (created if needed; checked before the model loads).
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Print one JSON object on stdout (paths, seeds, size, steps, model, timings per phase)
    /// instead of one path per line.
    #[arg(long)]
    json: bool,
}

/// What was read and checked before the model loads.
struct Inputs {
    /// `None`: the bundled tiny model.
    model: Option<PathBuf>,
    /// Device, dtype and kernel choice from the shared settings.
    load: LoadOptions,
    init: Option<RgbImage>,
    latents: Option<Tensor>,
}

/// Seconds spent in each phase.
#[derive(Default)]
struct Timings {
    load_s: f64,
    text_s: f64,
    denoise_s: f64,
    decode_s: f64,
    write_s: f64,
}

/// Runs `easel generate`.
pub fn run(args: GenerateArgs) -> Result<()> {
    let started = Instant::now();
    let inputs = before_load(&args)?;
    let opts = LoadOptions {
        config_dir: args.model_config.clone(),
        ..inputs.load.clone()
    };
    let mut t = Timings::default();
    let loading = Instant::now();
    let mut model = match &inputs.model {
        Some(p) => SdxlModel::load_path(p, &opts).with_context(|| format!("loading model {}", p.display()))?,
        None => SdxlModel::load_tiny(&opts)?,
    };
    apply_loras(&mut model, &args.loras)?;
    t.load_s = loading.elapsed().as_secs_f64();
    tracing::info!(model = %model.name(), secs = t.load_s, "model loaded");
    let req = build_request(&args, inputs, &model)?;
    model.validate(&req).map_err(checks::refusal)?;
    let images = run_phases(&model, &req, args.save_latents.as_deref(), &mut t)?;
    let writing = Instant::now();
    let paths = write_pngs(&args.out, &images, &req, model.name())?;
    t.write_s = writing.elapsed().as_secs_f64();
    let total_s = started.elapsed().as_secs_f64();
    if args.json {
        println!("{}", report(&req, model.name(), &paths, &t, total_s));
        return Ok(());
    }
    for p in &paths {
        println!("{}", p.display());
    }
    eprintln!("seed {} · {} image(s) in {total_s:.1}s", req.seed, paths.len());
    Ok(())
}

/// Every check that needs no model, and the input files read.
fn before_load(args: &GenerateArgs) -> Result<Inputs> {
    checks::settings(&checks::Settings {
        width: args.width,
        height: args.height,
        steps: args.steps,
        num_images: args.num_images,
        guidance: args.guidance,
        strength: args.init_image.as_ref().map(|_| args.strength),
    })?;
    checks::writable_dir("--out", &args.out)?;
    if let Some(path) = &args.save_latents {
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        checks::writable_dir("--save-latents", parent)?;
    }
    let cut = easel_sdxl::prompt::plain_truncation(&args.prompt)?;
    if args.prompt_mode == easel_sdxl::PromptMode::Plain && cut.dropped > 0 {
        let (n, kept, dropped) = (cut.tokens, cut.kept, cut.dropped);
        eprintln!("warning: prompt is {n} tokens; plain mode keeps {kept}, {dropped} dropped (use --prompt-mode a1111 for long prompts)");
    }
    let chosen = model_settings(
        args.model.as_deref(),
        args.device.as_ref(),
        args.dtype,
        args.config.as_deref(),
    )?;
    let init = args.init_image.as_deref().map(images::load_rgb).transpose()?;
    let latents = args
        .latents
        .as_deref()
        .map(|p| read_latents(p, &chosen.load.device))
        .transpose()?;
    Ok(Inputs {
        model: chosen.model,
        load: chosen.load,
        init,
        latents,
    })
}

/// Encode, denoise (progress bar on a terminal), save the final latents when asked,
/// decode; each phase timed into `t`.
fn run_phases(
    model: &SdxlModel,
    req: &GenerateRequest,
    save_latents: Option<&Path>,
    t: &mut Timings,
) -> Result<Tensor> {
    let mut noise = SeededNoise::new(req.seed, req.num_images);
    let bar = progress_bar(req);
    let phase = Instant::now();
    let emb = model.encode_request(req)?;
    t.text_s = phase.elapsed().as_secs_f64();
    let phase = Instant::now();
    let latents = model.denoise_embedded(req, &emb, &mut noise, &mut |p: Progress| {
        if let Some(b) = &bar {
            b.set_length(p.total as u64);
            b.set_position(p.step as u64);
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    t.denoise_s = phase.elapsed().as_secs_f64();
    if let Some(path) = save_latents {
        let f32_latents = latents.to_dtype(DType::F32)?;
        candle_core::safetensors::save(&std::collections::HashMap::from([("latents", f32_latents)]), path)
            .with_context(|| format!("writing latents to {}", path.display()))?;
    }
    let phase = Instant::now();
    let images = model.decode(&latents)?;
    t.decode_s = phase.elapsed().as_secs_f64();
    Ok(images)
}

/// The `--json` report.
fn report(req: &GenerateRequest, model: &str, paths: &[PathBuf], t: &Timings, total_s: f64) -> serde_json::Value {
    let seeds: Vec<u64> = (0..paths.len() as u64).map(|i| req.seed.wrapping_add(i)).collect();
    serde_json::json!({
        "paths": paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "seeds": seeds,
        "width": req.width,
        "height": req.height,
        "steps": req.steps,
        "guidance": req.guidance,
        "scheduler": req.scheduler.name(),
        "prompt_mode": req.prompt_mode,
        "model": model,
        "timings": {
            "load_s": t.load_s,
            "text_s": t.text_s,
            "denoise_s": t.denoise_s,
            "decode_s": t.decode_s,
            "write_s": t.write_s,
            "total_s": total_s,
        },
    })
}

fn build_request(args: &GenerateArgs, inputs: Inputs, model: &SdxlModel) -> Result<GenerateRequest> {
    let Inputs { init, latents, .. } = inputs;
    let f = model.vae_scale_factor();
    let from_latents = latents
        .as_ref()
        .map(|l| (l.dim(3).unwrap_or(0) * f, l.dim(2).unwrap_or(0) * f));
    let from_init = init
        .as_ref()
        .map(|i| ((i.width() as usize / f) * f, (i.height() as usize / f) * f));
    let native = (model.default_size(), model.default_size());
    let (dw, dh) = from_latents.or(from_init).unwrap_or(native);
    let (width, height) = (args.width.unwrap_or(dw), args.height.unwrap_or(dh));
    let num_images = match &latents {
        Some(l) if args.num_images == 1 => l.dim(0)?,
        _ => args.num_images,
    };
    let init_image = match init {
        Some(img) => {
            let img = images::fit(img, width as u32, height as u32);
            Some(InitImage {
                pixels: images::to_tensor(&img, model.device())?,
                strength: args.strength,
            })
        }
        None => None,
    };
    let mut req = GenerateRequest::new(args.prompt.clone(), width, height);
    req.negative_prompt = args.negative.clone();
    req.steps = args.steps;
    req.guidance = args.guidance;
    req.num_images = num_images;
    req.seed = args.seed.unwrap_or_else(rand_seed);
    req.scheduler = args.scheduler;
    req.init_image = init_image;
    req.latents = latents;
    req.prompt_mode = args.prompt_mode;
    Ok(req)
}

/// Applies `--lora FILE[:SCALE]` arguments (a one-shot run never needs to remove them).
fn apply_loras(model: &mut SdxlModel, specs: &[String]) -> Result<()> {
    let mut loras = Vec::with_capacity(specs.len());
    for spec in specs {
        let (path, scale) = match spec.rsplit_once(':').map(|(p, s)| (p, s.parse::<f64>())) {
            Some((p, Ok(scale))) => (p, scale),
            _ => (spec.as_str(), 1.0),
        };
        let lora = LoraFile::open(Path::new(path)).with_context(|| format!("reading LoRA {path}"))?;
        loras.push((lora, scale));
    }
    if loras.is_empty() {
        return Ok(());
    }
    let refs: Vec<(&LoraFile, f64)> = loras.iter().map(|(l, s)| (l, *s)).collect();
    let report = model.set_loras(&refs)?;
    for l in &report.loras {
        eprintln!("LoRA {} × {}: {} layers merged", l.path, l.scale, l.layers);
        if !l.unmatched.is_empty() {
            eprintln!(
                "  warning: {} layers match nothing in this model (e.g. {})",
                l.unmatched.len(),
                l.unmatched[0]
            );
        }
    }
    Ok(())
}

fn rand_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    (nanos as u64 ^ (std::process::id() as u64).rotate_left(32)) % 4_294_967_296
}

fn read_latents(path: &Path, device: &Device) -> Result<Tensor> {
    let tensors = candle_core::safetensors::load(path, device)
        .with_context(|| format!("reading latents file {} (expected a safetensors file)", path.display()))?;
    let Some(t) = tensors.get("latents") else {
        let names: Vec<_> = tensors.keys().cloned().collect();
        bail!(
            "{} has no tensor named `latents` (found: {})",
            path.display(),
            names.join(", ")
        );
    };
    if t.rank() != 4 {
        bail!(
            "latents in {} have shape {:?}; expected [B, 4, h, w]",
            path.display(),
            t.dims()
        );
    }
    Ok(t.to_dtype(candle_core::DType::F32)?)
}

fn progress_bar(req: &GenerateRequest) -> Option<indicatif::ProgressBar> {
    crate::colour::bar(
        req.steps as u64,
        "{spinner:.green} step {pos}/{len} [{bar:30.cyan/blue}] {elapsed_precise} ({per_sec})",
        "{spinner} step {pos}/{len} [{bar:30}] {elapsed_precise} ({per_sec})",
    )
}

fn write_pngs(dir: &Path, imgs: &Tensor, req: &GenerateRequest, model: &str) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating output folder {}", dir.display()))?;
    let rgb = images::to_rgb(imgs)?;
    let mut index = next_index(dir);
    let mut paths = Vec::with_capacity(rgb.len());
    for (i, img) in rgb.iter().enumerate() {
        let bytes = metadata::encode_png(img, &metadata::parameters(req, i, model))?;
        let (path, next) = write_new(dir, index, req.seed.wrapping_add(i as u64), &bytes)?;
        paths.push(path);
        index = next;
    }
    Ok(paths)
}

/// Writes `bytes` to the first free `NNNNN-seed.png` from `index` on, never replacing a
/// file (another `easel generate` may be writing to the same folder); returns the path
/// and the next index to try.
fn write_new(dir: &Path, mut index: u64, seed: u64, bytes: &[u8]) -> Result<(PathBuf, u64)> {
    use std::io::Write;
    loop {
        let path = dir.join(format!("{index:05}-{seed}.png"));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                f.write_all(bytes)
                    .with_context(|| format!("writing {}", path.display()))?;
                return Ok((path, index + 1));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => index += 1,
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }
}

/// The next free A1111-style counter in `dir` (files named `NNNNN-seed.png`).
fn next_index(dir: &Path) -> u64 {
    let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
    entries
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.split('-').next()?.parse::<u64>().ok())
        })
        .max()
        .map_or(0, |m| m + 1)
}
