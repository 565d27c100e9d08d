//! Why this exists: `easel bench` needs the time of each phase of a generation (text
//! encoding, every UNet step, the VAE decode) and the peak memory, measured the way
//! `scripts/bench_diffusers.py` measures diffusers, so the two can be divided phase by phase.
//!
//! GPU work is asynchronous: every phase boundary synchronises the device before the clock
//! is read. Peak memory is the process's peak RSS (`VmHWM`) and, on CUDA, the peak of the
//! device's used memory above what it used before the model was loaded.

use std::time::Instant;

use candle_core::Device;
use serde::Serialize;

use crate::model::SdxlModel;
use crate::noise::SeededNoise;
use crate::pipeline::GenerateRequest;
use crate::Result;

/// One timed run.
#[derive(Clone, Debug, Serialize)]
pub struct RunTimes {
    pub text_s: f64,
    /// One entry per denoising step (UNet forward + guidance + scheduler step).
    pub steps_s: Vec<f64>,
    /// Latent preparation and scheduler setup before the first step.
    pub other_s: f64,
    pub vae_s: f64,
    pub total_s: f64,
    /// Mean of the decoded images, to see that both implementations produced an image.
    pub image_mean: f64,
}

/// Times one request: encode, denoise, decode.
pub fn time_request(model: &SdxlModel, req: &GenerateRequest, seed: u64) -> Result<RunTimes> {
    let dev = &model.device;
    model.validate(req)?;
    dev.synchronize()?;
    let start = Instant::now();
    let emb = model.encode_request(req)?;
    dev.synchronize()?;
    let text_done = Instant::now();
    let mut marks = Vec::with_capacity(req.steps);
    let mut sync_error = None;
    let mut noise = SeededNoise::new(seed, req.num_images);
    let latents = model.denoise_embedded(req, &emb, &mut noise, &mut |_| {
        if let Err(e) = dev.synchronize() {
            sync_error.get_or_insert(e);
        }
        marks.push(Instant::now());
    })?;
    if let Some(e) = sync_error {
        return Err(e.into());
    }
    dev.synchronize()?;
    let steps_done = Instant::now();
    let images = model.decode(&latents)?;
    let image_mean = images.mean_all()?.to_scalar::<f32>()? as f64;
    let end = Instant::now();
    let mut steps_s = Vec::with_capacity(marks.len());
    let mut prev = text_done;
    for &m in &marks {
        steps_s.push((m - prev).as_secs_f64());
        prev = m;
    }
    let denoise_s = (steps_done - text_done).as_secs_f64();
    Ok(RunTimes {
        text_s: (text_done - start).as_secs_f64(),
        other_s: (denoise_s - steps_s.iter().sum::<f64>()).max(0.0),
        steps_s,
        vae_s: (end - steps_done).as_secs_f64(),
        total_s: (end - start).as_secs_f64(),
        image_mean,
    })
}

/// The median of `xs` (the mean of the middle two for an even count); 0 for none.
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Several timed runs of one request: each phase's median (what is reported) and spread.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Medians: text, each step (by position), other, VAE, total; the last run's image mean.
    pub median: RunTimes,
    /// `[min, max]` of text, mean step, VAE and total over the runs.
    pub spread: serde_json::Value,
    pub runs: usize,
}

/// The medians and spreads of `runs` (at least one).
pub fn summarise(runs: &[RunTimes]) -> Summary {
    let of = |f: &dyn Fn(&RunTimes) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
    let mean_step = |r: &RunTimes| r.steps_s.iter().sum::<f64>() / r.steps_s.len().max(1) as f64;
    let range = |xs: Vec<f64>| {
        let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        serde_json::json!([lo, hi])
    };
    let steps = runs.first().map_or(0, |r| r.steps_s.len());
    let median_steps = (0..steps)
        .map(|i| median(&of(&|r| r.steps_s.get(i).copied().unwrap_or(0.0))))
        .collect();
    Summary {
        median: RunTimes {
            text_s: median(&of(&|r| r.text_s)),
            steps_s: median_steps,
            other_s: median(&of(&|r| r.other_s)),
            vae_s: median(&of(&|r| r.vae_s)),
            total_s: median(&of(&|r| r.total_s)),
            image_mean: runs.last().map_or(0.0, |r| r.image_mean),
        },
        spread: serde_json::json!({
            "text_s": range(of(&|r| r.text_s)),
            "step_mean_s": range(of(&mean_step)),
            "vae_s": range(of(&|r| r.vae_s)),
            "total_s": range(of(&|r| r.total_s)),
        }),
        runs: runs.len(),
    }
}

