//! Why this exists: a single-file SDXL checkpoint stores the same tensors as a diffusers
//! folder under the original (LDM / SGM) names, and a few in another shape. The model code
//! asks for diffusers names; this module answers, for each, where the tensor lives in the
//! file and how to view it ([`Source`]). It is the mapping diffusers' `from_single_file`
//! applies (`diffusers/loaders/single_file_utils.py`), written as tables:
//!
//! - UNet `model.diffusion_model.*`: `input_blocks.N` / `middle_block.N` / `output_blocks.N`
//!   become down / mid / up blocks by counting layers per level from the UNet config;
//!   ResNet internals are renamed (`in_layers.0` → `norm1`, ...); transformers keep their names.
//! - VAE `first_stage_model.*`: `down.i.block.j` → `down_blocks.i.resnets.j`, decoder levels
//!   reversed, mid attention `q/k/v/proj_out` are 1×1 convs read as linears.
//! - CLIP-L `conditioner.embedders.0.transformer.*`: already transformers' names.
//! - OpenCLIP-G `conditioner.embedders.1.model.*`: fused `in_proj` split into q/k/v,
//!   `text_projection` transposed, embeddings and final norm renamed.

use std::collections::HashMap;

use crate::config::UNetConfig;
use crate::Result;

/// Where SDXL single-file checkpoints keep each component.
pub const UNET_PREFIX: &str = "model.diffusion_model.";
pub const VAE_PREFIX: &str = "first_stage_model.";
pub const CLIP_L_PREFIX: &str = "conditioner.embedders.0.transformer.";
pub const CLIP_G_PREFIX: &str = "conditioner.embedders.1.model.";

/// How one diffusers tensor is read from the checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The same tensor under another name.
    Renamed(String),
    /// A 1×1 convolution weight `[C, C', 1, 1]` read as a linear weight `[C, C']`.
    ConvAsLinear(String),
    /// Rows `index·n .. (index+1)·n` of a fused q/k/v tensor `[3n, ...]` (0 = q, 1 = k, 2 = v).
    Third { key: String, index: usize },
    /// The transpose of a matrix stored for `x @ W` (OpenCLIP's `text_projection`).
    Transposed(String),
}

impl Source {
    /// The checkpoint key this source reads.
    pub fn key(&self) -> &str {
        match self {
            Source::Renamed(k) | Source::ConvAsLinear(k) | Source::Transposed(k) => k,
            Source::Third { key, .. } => key,
        }
    }
}

/// How the tail of a name under a mapped module is renamed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Inner {
    /// Unchanged (transformers, convolutions, norms).
    Same,
    /// A ResNet block: diffusers' `norm1/conv1/...` from LDM's `in_layers/out_layers/...`.
    Resnet,
    /// The VAE's mid-block attention (1×1 conv q/k/v/proj_out).
    VaeAttention,
    /// One OpenCLIP transformer block (fused in_proj).
    OpenClipBlock,
}

