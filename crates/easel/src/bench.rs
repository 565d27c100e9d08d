//! Why this exists: `easel bench` — times each phase of a generation (text encoding, every
//! UNet step, VAE decode, total) and the peak memory for a model, size, step count, batch,
//! dtype and device. `scripts/bench_compare.py` runs it beside `scripts/bench_diffusers.py`
//! and prints the ratios; `--json` gives the same keys as that script. Every phase is the
//! median of `--repeat` runs, printed with its spread and the machine line (CPU model, the
//! instruction sets the kernels and the GEMMs use, threads).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::DType;
use clap::Args;
use easel_sdxl::bench::{self, DeviceMemory, RunTimes};
use easel_sdxl::device::DeviceSpec;
use easel_sdxl::model::SdxlModel;
use easel_sdxl::pipeline::GenerateRequest;
use easel_sdxl::schedulers::SchedulerKind;

use crate::checks;
use crate::settings::model_settings;

/// Examples shown under `easel bench --help`.
pub const EXAMPLES: &str = "Examples:
  easel bench --steps 4 --json
  easel bench --model ~/models/sdxl --width 1024 --height 1024 --steps 25 --device cuda --warmup 1
  easel bench --num-images 2 --negative \"blurry\" --dtype f16 --device cuda:1";

/// Arguments of `easel bench`; the flags `generate` also has keep its names.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A diffusers SDXL folder or a single-file SDXL checkpoint (.safetensors); default: the
    /// bundled tiny model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// What to draw.
    #[arg(long, default_value = "a lighthouse on a cliff at dusk, oil painting")]
    prompt: String,
    /// What to steer away from (the negative prompt).
    #[arg(long, visible_alias = "negative-prompt", default_value = "blurry, low quality")]
    negative: String,
    /// Image width in pixels (a multiple of 8, up to 4096); default: the model's native size.
    #[arg(long)]
    width: Option<usize>,
    /// Image height in pixels (a multiple of 8, up to 4096); default: the model's native size.
    #[arg(long)]
    height: Option<usize>,
    /// Denoising steps (1–1000).
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Images per run, in one batch (1–6).
    #[arg(long, visible_alias = "batch", default_value_t = 1)]
    num_images: usize,
    /// Classifier-free guidance scale, ≥ 0 (≤ 1 disables guidance).
    #[arg(long, default_value_t = 5.0)]
    guidance: f64,
    /// Sampler: euler, euler_a, dpmpp_2m, dpmpp_2m_karras, ddim.
    #[arg(long, default_value = "euler", value_parser = checks::value::<SchedulerKind>)]
    scheduler: SchedulerKind,
    /// f32, f16 or bf16; default: EASEL_DTYPE, else easel.toml's [worker] dtype, else f32 on
    /// CPU and bf16 on CUDA.
    #[arg(long, value_parser = checks::dtype_value)]
    dtype: Option<DType>,
    /// cpu, cuda or cuda:N; default: EASEL_DEVICE, else easel.toml's [worker] device, else cpu.
    #[arg(long, value_parser = checks::value::<DeviceSpec>)]
    device: Option<DeviceSpec>,
    /// Untimed runs before the timed one (kernel loading, cuDNN algorithm choice).
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    /// Run the CPU kernels with this instruction set (avx512, avx2, baseline; capped at what
    /// the CPU has); default: EASEL_CPU_ISA, else the best the CPU has. The GEMMs use the
    /// best the CPU and the build have (a build with `--no-default-features` has no AVX-512
    /// GEMMs).
    #[arg(long, value_parser = |s: &str| easel_sdxl::isa::Isa::from_name(s).ok_or_else(|| format!("{s:?}: use avx512, avx2 or baseline")))]
    isa: Option<easel_sdxl::isa::Isa>,
    /// Timed runs; every phase reports the median of these, with its spread.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    repeat: u32,
    /// Seed of image 0 (image i uses seed + i), the same for every run.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object (the keys of scripts/bench_diffusers.py) instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `easel bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    checks::settings(&checks::Settings {
        width: args.width,
        height: args.height,
        steps: args.steps,
        num_images: args.num_images,
        guidance: args.guidance,
        strength: None,
    })?;
    if let Some(isa) = args.isa {
        let got = easel_sdxl::isa::force(Some(isa));
        if got != isa {
            eprintln!("this CPU has no {}: using {}", isa.name(), got.name());
        }
    }
    let chosen = model_settings(args.model.as_deref(), args.device.as_ref(), args.dtype, None)?;
    let opts = chosen.load;
    let (device, dtype) = (opts.device.clone(), opts.dtype);
    let memory = DeviceMemory::start(&device)?;
    let started = Instant::now();
    let model = match &chosen.model {
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
    req.negative_prompt = Some(args.negative.clone());
    req.steps = args.steps;
    req.num_images = args.num_images;
    req.guidance = args.guidance;
    req.scheduler = args.scheduler;
    req.seed = args.seed;
    for _ in 0..args.warmup {
        bench::time_request(&model, &req, args.seed)?;
    }
    memory.reset_peak();
    let mut runs = Vec::new();
    for _ in 0..args.repeat {
        runs.push(bench::time_request(&model, &req, args.seed)?);
    }
    let summary = bench::summarise(&runs);
    let t = summary.median.clone();
    let machine = bench::machine();
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
        "cpu": machine["cpu"],
        "isa": {"kernels": machine["kernels_isa"], "gemm": machine["gemm_isa"]},
        "repeat": summary.runs,
        "spread": summary.spread,
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
    println!(
        "  on {} · kernels {} · GEMM {} · {} threads · median of {} run(s)",
        report["cpu"].as_str().unwrap_or("?"),
        report["isa"]["kernels"].as_str().unwrap_or("?"),
        report["isa"]["gemm"].as_str().unwrap_or("?"),
        report["threads"],
        report["repeat"],
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
    let spread = |k: &str| {
        let r = &report["spread"][k];
        format!(
            "  ({:.3}–{:.3})",
            r[0].as_f64().unwrap_or(0.0),
            r[1].as_f64().unwrap_or(0.0)
        )
    };
    println!("  vae decode   {:8.3} s{}", t.vae_s, spread("vae_s"));
    println!("  total        {:8.3} s{}", t.total_s, spread("total_s"));
    if let Some(r) = gib(&report["peak_rss_bytes"]) {
        println!("  peak RSS     {r}");
    }
    if let Some(d) = gib(&report["peak_device_bytes"]) {
        println!("  peak device  {d}");
    }
}
