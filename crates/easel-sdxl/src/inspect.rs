//! Why this exists: before pointing a worker at a file, people need to know what it is —
//! a diffusers folder, a single-file SDXL checkpoint, a LoRA, a VAE, something else — with
//! its components, dtype and parameter count. [`inspect`] answers from safetensors headers
//! alone (a few kilobytes read per file, no weights loaded), for `easel models inspect`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::DType;

use crate::checkpoint::keymap::{CLIP_G_PREFIX, CLIP_L_PREFIX, UNET_PREFIX, VAE_PREFIX};
use crate::header::Header;
use crate::loader::{DirSource, ModelSource};
use crate::weights::{self, Variant};
use crate::{Error, Result};

/// What a single file holds and the architecture read from its shapes, as reported here.
pub use crate::checkpoint::kind::FileKind;
pub use crate::checkpoint::signature::Architecture;

/// The components of a diffusers SDXL folder that hold weights, with their file stems.
const FOLDER_COMPONENTS: [(&str, &str); 4] = [
    ("unet", "diffusion_pytorch_model"),
    ("vae", "diffusion_pytorch_model"),
    ("text_encoder", "model"),
    ("text_encoder_2", "model"),
];

/// dtypes counted as parameters (integer tensors such as `position_ids` are buffers).
const FLOAT_DTYPES: [&str; 6] = ["F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"];

/// What a path holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    DiffusersFolder,
    SingleFile,
    Lora,
    Vae,
    Component,
    Unknown,
}

/// One component (a folder's subfolder, or a key prefix of a single file).
#[derive(Clone, Debug, serde::Serialize)]
pub struct ComponentInfo {
    pub name: String,
    pub files: Vec<String>,
    pub tensors: usize,
    pub parameters: u64,
    /// The dtype holding most of its parameters.
    pub dtype: String,
    /// Why it could not be read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// LoRA details.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoraInfo {
    pub layers: usize,
    pub ranks: Vec<usize>,
    pub has_alphas: bool,
}

/// Everything `easel models inspect` reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Inspection {
    pub path: PathBuf,
    pub layout: Layout,
    /// For a single file: what it holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<FileKind>,
    pub description: String,
    pub dtype: String,
    pub parameters: u64,
    pub bytes: u64,
    pub components: Vec<ComponentInfo>,
    /// Architecture numbers read from an SDXL single file's shapes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<Architecture>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraInfo>,
    /// A single file's free-form `__metadata__` strings (kohya's `ss_*` training settings,
    /// `format`, ...); empty for folders.
    pub metadata: BTreeMap<String, String>,
}

/// Inspects a diffusers folder or a single safetensors file, reading headers only.
pub fn inspect(path: &Path) -> Result<Inspection> {
    if path.is_dir() {
        return inspect_folder(path);
    }
    if !path.is_file() {
        return Err(Error::MissingFile {
            path: path.into(),
            hint: "pass a diffusers model folder or a .safetensors file".into(),
        });
    }
    inspect_file(path)
}

fn inspect_file(path: &Path) -> Result<Inspection> {
    let h = Header::read(path)?;
    let kind = FileKind::classify(&h);
    let components = file_components(&h, kind);
    let (layout, architecture, lora) = match kind {
        FileKind::SdxlCheckpoint => (Layout::SingleFile, Some(Architecture::from_header(&h)), None),
        FileKind::SdxlRefiner | FileKind::Sd1Checkpoint | FileKind::Sd2Checkpoint | FileKind::LdmUnet => {
            (Layout::SingleFile, None, None)
        }
        FileKind::KohyaLora | FileKind::PeftLora | FileKind::LycorisLora => (Layout::Lora, None, Some(lora_info(&h))),
        FileKind::Vae => (Layout::Vae, None, None),
        FileKind::DiffusersUnet | FileKind::ClipTextEncoder => (Layout::Component, None, None),
        FileKind::Unknown => (Layout::Unknown, None, None),
    };
    Ok(Inspection {
        path: path.into(),
        layout,
        kind: Some(kind),
        description: kind.describe().into(),
        dtype: dominant(&float_params(&h)),
        parameters: float_params(&h).values().sum(),
        bytes: h.file_len,
        components,
        architecture,
        lora,
        metadata: h.metadata.clone(),
    })
}

/// Components of a single file by key prefix.
fn file_components(h: &Header, kind: FileKind) -> Vec<ComponentInfo> {
    let prefixes: &[(&str, &str)] = match kind {
        FileKind::SdxlCheckpoint => &[
            ("unet", UNET_PREFIX),
            ("vae", VAE_PREFIX),
            ("text_encoder (CLIP-L)", CLIP_L_PREFIX),
            ("text_encoder_2 (OpenCLIP-G)", CLIP_G_PREFIX),
        ],
        FileKind::SdxlRefiner | FileKind::Sd1Checkpoint | FileKind::Sd2Checkpoint | FileKind::LdmUnet => &[
            ("unet", UNET_PREFIX),
            ("vae", VAE_PREFIX),
            ("text encoder", "cond_stage_model."),
            ("text encoder", "conditioner."),
        ],
        FileKind::KohyaLora => &[
            ("unet", "lora_unet_"),
            ("text_encoder", "lora_te1_"),
            ("text_encoder", "lora_te_"),
            ("text_encoder_2", "lora_te2_"),
        ],
        FileKind::PeftLora => &[
            ("unet", "unet."),
            ("text_encoder_2", "text_encoder_2."),
            ("text_encoder", "text_encoder."),
        ],
        _ => &[],
    };
    let file = h.path.display().to_string();
    let mut out: Vec<ComponentInfo> = Vec::new();
    let mut seen = 0;
    for (name, prefix) in prefixes {
        let keys: Vec<&str> = h.keys_with_prefix(prefix).collect();
        if keys.is_empty() {
            continue;
        }
        seen += keys.len();
        merge_component(
            &mut out,
            summarize(name, vec![file.clone()], keys.iter().map(|k| &h.tensors[*k])),
        );
    }
    if seen < h.tensors.len() {
        let rest = h
            .tensors
            .iter()
            .filter(|(k, _)| !prefixes.iter().any(|(_, p)| k.starts_with(p)));
        let label = if prefixes.is_empty() { "all" } else { "other" };
        out.push(summarize(label, vec![file], rest.map(|(_, t)| t)));
    }
    out
}