/// (diffusers, LDM) names inside a ResNet block, UNet and VAE alike.
const UNET_RESNET: [(&str, &str); 6] = [
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("time_emb_proj", "emb_layers.1"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("conv_shortcut", "skip_connection"),
];

/// The VAE's ResNets differ from diffusers' only in the shortcut's name.
const VAE_RESNET: [(&str, &str); 1] = [("conv_shortcut", "nin_shortcut")];

/// (diffusers, OpenCLIP) names inside one text transformer block.
const OPEN_CLIP_BLOCK: [(&str, &str); 5] = [
    ("layer_norm1", "ln_1"),
    ("layer_norm2", "ln_2"),
    ("mlp.fc1", "mlp.c_fc"),
    ("mlp.fc2", "mlp.c_proj"),
    ("self_attn.out_proj", "attn.out_proj"),
];

/// One component's mapping: diffusers module prefixes to checkpoint prefixes.
#[derive(Clone, Debug, Default)]
pub struct KeyMap {
    /// diffusers module path (no trailing dot) → (checkpoint module path, inner rule).
    modules: HashMap<String, (String, Inner)>,
    /// Whole-tensor exceptions (diffusers name → source).
    leaves: HashMap<String, Source>,
    /// Modules whose index is free (`text_model.encoder.layers.{i}`): (diffusers stem,
    /// checkpoint stem, rule). Used for text encoders, whose depth needs no config.
    indexed: Vec<(String, String, Inner)>,
    /// Prefix of every checkpoint key of this component.
    prefix: String,
}

impl KeyMap {
    fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.into(),
            ..Default::default()
        }
    }

    fn module(&mut self, diffusers: String, ldm: String, inner: Inner) {
        self.modules.insert(diffusers, (ldm, inner));
    }

    /// Where the diffusers tensor `name` lives in the checkpoint; `None` if nowhere.
    pub fn source(&self, name: &str) -> Option<Source> {
        if let Some(s) = self.leaves.get(name) {
            return Some(s.clone());
        }
        let (module, (ldm, inner), rest) = self.find_module(name)?;
        let _ = module;
        let full = |tail: &str| format!("{}{}.{}", self.prefix, ldm, tail);
        inner_source(inner, rest, &full)
    }

    /// The longest mapped module that `name` lies in, with the rest of the name.
    fn find_module<'a>(&'a self, name: &'a str) -> Option<(&'a str, (String, Inner), &'a str)> {
        let mut end = name.len();
        while let Some(dot) = name[..end].rfind('.') {
            let (module, rest) = (&name[..dot], &name[dot + 1..]);
            if let Some((ldm, inner)) = self.modules.get(module) {
                return Some((module, (ldm.clone(), *inner), rest));
            }
            if let Some(found) = self.indexed_module(module) {
                return Some((module, found, rest));
            }
            end = dot;
        }
        None
    }

    /// `stem.{i}` for an indexed stem.
    fn indexed_module(&self, module: &str) -> Option<(String, Inner)> {
        let (stem, index) = module.rsplit_once('.')?;
        index.parse::<usize>().ok()?;
        let (_, ldm, inner) = self.indexed.iter().find(|(d, _, _)| d == stem)?;
        Some((format!("{ldm}.{index}"), *inner))
    }
}

/// Renames `rest` (the part of a name below a mapped module) by `inner`'s rule.
fn inner_source(inner: Inner, rest: &str, full: &dyn Fn(&str) -> String) -> Option<Source> {
    match inner {
        Inner::Same => Some(Source::Renamed(full(rest))),
        Inner::Resnet => Some(Source::Renamed(full(&rename_head(rest, &UNET_RESNET)))),
        Inner::VaeAttention => vae_attention(rest, full),
        Inner::OpenClipBlock => open_clip_block(rest, full),
    }
}

/// Replaces the leading module of `rest` by its pair in `table`, when listed.
fn rename_head(rest: &str, table: &[(&str, &str)]) -> String {
    for (from, to) in table {
        if let Some(tail) = rest.strip_prefix(from).and_then(|t| t.strip_prefix('.')) {
            return format!("{to}.{tail}");
        }
    }
    rest.to_string()
}

fn vae_attention(rest: &str, full: &dyn Fn(&str) -> String) -> Option<Source> {
    let (module, param) = rest.rsplit_once('.')?;
    let ldm = match module {
        "group_norm" => return Some(Source::Renamed(full(&format!("norm.{param}")))),
        "to_q" => "q",
        "to_k" => "k",
        "to_v" => "v",
        "to_out.0" => "proj_out",
        _ => return None,
    };
    let key = full(&format!("{ldm}.{param}"));
    Some(if param == "weight" {
        Source::ConvAsLinear(key)
    } else {
        Source::Renamed(key)
    })
}

fn open_clip_block(rest: &str, full: &dyn Fn(&str) -> String) -> Option<Source> {
    for (index, qkv) in ["self_attn.q_proj.", "self_attn.k_proj.", "self_attn.v_proj."]
        .iter()
        .enumerate()
    {
        if let Some(param) = rest.strip_prefix(qkv) {
            return Some(Source::Third {
                key: full(&format!("attn.in_proj_{param}")),
                index,
            });
        }
    }
    Some(Source::Renamed(full(&rename_head(rest, &OPEN_CLIP_BLOCK))))
}

