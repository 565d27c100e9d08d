//! Why this exists: loading a model takes seconds to minutes, so every check of a generation's
//! flags that needs no model runs before it: sizes, steps, batch, guidance, strength (with the
//! engine's own limits and messages, `easel_sdxl::pipeline::validate_*`), the dtype on the
//! device, and whether the output folder can be written. Failures are usage errors (exit 2).

use std::path::Path;

use anyhow::Result;
use candle_core::{DType, Device};
use easel_sdxl::pipeline::{self, SDXL_SCALE_FACTOR};

use crate::usage::usage;

/// The flags of one generation that can be checked without a model.
pub struct Settings {
    pub width: Option<usize>,
    pub height: Option<usize>,
    pub steps: usize,
    pub num_images: usize,
    pub guidance: f64,
    /// Image-to-image strength, when there is an init image.
    pub strength: Option<f64>,
}

/// Checks sizes (SDXL's factor of 8; the loaded model checks its own again), counts and
/// strength.
pub fn settings(s: &Settings) -> Result<()> {
    if let Some(w) = s.width {
        engine(pipeline::validate_side("width", w, SDXL_SCALE_FACTOR))?;
    }
    if let Some(h) = s.height {
        engine(pipeline::validate_side("height", h, SDXL_SCALE_FACTOR))?;
    }
    engine(pipeline::validate_counts(s.steps, s.num_images, s.guidance))?;
    if let Some(strength) = s.strength {
        engine(pipeline::validate_strength(s.steps, strength))?;
    }
    Ok(())
}

/// Checks that the device can compute in `dtype` (bf16 on CPU cannot).
pub fn dtype(device: &Device, dtype: DType) -> Result<()> {
    engine(easel_sdxl::device::check_dtype(device, dtype))
}

/// Creates `dir` if needed and checks that a file can be created in it.
pub fn writable_dir(flag: &str, dir: &Path) -> Result<()> {
    let refuse = |what: &str, e: std::io::Error| {
        usage(format!(
            "invalid value '{}' for '{flag}': {what} ({e}); pass a folder you can write to",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(|e| refuse("cannot create the folder", e))?;
    let probe = dir.join(format!(".easel-write-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| refuse("cannot write in the folder", e))?;
    // The probe is ours and empty; failing to remove it changes nothing for the run.
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// An engine check's refusal as a usage error with the engine's message.
fn engine(r: easel_sdxl::Result<()>) -> Result<()> {
    r.map_err(refusal)
}

/// The engine's refusal of a request as a usage error with its message.
pub fn refusal(e: easel_sdxl::Error) -> anyhow::Error {
    usage(message(e))
}

/// A flag value parsed by the engine's `FromStr` (scheduler, prompt mode, device), for
/// clap's `value_parser`: the refusal is the engine's message alone.
pub fn value<T: std::str::FromStr<Err = easel_sdxl::Error>>(s: &str) -> Result<T, String> {
    s.parse().map_err(message)
}

/// `--dtype` parsed by the engine, for clap's `value_parser`.
pub fn dtype_value(s: &str) -> Result<DType, String> {
    easel_sdxl::device::parse_dtype(s).map_err(message)
}

/// An engine error's message without the kind prefix ("invalid request: ").
fn message(e: easel_sdxl::Error) -> String {
    match e {
        easel_sdxl::Error::InvalidRequest(m) | easel_sdxl::Error::Unsupported(m) => m,
        other => other.to_string(),
    }
}
