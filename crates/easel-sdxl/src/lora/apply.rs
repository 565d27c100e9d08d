//! Why this exists: applying LoRAs to a loaded model for one job and removing them after,
//! exactly as diffusers' `load_lora_weights` + `fuse_lora(lora_scale=s)` changes the weights:
//! `W' = W + s · (alpha / rank) · up · down` for every layer a LoRA names (summed over LoRAs).
//!
//! Flow of [`SdxlModel::set_loras`]: index the model's layers by every name a LoRA may use
//! (diffusers paths, kohya flat names in diffusers and original-UNet spelling) → resolve
//! each LoRA layer → merge the deltas in f32 into copies of the affected weights → rebuild
//! the changed components from the recorded base tensors with those copies in place.
//! `set_loras(&[])` rebuilds from the base tensors alone: the base model, bit for bit.
//!
//! Memory: only the affected weights are copied (a typical SDXL LoRA on the attention
//! projections copies roughly a third of the UNet while it is active); the base weights
//! stay resident, so nothing is read from disk again. Merging trades that memory for
//! speed: the alternative, adding `up · (down · x)` in every forward, needs no copy but
//! two extra matmuls per layer per step and changes to every layer type.

use std::collections::HashMap;

use candle_core::{DType, Tensor};

use super::base::rebuild_vb;
use super::file::{Component, LoraFile, LoraLayer, ModuleName};
use super::report::{AppliedLora, LoraReport};
use super::state::LoraState;
use crate::checkpoint::keymap::{self, Source};
use crate::clip::ClipTextEncoder;
use crate::model::SdxlModel;
use crate::unet::UNet;
use crate::{Error, Result};

/// Names of unmatched layers shown in an error before "and N more".
const SHOWN_UNMATCHED: usize = 5;

/// A model layer a LoRA changes: the component and its weight's key.
type Target = (Component, String);

impl SdxlModel {
    /// Makes `loras` (each with its scale) the active LoRAs, replacing any applied before;
    /// an empty list restores the base weights exactly. Base weights are never reloaded.
    pub fn set_loras(&mut self, loras: &[(&LoraFile, f64)]) -> Result<LoraReport> {
        let index = self.layer_index()?;
        let mut deltas: HashMap<Target, Tensor> = HashMap::new();
        let mut report = LoraReport::default();
        for (lora, scale) in loras {
            report.loras.push(self.collect(&index, lora, *scale, &mut deltas)?);
        }
        let overrides = self.merge(deltas, &mut report)?;
        self.rebuild(overrides)?;
        self.lora.active = report.loras.clone();
        Ok(report)
    }

    /// Removes every LoRA: the model is the base model again, bit for bit.
    pub fn clear_loras(&mut self) -> Result<()> {
        self.set_loras(&[]).map(|_| ())
    }

    /// The LoRAs applied now.
    pub fn active_loras(&self) -> &[AppliedLora] {
        &self.lora.active
    }

    /// Runs `f` with `loras` applied and removes them afterwards, also when `f` fails.
    pub fn with_loras<T>(&mut self, loras: &[(&LoraFile, f64)], f: impl FnOnce(&SdxlModel) -> Result<T>) -> Result<T> {
        if loras.is_empty() {
            return f(self);
        }
        if let Err(e) = self.set_loras(loras) {
            self.clear_loras()?;
            return Err(e);
        }
        let out = f(self);
        let cleared = self.clear_loras();
        let value = out?;
        cleared.map(|_| value)
    }

    /// Resolves the layers of one LoRA and adds their scaled deltas to `deltas`.
    fn collect(
        &self,
        index: &LayerIndex,
        lora: &LoraFile,
        scale: f64,
        deltas: &mut HashMap<Target, Tensor>,
    ) -> Result<AppliedLora> {
        let mut applied = AppliedLora {
            path: lora.path.display().to_string(),
            scale,
            layers: 0,
            unmatched: vec![],
        };
        for layer in &lora.layers {
            let Some(target) = index.resolve(layer) else {
                applied.unmatched.push(layer.name.clone());
                continue;
            };
            let base = self.lora.tensors(target.0).get(&target.1).cloned().ok_or_else(|| {
                Error::Unsupported(format!("{}: no recorded weight {}", lora.path.display(), target.1))
            })?;
            let d = delta(lora, layer, &base, scale)?;
            let sum = match deltas.remove(&target) {
                Some(prev) => (prev + d)?,
                None => d,
            };
            deltas.insert(target, sum);
            applied.layers += 1;
        }
        if applied.layers == 0 && !lora.layers.is_empty() {
            return Err(no_match(lora, &applied.unmatched));
        }
        Ok(applied)
    }

    /// `W + ΔW` in f32, stored in the weight's own dtype.
    fn merge(
        &self,
        deltas: HashMap<Target, Tensor>,
        report: &mut LoraReport,
    ) -> Result<HashMap<Component, HashMap<String, Tensor>>> {
        let mut out: HashMap<Component, HashMap<String, Tensor>> = HashMap::new();
        for ((component, key), d) in deltas {
            let base = &self.lora.tensors(component)[&key];
            let merged = (base.to_dtype(DType::F32)? + d)?.to_dtype(base.dtype())?;
            report.merged_weights += 1;
            report.extra_bytes += (merged.elem_count() * merged.dtype().size_in_bytes()) as u64;
            out.entry(component).or_default().insert(key, merged);
        }
        Ok(out)
    }