/// The UNet's mapping, from the config's levels, layers per level and block types.
pub fn unet(cfg: &UNetConfig) -> Result<KeyMap> {
    let n = cfg.block_out_channels.len();
    let layers = cfg.layers_per_block.expand(n, "layers_per_block")?;
    let mut m = KeyMap::new(UNET_PREFIX);
    for (d, l) in [
        ("conv_in", "input_blocks.0.0"),
        ("time_embedding.linear_1", "time_embed.0"),
        ("time_embedding.linear_2", "time_embed.2"),
        ("add_embedding.linear_1", "label_emb.0.0"),
        ("add_embedding.linear_2", "label_emb.0.2"),
        ("conv_norm_out", "out.0"),
        ("conv_out", "out.2"),
    ] {
        m.module(d.into(), l.into(), Inner::Same);
    }
    unet_down(&mut m, cfg, &layers);
    for (d, l, inner) in [
        ("resnets.0", 0, Inner::Resnet),
        ("attentions.0", 1, Inner::Same),
        ("resnets.1", 2, Inner::Resnet),
    ] {
        m.module(format!("mid_block.{d}"), format!("middle_block.{l}"), inner);
    }
    unet_up(&mut m, cfg, &layers);
    Ok(m)
}

/// `input_blocks.{k}`: after conv_in, each level's layers then its downsampler.
fn unet_down(m: &mut KeyMap, cfg: &UNetConfig, layers: &[usize]) {
    let n = layers.len();
    let mut k = 1;
    for (i, &layer_count) in layers.iter().enumerate() {
        let attn = cfg.down_block_types[i].starts_with("CrossAttn");
        for j in 0..layer_count {
            m.module(
                format!("down_blocks.{i}.resnets.{j}"),
                format!("input_blocks.{k}.0"),
                Inner::Resnet,
            );
            if attn {
                m.module(
                    format!("down_blocks.{i}.attentions.{j}"),
                    format!("input_blocks.{k}.1"),
                    Inner::Same,
                );
            }
            k += 1;
        }
        if i + 1 < n {
            m.module(
                format!("down_blocks.{i}.downsamplers.0.conv"),
                format!("input_blocks.{k}.0.op"),
                Inner::Same,
            );
            k += 1;
        }
    }
}

/// `output_blocks.{k}`: each level (deepest first) has one layer more than on the way
/// down; its upsampler sits in the level's last block, after the attention when there is one.
fn unet_up(m: &mut KeyMap, cfg: &UNetConfig, layers: &[usize]) {
    let n = layers.len();
    let mut k = 0;
    for i in 0..n {
        let per_level = layers[n - 1 - i] + 1;
        let attn = cfg.up_block_types[i].starts_with("CrossAttn");
        for j in 0..per_level {
            m.module(
                format!("up_blocks.{i}.resnets.{j}"),
                format!("output_blocks.{k}.0"),
                Inner::Resnet,
            );
            if attn {
                m.module(
                    format!("up_blocks.{i}.attentions.{j}"),
                    format!("output_blocks.{k}.1"),
                    Inner::Same,
                );
            }
            if j + 1 == per_level && i + 1 < n {
                let slot = if attn { 2 } else { 1 };
                m.module(
                    format!("up_blocks.{i}.upsamplers.0.conv"),
                    format!("output_blocks.{k}.{slot}.conv"),
                    Inner::Same,
                );
            }
            k += 1;
        }
    }
}

