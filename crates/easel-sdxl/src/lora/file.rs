//! Why this exists: SDXL LoRAs come in two key layouts, and a worker must take both:
//!
//! - kohya (sd-scripts, most civitai files): `lora_unet_<module>` / `lora_te1_<module>` /
//!   `lora_te2_<module>` with `.lora_down.weight`, `.lora_up.weight` and a scalar `.alpha`;
//!   `<module>` is the module path with `.` replaced by `_`, in SDXL usually the original
//!   UNet's names (`input_blocks_4_1_transformer_blocks_0_attn1_to_q`).
//! - diffusers / PEFT (`save_lora_weights`): `unet.<module>.lora_A.weight` /
//!   `.lora_B.weight`, `text_encoder.*`, `text_encoder_2.*`; alphas, when not equal to the
//!   rank, in the `lora_adapter_metadata` JSON of the header (`unet.lora_alpha`,
//!   `unet.alpha_pattern`, ...).
//!
//! This reads either into one list of [`LoraLayer`]s. Which model layer each one changes is
//! decided against a loaded model (`apply.rs`), since kohya's flat names are ambiguous
//! without the model's module names. LyCORIS (LoHa, LoKr) and DoRA files are refused by name.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::header::Header;
use crate::{Error, Result};

/// Which key layout a LoRA file uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoraLayout {
    /// `lora_unet_*` / `lora_te1_*` / `lora_te2_*` with `lora_down` / `lora_up` / `alpha`.
    Kohya,
    /// `unet.*` / `text_encoder*.*` with `lora_A` / `lora_B` (diffusers, PEFT).
    Peft,
}

/// The model component a LoRA layer changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    Unet,
    TextEncoder,
    TextEncoder2,
}

/// How a layer names its module.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ModuleName {
    /// kohya: the module path with `_` for `.`, without the `lora_unet_`-style prefix.
    Flat(String),
    /// PEFT: the dotted module path inside the component.
    Dotted(String),
}

/// One low-rank update `ΔW = (alpha / rank) · up · down`.
#[derive(Clone, Debug)]
pub struct LoraLayer {
    /// The name in the file, for reports.
    pub name: String,
    pub component: Component,
    pub module: ModuleName,
    /// `[rank, in]`, or `[rank, in, kh, kw]` for a convolution.
    pub down: Tensor,
    /// `[out, rank]`, or `[out, rank, 1, 1]`.
    pub up: Tensor,
    /// `None`: alpha equals the rank (scale 1).
    pub alpha: Option<f64>,
}

impl LoraLayer {
    /// The rank (rows of `down`).
    pub fn rank(&self) -> usize {
        self.down.dims().first().copied().unwrap_or(0)
    }
}

/// A LoRA file, read into memory (LoRAs are megabytes, not gigabytes).
#[derive(Clone, Debug)]
pub struct LoraFile {
    pub path: PathBuf,
    pub layout: LoraLayout,
    pub layers: Vec<LoraLayer>,
}

/// Key fragments of LoRA variants this engine does not merge, with their names.
const UNSUPPORTED: [(&str, &str); 6] = [
    ("hada_w", "LyCORIS LoHa"),
    ("lokr_w", "LyCORIS LoKr"),
    ("lora_mid", "LyCORIS LoCon with a mid tensor"),
    ("oft_", "OFT"),
    ("dora_scale", "DoRA"),
    ("lora_magnitude_vector", "DoRA"),
];

impl LoraFile {
    /// Reads a LoRA; an error names the file and what it holds when it is not a LoRA.
    pub fn open(path: &Path) -> Result<Self> {
        let header = Header::read(path)?;
        let layout = detect(&header)?;
        let tensors = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| Error::Weights {
            path: path.into(),
            msg: format!("{e}; download it again"),
        })?;
        let layers = match layout {
            LoraLayout::Kohya => kohya_layers(path, &tensors)?,
            LoraLayout::Peft => peft_layers(path, &tensors, &PeftAlphas::from_metadata(&header.metadata))?,
        };
        Ok(Self {
            path: path.into(),
            layout,
            layers,
        })
    }
}

