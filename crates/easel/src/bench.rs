//! Why this exists: `easel bench` — times each phase of a generation (text encoding, every
//! UNet step, VAE decode, total) and the peak memory for a model, size, step count, batch,
//! dtype and device. `scripts/bench_compare.py` runs it beside `scripts/bench_diffusers.py`
//! and prints the ratios; `--json` gives the same keys as that script.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use easel_sdxl::bench::{self, DeviceMemory, RunTimes};
use easel_sdxl::device::{default_dtype, parse_dtype, DeviceSpec};
use easel_sdxl::model::{LoadOptions, SdxlModel};
use easel_sdxl::pipeline::GenerateRequest;
use easel_sdxl::schedulers::SchedulerKind;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Diffusers folder or single-file checkpoint (default: the bundled tiny model).
    #[arg(long, env = "EASEL_MODEL")]
    model: Option<PathBuf>,
    #[arg(long, default_value = "a lighthouse on a cliff at dusk, oil painting")]
    prompt: String,
    #[arg(long, default_value = "blurry, low quality")]
    negative_prompt: String,
    /// Image width in pixels (default: the model's native size).
    #[arg(long)]
    width: Option<usize>,
    /// Image height in pixels (default: the model's native size).
    #[arg(long)]
    height: Option<usize>,
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Images per run (1–6).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    #[arg(long, default_value_t = 5.0)]
    guidance: f64,
    #[arg(long, default_value = "euler")]
    scheduler: String,
    /// f32, f16 or bf16 (default: f32 on CPU, bf16 on CUDA).
    #[arg(long)]
    dtype: Option<String>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Untimed runs before the timed one (kernel loading, cuDNN algorithm choice).
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `easel bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    let device = args.device.parse::<DeviceSpec>()?.open()?;
    let dtype = match &args.dtype {
        Some(d) => parse_dtype(d)?,
        None => default_dtype(&device),
    };
    let scheduler: SchedulerKind = args.scheduler.parse()?;
    let memory = DeviceMemory::start(&device)?;
    let opts = LoadOptions {
        device: device.clone(),
        dtype,
        candle_kernels: std::env::var("EASEL_CANDLE_KERNELS").is_ok_and(|v| !v.is_empty() && v != "0"),
        ..Default::default()
    };
    let started = Instant::now();
    let model = match &args.model {
        Some(p) => SdxlModel::load_path(p, &opts).with_context(|| format!("loading model {}", p.display()))?,
        None => SdxlModel::load_tiny(&opts)?,
    };
    device.synchronize()?;
    let load_s = started.elapsed().as_secs_f64();
    let side = model.default_size();
    let mut req = GenerateRequest::new(
        args.prompt.clone(),
        args.width.unwrap_or(side),
        args.height.unwrap_or(side),
    );
    req.negative_prompt = Some(args.negative_prompt.clone());
    req.steps = args.steps;
    req.num_images = args.batch;
    req.guidance = args.guidance;
    req.scheduler = scheduler;
    req.seed = args.seed;
    for _ in 0..args.warmup {
        bench::time_request(&model, &req, args.seed)?;
    }
    memory.reset_peak();
    let t = bench::time_request(&model, &req, args.seed)?;
    let report = serde_json::json!({
        "impl": "easel",
        "version": env!("CARGO_PKG_VERSION"),
        "model": model.name(),
        "device": device_name(&device),
        "dtype": format!("{dtype:?}").to_lowercase(),
        "width": req.width,
        "height": req.height,
        "steps": req.steps,
        "batch": req.num_images,
        "threads": candle_core::utils::get_num_threads(),
        "load_s": load_s,
        "text_s": t.text_s,
        "steps_s": t.steps_s,
        "other_s": t.other_s,
        "vae_s": t.vae_s,
        "total_s": t.total_s,
        "per_image_s": t.total_s / req.num_images as f64,
        "image_mean": t.image_mean,
        "peak_rss_bytes": bench::peak_rss_bytes(),
        "peak_device_bytes": memory.peak_bytes(),
    });
    if args.json {
        println!("{report}");
    } else {
        print_table(&t, load_s, &report);
    }
    Ok(())
}

fn device_name(dev: &candle_core::Device) -> String {
    match dev {
        candle_core::Device::Cpu => "cpu".into(),
        d => format!("{:?}", d.location()).to_lowercase(),
    }
}

fn print_table(t: &RunTimes, load_s: f64, report: &serde_json::Value) {
    let gib = |v: &serde_json::Value| v.as_u64().map(|b| format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64));
    println!(
        "{} {}×{} · {} steps · batch {} · {} on {}",
        report["model"].as_str().unwrap_or("?"),
        report["width"],
        report["height"],
        report["steps"],
        report["batch"],
        report["dtype"].as_str().unwrap_or("?"),
        report["device"].as_str().unwrap_or("?"),
    );
    println!("  load         {load_s:8.3} s (not in total)");
    println!("  text         {:8.3} s", t.text_s);
    for (i, s) in t.steps_s.iter().enumerate() {
        println!("  step {:<3}     {s:8.3} s", i + 1);
    }
    if !t.steps_s.is_empty() {
        let mean = t.steps_s.iter().sum::<f64>() / t.steps_s.len() as f64;
        println!("  step mean    {mean:8.3} s");
    }
    println!("  vae decode   {:8.3} s", t.vae_s);
    println!("  total        {:8.3} s", t.total_s);
    if let Some(r) = gib(&report["peak_rss_bytes"]) {
        println!("  peak RSS     {r}");
    }
    if let Some(d) = gib(&report["peak_device_bytes"]) {
        println!("  peak device  {d}");
    }
}