/// The VAE's mapping for `levels` levels of `layers` ResNets (decoder: `layers + 1`).
pub fn vae(levels: usize, layers: usize) -> KeyMap {
    let mut m = KeyMap::new(VAE_PREFIX);
    for (d, l) in [
        ("quant_conv", "quant_conv"),
        ("post_quant_conv", "post_quant_conv"),
        ("encoder.conv_in", "encoder.conv_in"),
        ("encoder.conv_out", "encoder.conv_out"),
        ("encoder.conv_norm_out", "encoder.norm_out"),
        ("decoder.conv_in", "decoder.conv_in"),
        ("decoder.conv_out", "decoder.conv_out"),
        ("decoder.conv_norm_out", "decoder.norm_out"),
    ] {
        m.module(d.into(), l.into(), Inner::Same);
    }
    for part in ["encoder", "decoder"] {
        m.module(
            format!("{part}.mid_block.resnets.0"),
            format!("{part}.mid.block_1"),
            Inner::Same,
        );
        m.module(
            format!("{part}.mid_block.resnets.1"),
            format!("{part}.mid.block_2"),
            Inner::Same,
        );
        m.module(
            format!("{part}.mid_block.attentions.0"),
            format!("{part}.mid.attn_1"),
            Inner::VaeAttention,
        );
    }
    for i in 0..levels {
        for j in 0..layers {
            vae_resnet(
                &mut m,
                format!("encoder.down_blocks.{i}.resnets.{j}"),
                format!("encoder.down.{i}.block.{j}"),
            );
        }
        if i + 1 < levels {
            m.module(
                format!("encoder.down_blocks.{i}.downsamplers.0.conv"),
                format!("encoder.down.{i}.downsample.conv"),
                Inner::Same,
            );
        }
        // diffusers counts decoder levels from the deepest; LDM from the shallowest.
        let r = levels - 1 - i;
        for j in 0..=layers {
            vae_resnet(
                &mut m,
                format!("decoder.up_blocks.{i}.resnets.{j}"),
                format!("decoder.up.{r}.block.{j}"),
            );
        }
        if i + 1 < levels {
            m.module(
                format!("decoder.up_blocks.{i}.upsamplers.0.conv"),
                format!("decoder.up.{r}.upsample.conv"),
                Inner::Same,
            );
        }
    }
    m
}

/// A VAE ResNet: only its shortcut is renamed, so it is mapped tensor by tensor.
fn vae_resnet(m: &mut KeyMap, diffusers: String, ldm: String) {
    for (d, l) in VAE_RESNET {
        m.module(format!("{diffusers}.{d}"), format!("{ldm}.{l}"), Inner::Same);
    }
    m.module(diffusers, ldm, Inner::Same);
}

/// CLIP-L: the checkpoint holds transformers' own `text_model.*` names.
pub fn clip_l() -> KeyMap {
    let mut m = KeyMap::new(CLIP_L_PREFIX);
    m.module("text_model".into(), "text_model".into(), Inner::Same);
    m
}