/// The layout of a LoRA file, or an error saying what else it is.
pub fn detect(header: &Header) -> Result<LoraLayout> {
    for key in header.tensors.keys() {
        if let Some((_, what)) = UNSUPPORTED.iter().find(|(frag, _)| key.contains(frag)) {
            return Err(Error::Unsupported(format!(
                "{}: {what} layers (e.g. {key}) cannot be merged by Easel; use a plain LoRA",
                header.path.display()
            )));
        }
    }
    let keys = || header.tensors.keys();
    if keys().any(|k| k.ends_with(".lora_down.weight")) {
        Ok(LoraLayout::Kohya)
    } else if keys().any(|k| k.ends_with(".lora_A.weight")) {
        Ok(LoraLayout::Peft)
    } else {
        let kind = crate::checkpoint::FileKind::classify(header);
        Err(Error::Weights {
            path: header.path.clone(),
            msg: format!(
                "not a LoRA: this file is {}; pass a kohya or diffusers SDXL LoRA",
                kind.describe()
            ),
        })
    }
}

fn kohya_layers(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<Vec<LoraLayer>> {
    let mut names: Vec<&str> = tensors
        .keys()
        .filter_map(|k| k.strip_suffix(".lora_down.weight"))
        .collect();
    names.sort_unstable();
    names.into_iter().map(|name| kohya_layer(path, tensors, name)).collect()
}

fn kohya_layer(path: &Path, tensors: &HashMap<String, Tensor>, name: &str) -> Result<LoraLayer> {
    let (component, flat) = kohya_component(name).ok_or_else(|| {
        bad(
            path,
            format!("layer {name} names no SDXL component (lora_unet_, lora_te1_, lora_te2_)"),
        )
    })?;
    let alpha = match tensors.get(&format!("{name}.alpha")) {
        Some(a) => Some(scalar(path, name, a)?),
        None => None,
    };
    Ok(LoraLayer {
        name: name.into(),
        component,
        module: ModuleName::Flat(flat.into()),
        down: tensors[&format!("{name}.lora_down.weight")].clone(),
        up: pair(path, tensors, &format!("{name}.lora_up.weight"))?,
        alpha,
    })
}

/// kohya's component prefixes; `lora_te_` is what single-encoder trainers write for CLIP-L.
fn kohya_component(name: &str) -> Option<(Component, &str)> {
    [
        ("lora_unet_", Component::Unet),
        ("lora_te1_", Component::TextEncoder),
        ("lora_te_", Component::TextEncoder),
        ("lora_te2_", Component::TextEncoder2),
    ]
    .into_iter()
    .find_map(|(p, c)| name.strip_prefix(p).map(|rest| (c, rest)))
}

fn peft_layers(path: &Path, tensors: &HashMap<String, Tensor>, alphas: &PeftAlphas) -> Result<Vec<LoraLayer>> {
    let mut names: Vec<&str> = tensors
        .keys()
        .filter_map(|k| k.strip_suffix(".lora_A.weight"))
        .collect();
    names.sort_unstable();
    names
        .into_iter()
        .map(|name| peft_layer(path, tensors, alphas, name))
        .collect()
}

fn peft_layer(path: &Path, tensors: &HashMap<String, Tensor>, alphas: &PeftAlphas, name: &str) -> Result<LoraLayer> {
    let (component, prefix, module) = peft_component(name).ok_or_else(|| {
        bad(
            path,
            format!("layer {name} names no SDXL component (unet., text_encoder., text_encoder_2.)"),
        )
    })?;
    let alpha = match tensors.get(&format!("{name}.alpha")) {
        Some(a) => Some(scalar(path, name, a)?),
        None => alphas.alpha(prefix, module),
    };
    Ok(LoraLayer {
        name: name.into(),
        component,
        module: ModuleName::Dotted(module.into()),
        down: tensors[&format!("{name}.lora_A.weight")].clone(),
        up: pair(path, tensors, &format!("{name}.lora_B.weight"))?,
        alpha,
    })
}

fn peft_component(name: &str) -> Option<(Component, &'static str, &str)> {
    [
        ("unet", Component::Unet),
        ("text_encoder_2", Component::TextEncoder2),
        ("text_encoder", Component::TextEncoder),
    ]
    .into_iter()
    .find_map(|(p, c)| {
        name.strip_prefix(p)
            .and_then(|r| r.strip_prefix('.'))
            .map(|rest| (c, p, rest))
    })
}

/// PEFT alphas from `lora_adapter_metadata`: per component a default `lora_alpha` and an
/// `alpha_pattern` of module-name suffixes (PEFT matches a pattern at a `.` boundary).
#[derive(Default)]
struct PeftAlphas {
    default: BTreeMap<String, f64>,
    patterns: BTreeMap<String, Vec<(String, f64)>>,
}

impl PeftAlphas {
    fn from_metadata(meta: &BTreeMap<String, String>) -> Self {
        let mut out = Self::default();
        let Some(raw) = meta.get("lora_adapter_metadata") else {
            return out;
        };
        let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(raw) else {
            return out;
        };
        for (key, value) in map {
            let Some((component, field)) = key.rsplit_once('.') else {
                continue;
            };
            match (field, &value) {
                ("lora_alpha", v) if v.is_number() => {
                    out.default.insert(component.into(), v.as_f64().unwrap_or(0.0));
                }
                ("alpha_pattern", serde_json::Value::Object(p)) => {
                    let pats = p
                        .iter()
                        .filter_map(|(k, v)| v.as_f64().map(|a| (k.clone(), a)))
                        .collect();
                    out.patterns.insert(component.into(), pats);
                }
                _ => {}
            }
        }
        out
    }

    fn alpha(&self, component: &str, module: &str) -> Option<f64> {
        let pattern = self.patterns.get(component).and_then(|pats| {
            pats.iter()
                .find(|(p, _)| module == p || module.ends_with(&format!(".{p}")))
                .map(|(_, a)| *a)
        });
        pattern.or_else(|| self.default.get(component).copied())
    }
}

fn pair(path: &Path, tensors: &HashMap<String, Tensor>, key: &str) -> Result<Tensor> {
    tensors
        .get(key)
        .cloned()
        .ok_or_else(|| bad(path, format!("{key} is missing: the file is incomplete")))
}

fn scalar(path: &Path, name: &str, t: &Tensor) -> Result<f64> {
    let v = t
        .to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f64>());
    match v.as_deref() {
        Ok([a]) => Ok(*a),
        _ => Err(bad(path, format!("{name}.alpha is not a single number"))),
    }
}