/// The machine a benchmark ran on: CPU model, the instruction set Easel's kernels selected,
/// the one the GEMMs use (the `gemm` crate picks at run time), and the threads.
pub fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    let best = crate::kernels::isa::best();
    // gemm 0.19 with `x86-v4` runs AVX-512 when the CPU has avx512f, else AVX2+FMA if present.
    let gemm = match best {
        crate::kernels::isa::Isa::Avx512 if cfg!(feature = "gemm-avx512") => "avx512",
        crate::kernels::isa::Isa::Avx512 => "avx2",
        crate::kernels::isa::Isa::Avx2 => "avx2",
        crate::kernels::isa::Isa::Baseline => "baseline",
    };
    serde_json::json!({
        "cpu": cpu,
        "kernels_isa": crate::kernels::isa::selected().name(),
        "gemm_isa": gemm,
        "threads": candle_core::utils::get_num_threads(),
    })
}

/// Peak resident set size of this process in bytes (`VmHWM`), `None` where /proc is absent.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Samples the device's used memory on a background thread and keeps the peak.
pub struct DeviceMemory {
    #[cfg(feature = "cuda")]
    inner: Option<cuda_mem::Sampler>,
}

impl DeviceMemory {
    /// Starts sampling; the baseline is the memory in use now. A no-op on CPU.
    pub fn start(dev: &Device) -> Result<Self> {
        #[cfg(feature = "cuda")]
        {
            let inner = match dev {
                Device::Cuda(d) => Some(cuda_mem::Sampler::start(d)?),
                _ => None,
            };
            Ok(Self { inner })
        }
        #[cfg(not(feature = "cuda"))]
        {
            let _ = dev;
            Ok(Self {})
        }
    }

    /// Peak used bytes above the baseline since `start` (or the last reset), `None` on CPU.
    pub fn peak_bytes(&self) -> Option<u64> {
        #[cfg(feature = "cuda")]
        {
            self.inner.as_ref().map(|s| s.peak())
        }
        #[cfg(not(feature = "cuda"))]
        {
            None
        }
    }

    /// Forgets the peak so far (after a warm-up run).
    pub fn reset_peak(&self) {
        #[cfg(feature = "cuda")]
        if let Some(s) = &self.inner {
            s.reset();
        }
    }
}

#[cfg(feature = "cuda")]
mod cuda_mem {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use candle_core::cuda_backend::CudaDevice;

    use crate::Result;

    pub struct Sampler {
        peak: Arc<AtomicU64>,
        stop: Arc<AtomicBool>,
        baseline: u64,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Sampler {
        pub fn start(dev: &CudaDevice) -> Result<Self> {
            let ctx = dev.cuda_stream().context().clone();
            let used = move || -> u64 {
                match ctx.mem_get_info() {
                    Ok((free, total)) => (total - free) as u64,
                    Err(_) => 0,
                }
            };
            let baseline = used();
            let peak = Arc::new(AtomicU64::new(baseline));
            let stop = Arc::new(AtomicBool::new(false));
            let (p, s) = (peak.clone(), stop.clone());
            let thread = std::thread::spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    p.fetch_max(used(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_micros(500));
                }
            });
            Ok(Self {
                peak,
                stop,
                baseline,
                thread: Some(thread),
            })
        }

        pub fn peak(&self) -> u64 {
            self.peak.load(Ordering::Relaxed).saturating_sub(self.baseline)
        }

        pub fn reset(&self) {
            self.peak.store(self.baseline, Ordering::Relaxed);
        }
    }

    impl Drop for Sampler {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: f64, steps: &[f64], vae: f64) -> RunTimes {
        RunTimes {
            text_s: text,
            steps_s: steps.to_vec(),
            other_s: 0.0,
            vae_s: vae,
            total_s: text + steps.iter().sum::<f64>() + vae,
            image_mean: 0.5,
        }
    }

    #[test]
    fn a_summary_reports_medians_by_phase_and_step_with_their_spread() {
        let runs = [
            run(1.0, &[1.0, 2.0], 3.0),
            run(3.0, &[3.0, 4.0], 1.0),
            run(2.0, &[2.0, 3.0], 2.0),
        ];
        let s = summarise(&runs);
        assert_eq!(s.runs, 3);
        assert_eq!(s.median.text_s, 2.0);
        assert_eq!(s.median.steps_s, vec![2.0, 3.0]);
        assert_eq!(s.median.vae_s, 2.0);
        assert_eq!(s.spread["text_s"], serde_json::json!([1.0, 3.0]));
        assert_eq!(s.spread["step_mean_s"], serde_json::json!([1.5, 3.5]));
        assert_eq!(median(&[4.0, 1.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