    /// Rebuilds each component that changes now or was changed before.
    fn rebuild(&mut self, mut overrides: HashMap<Component, HashMap<String, Tensor>>) -> Result<()> {
        let (dtype, device) = (self.dtype, self.device.clone());
        for component in [Component::Unet, Component::TextEncoder, Component::TextEncoder2] {
            let ov = overrides.remove(&component).unwrap_or_default();
            if ov.is_empty() && !self.lora.modified(component) {
                continue;
            }
            self.lora.set_modified(component, !ov.is_empty());
            let vb = rebuild_vb(self.lora.tensors(component).clone(), ov, dtype, &device);
            match component {
                Component::Unet => self.unet = UNet::new(&self.unet_config, vb)?,
                Component::TextEncoder => self.text_encoder = ClipTextEncoder::new(&self.lora.te1_config, false, vb)?,
                Component::TextEncoder2 => self.text_encoder_2 = ClipTextEncoder::new(&self.lora.te2_config, true, vb)?,
            }
        }
        Ok(())
    }

    fn layer_index(&self) -> Result<LayerIndex> {
        let unet_map = keymap::unet(&self.unet_config)?;
        Ok(LayerIndex::new(&self.lora, &unet_map))
    }
}

/// Every name a LoRA may give a model layer, mapped to that layer's weight key.
struct LayerIndex {
    names: HashMap<(Component, ModuleName), String>,
}

impl LayerIndex {
    fn new(state: &LoraState, unet_map: &keymap::KeyMap) -> Self {
        let mut names = HashMap::new();
        for component in [Component::Unet, Component::TextEncoder, Component::TextEncoder2] {
            for (key, t) in state.tensors(component).iter() {
                let Some(module) = key.strip_suffix(".weight").filter(|_| matches!(t.rank(), 2 | 4)) else {
                    continue;
                };
                let module = canonical(component, module);
                names.insert((component, ModuleName::Flat(module.replace('.', "_"))), key.clone());
                if component == Component::Unet {
                    if let Some(ldm) = ldm_module(unet_map, key) {
                        names.insert((component, ModuleName::Flat(ldm.replace('.', "_"))), key.clone());
                    }
                }
                names.insert((component, ModuleName::Dotted(module)), key.clone());
            }
        }
        Self { names }
    }

    fn resolve(&self, layer: &LoraLayer) -> Option<Target> {
        let module = match &layer.module {
            ModuleName::Dotted(m) => ModuleName::Dotted(canonical(layer.component, m)),
            flat => flat.clone(),
        };
        self.names
            .get(&(layer.component, module))
            .map(|key| (layer.component, key.clone()))
    }
}

/// Text encoder modules always as `text_model.*` (transformers ≥ 5 saves CLIP-L without it).
fn canonical(component: Component, module: &str) -> String {
    let bare = component != Component::Unet && !module.starts_with("text_model.") && module != "text_projection";
    if bare {
        format!("text_model.{module}")
    } else {
        module.to_string()
    }
}

/// The original-UNet module path of a diffusers UNet weight key (kohya's SDXL spelling).
fn ldm_module(unet_map: &keymap::KeyMap, key: &str) -> Option<String> {
    match unet_map.source(key)? {
        Source::Renamed(k) => {
            let module = k.strip_prefix(keymap::UNET_PREFIX)?.strip_suffix(".weight")?;
            Some(module.to_string())
        }
        _ => None,
    }
}

/// `scale · (alpha / rank) · up · down` in f32, shaped like `base`.
fn delta(lora: &LoraFile, layer: &LoraLayer, base: &Tensor, scale: f64) -> Result<Tensor> {
    let dev = base.device();
    let rank = layer.rank();
    let factor = scale * layer.alpha.unwrap_or(rank as f64) / rank.max(1) as f64;
    let up = layer.up.to_device(dev)?.to_dtype(DType::F32)?.flatten_from(1)?;
    let down = layer.down.to_device(dev)?.to_dtype(DType::F32)?.flatten_from(1)?;
    let (out_dim, in_dim) = (up.dim(0)?, down.dim(1)?);
    if up.dim(1)? != rank || out_dim * in_dim != base.elem_count() || base.dim(0)? != out_dim {
        return Err(Error::Weights {
            path: lora.path.clone(),
            msg: format!(
                "layer {} is {out_dim}×{in_dim} (rank {rank}) but the model's weight is {:?}: this LoRA was made for another model",
                layer.name,
                base.dims()
            ),
        });
    }
    Ok((up.matmul(&down)? * factor)?.reshape(base.shape())?)
}

fn no_match(lora: &LoraFile, unmatched: &[String]) -> Error {
    let shown = unmatched
        .iter()
        .take(SHOWN_UNMATCHED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    let more = unmatched.len().saturating_sub(SHOWN_UNMATCHED);
    Error::Unsupported(format!(
        "LoRA {} matches no layer of this model ({shown}{}): is it an SDXL LoRA?",
        lora.path.display(),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    ))
}
