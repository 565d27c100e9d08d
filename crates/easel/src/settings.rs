//! Why this exists: `generate` and `bench` load the model the worker would load — flags, else
//! `EASEL_MODEL`/`EASEL_DEVICE`/`EASEL_DTYPE`/`EASEL_CANDLE_KERNELS`, else `easel.toml`'s
//! `[worker]`, else the defaults — through the same settings layers as every other command, so
//! a setting is never honoured by one command and silently ignored by another. The device is
//! opened and the dtype checked against it here, before any model loads.

use std::path::{Path, PathBuf};

use anyhow::Result;
use candle_core::{DType, Device};
use easel_config::{model_choice, Layers};
use easel_sdxl::device::{default_dtype, DeviceSpec};
use easel_sdxl::model::LoadOptions;

use crate::checks;

/// The model one generation loads, and how.
pub struct ModelSettings {
    /// `None`: the bundled tiny model.
    pub model: Option<PathBuf>,
    /// Device, dtype (checked against the device) and kernel choice; the caller adds the rest.
    pub load: LoadOptions,
}

/// Flags over the shared settings layers; `config` is an `easel.toml` to read.
pub fn model_settings(
    model: Option<&Path>,
    device: Option<&DeviceSpec>,
    dtype: Option<DType>,
    config: Option<&Path>,
) -> Result<ModelSettings> {
    let layers = Layers::from_process(&[], config)?;
    let choice = model_choice(&layers)?;
    let spec = match device {
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
    let device: Device = spec.open()?;
    let dtype = dtype.unwrap_or_else(|| default_dtype(&device));
    checks::dtype(&device, dtype)?;
    Ok(ModelSettings {
        model: model.map(Path::to_path_buf).or(choice.model),
        load: LoadOptions {
            device,
            dtype,
            candle_kernels: choice.candle_kernels,
            ..Default::default()
        },
    })
}
