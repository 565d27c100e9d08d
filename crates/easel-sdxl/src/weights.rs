//! Why this exists: finding and opening a component's safetensors files in a diffusers
//! folder — the plain file, the `fp16` variant, or a sharded index — and turning every
//! failure (missing, truncated, corrupt, PyTorch pickles) into an error that names the
//! file and says what to do. Weights on disk are memory-mapped, not read.

use std::path::PathBuf;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::loader::{read_json, ModelSource};
use crate::{Error, Result};

/// Which weight files to prefer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Variant {
    /// The full-precision file, else the `fp16` variant (for f32), or the reverse (for f16/bf16).
    #[default]
    Auto,
    /// Exactly this variant (`fp16`) or, with `None`, exactly the plain file.
    Exact(Option<String>),
}

/// Opens weights that are not files of a diffusers folder (a single-file checkpoint's
/// renaming backend) as a VarBuilder for a dtype and device.
pub type OpenWeights = std::sync::Arc<dyn Fn(DType, &Device) -> Result<VarBuilder<'static>> + Send + Sync>;

/// The weight files of one component.
pub struct ComponentWeights {
    /// Paths on disk (empty for embedded weights).
    pub files: Vec<PathBuf>,
    embedded: Option<&'static [u8]>,
    custom: Option<OpenWeights>,
    /// For error messages.
    pub label: String,
}

fn candidates(stem: &str, variant: &Variant, dtype: DType) -> Vec<String> {
    let plain = format!("{stem}.safetensors");
    let fp16 = format!("{stem}.fp16.safetensors");
    match variant {
        Variant::Exact(None) => vec![plain],
        Variant::Exact(Some(v)) => vec![format!("{stem}.{v}.safetensors")],
        Variant::Auto if dtype == DType::F32 => vec![plain, fp16],
        Variant::Auto => vec![fp16, plain],
    }
}

/// Finds the weights of component `sub` (`unet`, `vae`, `text_encoder`, ...), whose files
/// are named `stem` (`diffusion_pytorch_model` or `model`).
pub fn find(src: &dyn ModelSource, sub: &str, stem: &str, variant: &Variant, dtype: DType) -> Result<ComponentWeights> {
    let names = candidates(stem, variant, dtype);
    for name in &names {
        let rel = format!("{sub}/{name}");
        if let Some(bytes) = src.static_bytes(&rel) {
            return Ok(ComponentWeights {
                files: vec![],
                embedded: Some(bytes),
                custom: None,
                label: format!("{}/{rel}", src.describe()),
            });
        }
        if src.exists(&rel) {
            let path = src.path(&rel).unwrap_or_else(|| PathBuf::from(&rel));
            return Ok(ComponentWeights {
                files: vec![path],
                embedded: None,
                custom: None,
                label: format!("{}/{rel}", src.describe()),
            });
        }
        let index = format!("{rel}.index.json");
        if src.exists(&index) {
            return sharded(src, sub, &index);
        }
    }
    Err(missing(src, sub, stem, &names))
}

fn missing(src: &dyn ModelSource, sub: &str, stem: &str, names: &[String]) -> Error {
    let bin = format!("{sub}/{}.bin", if stem == "model" { "pytorch_model" } else { stem });
    let hint = if src.exists(&bin) {
        format!("only PyTorch pickle weights ({bin}) are present; Easel reads safetensors only: convert them (e.g. diffusers' save_pretrained(safe_serialization=True))")
    } else {
        format!("looked for {}; download the complete model folder", names.join(", "))
    };
    Error::MissingFile {
        path: PathBuf::from(format!("{}/{sub}", src.describe())),
        hint,
    }
}

fn sharded(src: &dyn ModelSource, sub: &str, index: &str) -> Result<ComponentWeights> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: std::collections::BTreeMap<String, String>,
    }
    let idx: Index = read_json(src, index)?;
    let mut shards: Vec<String> = idx.weight_map.into_values().collect();
    shards.sort();
    shards.dedup();
    let mut files = Vec::with_capacity(shards.len());
    for shard in shards {
        let rel = format!("{sub}/{shard}");
        match src.path(&rel) {
            Some(p) if p.is_file() => files.push(p),
            _ => {
                return Err(Error::MissingFile {
                    path: PathBuf::from(format!("{}/{rel}", src.describe())),
                    hint: format!("listed in {index}; the download is incomplete"),
                })
            }
        }
    }
    Ok(ComponentWeights {
        files,
        embedded: None,
        custom: None,
        label: format!("{}/{index}", src.describe()),
    })
}

impl ComponentWeights {
    /// Weights opened by `open` (not files of a diffusers folder); `label` names them in errors.
    pub fn custom(label: String, open: OpenWeights) -> Self {
        Self {
            files: vec![],
            embedded: None,
            custom: Some(open),
            label,
        }
    }

    /// Opens the files as a VarBuilder producing `dtype` tensors on `device`.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> Result<VarBuilder<'static>> {
        if let Some(open) = &self.custom {
            return open(dtype, device);
        }
        let vb = match self.embedded {
            Some(bytes) => VarBuilder::from_slice_safetensors(bytes, dtype, device),
            None => return Ok(crate::reader::FileTensors::open(&self.files)?.into_var_builder(dtype, device)),
        };
        vb.map_err(|e| self.error(e))
    }

    /// Wraps a load failure with the file name and a hint.
    pub fn error(&self, e: candle_core::Error) -> Error {
        let msg = e.to_string();
        let hint = if msg.contains("not found") || msg.contains("cannot find tensor") {
            "a tensor the config needs is absent: the weights do not match this config.json"
        } else if msg.contains("shape mismatch") || msg.contains("unexpected shape") {
            "a tensor has the wrong shape: the weights do not match this config.json"
        } else {
            "the file is truncated or not a safetensors file: download it again"
        };
        Error::Weights {
            path: PathBuf::from(&self.label),
            msg: format!("{msg} ({hint})"),
        }
    }
}
