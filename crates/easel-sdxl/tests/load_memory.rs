//! Load time and resident memory, reading tensor by tensor: the bundled tiny model as a
//! diffusers folder and as a single file (each tensor read once into its own storage), and,
//! ignored by default, the full-size SDXL-shaped random model — whose single-file form is
//! loaded with Easel's shipped SDXL-base configs, proving they describe SDXL-base.
//! Run with `--nocapture` to see the numbers; they are printed, not asserted (a
//! benchmark, not a timed test). One process per binary keeps the RSS readings clean.

mod common;
#[path = "real_checkpoints/ldm.rs"]
mod ldm;

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::DType;
use easel_sdxl::{LoadOptions, SdxlModel};

/// (resident, peak resident) memory of this process in MiB, from /proc (Linux).
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    (
        field("VmRSS:").unwrap_or(0.0) / 1024.0,
        field("VmHWM:").unwrap_or(0.0) / 1024.0,
    )
}

/// Loads `path`, printing the time and the resident memory it added.
fn measure(label: &str, path: &Path, opts: &LoadOptions) -> SdxlModel {
    let (before, _) = rss_mib();
    let t = Instant::now();
    let m = SdxlModel::load_path(path, opts).unwrap_or_else(|e| panic!("{label}: {e}"));
    let secs = t.elapsed().as_secs_f64();
    let (after, peak) = rss_mib();
    eprintln!(
        "{label}: loaded in {secs:.3} s, resident +{:.1} MiB (now {after:.1} MiB, peak {peak:.1} MiB)",
        after - before
    );
    m
}

fn file_mib(path: &Path) -> f64 {
    std::fs::metadata(path)
        .map(|m| m.len() as f64 / (1 << 20) as f64)
        .unwrap_or(0.0)
}

#[test]
fn tiny_model_load_time_and_resident_memory() {
    let folder = measure("tiny folder (f32)", &ldm::tiny_dir(), &LoadOptions::default());
    // The writer's tensors stay alive so the single file's load cannot reuse their pages.
    let dir = tempfile::tempdir().unwrap();
    let tensors = ldm::ldm_tensors(&ldm::tiny_dir(), DType::F32);
    let single = dir.path().join("tiny.safetensors");
    candle_core::safetensors::save(&tensors, &single).unwrap();
    eprintln!("tiny single file: {:.1} MiB", file_mib(&single));
    let opts = LoadOptions {
        config_dir: Some(ldm::tiny_dir()),
        ..Default::default()
    };
    let from_file = measure("tiny single file (f32)", &single, &opts);
    // txt2img and img2img both run on one loaded model: one set of weights.
    assert_eq!(from_file.latent_channels(), folder.latent_channels());
    drop(tensors);
}

/// `EASEL_FULL_MODEL=DIR` (from `scripts/make_tiny_sdxl.py --full-size DIR`); `EASEL_FULL_DTYPE`
/// f16 (default, ~7 GB resident) or f32. Needs about 2× the model's size in memory and disk.
#[test]
#[ignore = "needs EASEL_FULL_MODEL: a full-size random SDXL made by scripts/make_tiny_sdxl.py --full-size"]
fn full_size_model_load_time_memory_and_single_file_with_shipped_configs() {
    let root =
        PathBuf::from(std::env::var("EASEL_FULL_MODEL").expect("set EASEL_FULL_MODEL to the --full-size folder"));
    let dtype = match std::env::var("EASEL_FULL_DTYPE").as_deref() {
        Ok("f32") => DType::F32,
        _ => DType::F16,
    };
    let opts = LoadOptions {
        dtype,
        ..Default::default()
    };
    let prompt = "a photo of an astronaut riding a horse, detailed";
    let folder = measure("full-size folder", &root.join("model"), &opts);
    let (want, want_pooled) = folder.encode_text(prompt).unwrap();
    drop(folder);
    let tmp = tempfile::tempdir_in(std::env::var("EASEL_FULL_TMP").unwrap_or_else(|_| "/tmp".into())).unwrap();
    let t = Instant::now();
    let single = ldm::write_folder_as_single_file(&root.join("model"), tmp.path(), DType::F16);
    eprintln!(
        "wrote the full-size single file ({:.0} MiB) in {:.1} s",
        file_mib(&single),
        t.elapsed().as_secs_f64()
    );
    let m = measure("full-size single file, shipped SDXL-base configs", &single, &opts);
    let (got, got_pooled) = m.encode_text(prompt).unwrap();
    let diff = common::max_abs_diff;
    assert_eq!(
        (diff(&got, &want), diff(&got_pooled, &want_pooled)),
        (0.0, 0.0),
        "same fp16 weights, same numbers"
    );
}