fn bad(path: &Path, msg: String) -> Error {
    Error::Weights { path: path.into(), msg }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peft_alpha_patterns_match_at_a_module_boundary() {
        let meta = BTreeMap::from([(
            "lora_adapter_metadata".to_string(),
            r#"{"unet.lora_alpha": 8, "unet.r": 4, "unet.alpha_pattern": {"attn1.to_q": 2}}"#.to_string(),
        )]);
        let a = PeftAlphas::from_metadata(&meta);
        assert_eq!(
            a.alpha("unet", "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"),
            Some(2.0)
        );
        assert_eq!(
            a.alpha("unet", "down_blocks.1.attentions.0.transformer_blocks.0.xattn1.to_q"),
            Some(8.0)
        );
        assert_eq!(
            a.alpha("text_encoder", "text_model.encoder.layers.0.self_attn.q_proj"),
            None
        );
    }

    #[test]
    fn kohya_prefixes_name_the_component() {
        assert_eq!(
            kohya_component("lora_te2_text_model_x"),
            Some((Component::TextEncoder2, "text_model_x"))
        );
        assert_eq!(
            kohya_component("lora_te_text_model_x"),
            Some((Component::TextEncoder, "text_model_x"))
        );
        assert_eq!(kohya_component("lora_transformer_x"), None);
        assert_eq!(
            peft_component("text_encoder_2.a.b"),
            Some((Component::TextEncoder2, "text_encoder_2", "a.b"))
        );
        assert_eq!(
            peft_component("text_encoder.a.b"),
            Some((Component::TextEncoder, "text_encoder", "a.b"))
        );
    }
}