/// OpenCLIP ViT-bigG's text tower as transformers' `CLIPTextModelWithProjection`.
pub fn open_clip_g() -> KeyMap {
    let mut m = KeyMap::new(CLIP_G_PREFIX);
    let p = CLIP_G_PREFIX;
    m.leaves.insert(
        "text_model.embeddings.position_embedding.weight".into(),
        Source::Renamed(format!("{p}positional_embedding")),
    );
    m.leaves.insert(
        "text_projection.weight".into(),
        Source::Transposed(format!("{p}text_projection")),
    );
    m.module(
        "text_model.embeddings.token_embedding".into(),
        "token_embedding".into(),
        Inner::Same,
    );
    m.module("text_model.final_layer_norm".into(), "ln_final".into(), Inner::Same);
    m.indexed.push((
        "text_model.encoder.layers".into(),
        "transformer.resblocks".into(),
        Inner::OpenClipBlock,
    ));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdxl_unet() -> UNetConfig {
        serde_json::from_slice(crate::checkpoint::configs::SDXL_BASE.get("unet/config.json").unwrap()).unwrap()
    }

    fn renamed(s: &str) -> Option<Source> {
        Some(Source::Renamed(s.into()))
    }

    #[test]
    fn unet_blocks_follow_diffusers_single_file_conversion() {
        let m = unet(&sdxl_unet()).unwrap();
        let cases = [
            ("conv_in.weight", "input_blocks.0.0.weight"),
            (
                "down_blocks.0.resnets.1.conv1.weight",
                "input_blocks.2.0.in_layers.2.weight",
            ),
            ("down_blocks.0.downsamplers.0.conv.bias", "input_blocks.3.0.op.bias"),
            (
                "down_blocks.1.resnets.0.conv_shortcut.weight",
                "input_blocks.4.0.skip_connection.weight",
            ),
            (
                "down_blocks.1.attentions.1.transformer_blocks.1.attn2.to_k.weight",
                "input_blocks.5.1.transformer_blocks.1.attn2.to_k.weight",
            ),
            (
                "down_blocks.2.resnets.0.time_emb_proj.weight",
                "input_blocks.7.0.emb_layers.1.weight",
            ),
            ("mid_block.attentions.0.proj_in.weight", "middle_block.1.proj_in.weight"),
            ("mid_block.resnets.1.norm2.bias", "middle_block.2.out_layers.0.bias"),
            (
                "up_blocks.0.resnets.2.conv2.weight",
                "output_blocks.2.0.out_layers.3.weight",
            ),
            ("up_blocks.0.upsamplers.0.conv.weight", "output_blocks.2.2.conv.weight"),
            ("up_blocks.1.attentions.0.norm.weight", "output_blocks.3.1.norm.weight"),
            (
                "up_blocks.2.resnets.2.norm1.weight",
                "output_blocks.8.0.in_layers.0.weight",
            ),
            ("add_embedding.linear_2.weight", "label_emb.0.2.weight"),
            ("time_embedding.linear_1.bias", "time_embed.0.bias"),
            ("conv_norm_out.weight", "out.0.weight"),
        ];
        for (d, l) in cases {
            assert_eq!(m.source(d), renamed(&format!("{UNET_PREFIX}{l}")), "{d}");
        }
        assert_eq!(m.source("up_blocks.2.upsamplers.0.conv.weight"), None);
    }

    #[test]
    fn vae_levels_are_reversed_in_the_decoder_and_attention_convs_become_linears() {
        let m = vae(4, 2);
        let p = VAE_PREFIX;
        assert_eq!(
            m.source("decoder.up_blocks.0.resnets.2.conv1.weight"),
            renamed(&format!("{p}decoder.up.3.block.2.conv1.weight"))
        );
        assert_eq!(
            m.source("decoder.up_blocks.1.upsamplers.0.conv.bias"),
            renamed(&format!("{p}decoder.up.2.upsample.conv.bias"))
        );
        assert_eq!(
            m.source("encoder.down_blocks.1.resnets.0.conv_shortcut.weight"),
            renamed(&format!("{p}encoder.down.1.block.0.nin_shortcut.weight"))
        );
        assert_eq!(
            m.source("encoder.mid_block.attentions.0.to_q.weight"),
            Some(Source::ConvAsLinear(format!("{p}encoder.mid.attn_1.q.weight")))
        );
        assert_eq!(
            m.source("decoder.mid_block.attentions.0.to_out.0.bias"),
            renamed(&format!("{p}decoder.mid.attn_1.proj_out.bias"))
        );
        assert_eq!(
            m.source("decoder.mid_block.attentions.0.group_norm.weight"),
            renamed(&format!("{p}decoder.mid.attn_1.norm.weight"))
        );
        assert_eq!(
            m.source("encoder.conv_norm_out.bias"),
            renamed(&format!("{p}encoder.norm_out.bias"))
        );
    }

    #[test]
    fn open_clip_in_proj_is_split_and_the_projection_transposed() {
        let m = open_clip_g();
        let p = CLIP_G_PREFIX;
        assert_eq!(
            m.source("text_model.encoder.layers.31.self_attn.v_proj.bias"),
            Some(Source::Third {
                key: format!("{p}transformer.resblocks.31.attn.in_proj_bias"),
                index: 2
            })
        );
        assert_eq!(
            m.source("text_model.encoder.layers.3.mlp.fc2.weight"),
            renamed(&format!("{p}transformer.resblocks.3.mlp.c_proj.weight"))
        );
        assert_eq!(
            m.source("text_model.encoder.layers.0.layer_norm1.bias"),
            renamed(&format!("{p}transformer.resblocks.0.ln_1.bias"))
        );
        assert_eq!(
            m.source("text_projection.weight"),
            Some(Source::Transposed(format!("{p}text_projection")))
        );
        assert_eq!(
            m.source("text_model.embeddings.position_embedding.weight"),
            renamed(&format!("{p}positional_embedding"))
        );
        assert_eq!(
            m.source("text_model.final_layer_norm.weight"),
            renamed(&format!("{p}ln_final.weight"))
        );
        assert_eq!(
            clip_l().source("text_model.encoder.layers.0.mlp.fc1.weight"),
            renamed(&format!("{CLIP_L_PREFIX}text_model.encoder.layers.0.mlp.fc1.weight"))
        );
    }
}
