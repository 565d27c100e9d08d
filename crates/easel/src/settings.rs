//! Why this exists: `generate` and `bench` load the model the worker would load — flags, else
//! `EASEL_MODEL`/`EASEL_DEVICE`/`EASEL_DTYPE`, else `easel.toml`'s `[worker]`, else the
//! defaults — through the same settings layers as every other command, so a setting is never
//! honoured by one command and silently ignored by another.

use std::path::{Path, PathBuf};

use anyhow::Result;
use candle_core::DType;
use easel_config::{model_choice, Layers};
use easel_sdxl::device::DeviceSpec;

/// The model, device and dtype one generation uses.
pub struct ModelSettings {
    /// `None`: the bundled tiny model.
    pub model: Option<PathBuf>,
    pub device: DeviceSpec,
    /// `None`: the device's default.
    pub dtype: Option<DType>,
}

/// Flags over the shared settings layers.
pub fn model_settings(
    model: Option<&Path>,
    device: Option<&DeviceSpec>,
    dtype: Option<DType>,
    config: Option<&Path>,
) -> Result<ModelSettings> {
    let layers = Layers::from_process(&[], config)?;
    let choice = model_choice(&layers);
    let device = match device {
        Some(d) => *d,
        None => choice
            .device
            .parse()
            .map_err(|e: easel_sdxl::Error| layers.invalid("device", e.to_string()))?,
    };
    let dtype = match (dtype, choice.dtype.as_deref()) {
        (Some(d), _) => Some(d),
        (None, Some(text)) => {
            Some(easel_sdxl::device::parse_dtype(text).map_err(|e| layers.invalid("dtype", e.to_string()))?)
        }
        (None, None) => None,
    };
    let model = model.map(Path::to_path_buf).or(choice.model);
    Ok(ModelSettings { model, device, dtype })
}