/// Adds `c` to `out`, merging it into a component of the same name.
fn merge_component(out: &mut Vec<ComponentInfo>, c: ComponentInfo) {
    match out.iter_mut().find(|o| o.name == c.name) {
        Some(o) => {
            o.tensors += c.tensors;
            o.parameters += c.parameters;
        }
        None => out.push(c),
    }
}

fn summarize<'a>(
    name: &str,
    files: Vec<String>,
    tensors: impl Iterator<Item = &'a crate::header::TensorInfo>,
) -> ComponentInfo {
    let mut by_dtype: BTreeMap<String, u64> = BTreeMap::new();
    let mut count = 0;
    for t in tensors {
        count += 1;
        if FLOAT_DTYPES.contains(&t.dtype.as_str()) {
            *by_dtype.entry(t.dtype.clone()).or_insert(0) += t.numel();
        }
    }
    ComponentInfo {
        name: name.into(),
        files,
        tensors: count,
        parameters: by_dtype.values().sum(),
        dtype: dominant(&by_dtype),
        problem: None,
    }
}

fn float_params(h: &Header) -> BTreeMap<String, u64> {
    h.params_by_dtype()
        .into_iter()
        .filter(|(d, _)| FLOAT_DTYPES.contains(&d.as_str()))
        .collect()
}

/// The dtype with the most elements (`-` when there is none).
fn dominant(by: &BTreeMap<String, u64>) -> String {
    by.iter()
        .max_by_key(|(_, n)| **n)
        .map_or("-".into(), |(d, _)| d.clone())
}

fn lora_info(h: &Header) -> LoraInfo {
    let mut ranks: Vec<usize> = h
        .tensors
        .iter()
        .filter(|(k, _)| k.ends_with(".lora_down.weight") || k.ends_with(".lora_A.weight"))
        .filter_map(|(_, t)| t.shape.first().copied())
        .collect();
    let layers = ranks.len();
    ranks.sort_unstable();
    ranks.dedup();
    LoraInfo {
        layers,
        ranks,
        has_alphas: h.tensors.keys().any(|k| k.ends_with(".alpha")),
    }
}

fn inspect_folder(path: &Path) -> Result<Inspection> {
    let src = DirSource::new(path);
    let has_component = FOLDER_COMPONENTS.iter().any(|(sub, _)| path.join(sub).is_dir());
    if !src.exists("model_index.json") && !has_component {
        return Err(Error::NotAModel {
            path: path.into(),
            why: "the folder has no model_index.json and none of unet/, vae/, text_encoder/, text_encoder_2/; \
                  pass a diffusers SDXL folder or a .safetensors file"
                .into(),
        });
    }
    let components: Vec<ComponentInfo> = FOLDER_COMPONENTS
        .iter()
        .map(|(sub, stem)| folder_component(&src, sub, stem))
        .collect();
    let mut by_dtype = BTreeMap::new();
    for c in &components {
        *by_dtype.entry(c.dtype.clone()).or_insert(0) += c.parameters;
    }
    let complete = components.iter().all(|c| c.problem.is_none()) && src.exists("model_index.json");
    let description = if complete {
        "a diffusers SDXL folder (model_index.json, unet, vae, text_encoder, text_encoder_2)".to_string()
    } else {
        "an incomplete diffusers folder (see the components' problems)".to_string()
    };
    Ok(Inspection {
        path: path.into(),
        layout: Layout::DiffusersFolder,
        kind: None,
        description,
        dtype: dominant(&by_dtype),
        parameters: components.iter().map(|c| c.parameters).sum(),
        bytes: components
            .iter()
            .flat_map(|c| &c.files)
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum(),
        components,
        architecture: None,
        lora: None,
        metadata: BTreeMap::new(),
    })
}

/// A folder component: the weight files Easel would load in f32 (plain, else fp16 variant).
fn folder_component(src: &DirSource, sub: &str, stem: &str) -> ComponentInfo {
    let headers = weights::find(src, sub, stem, &Variant::Auto, DType::F32)
        .and_then(|w| w.files.iter().map(|f| Header::read(f)).collect::<Result<Vec<_>>>());
    match headers {
        Ok(hs) => {
            let files = hs.iter().map(|h| h.path.display().to_string()).collect();
            summarize(sub, files, hs.iter().flat_map(|h| h.tensors.values()))
        }
        Err(e) => ComponentInfo {
            name: sub.into(),
            files: vec![],
            tensors: 0,
            parameters: 0,
            dtype: "-".into(),
            problem: Some(e.to_string()),
        },
    }
}
