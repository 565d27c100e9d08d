//! Why this exists: a single-file checkpoint has no config, so Easel uses its shipped
//! SDXL-base configs (or the ones `--config DIR` names). Before building anything, the
//! architecture those configs describe is compared with the one the file's tensor shapes
//! show — widths, depths, context and vocabulary sizes — so a file of another shape gets
//! one error listing every difference instead of a shape mismatch deep in the UNet.

use std::collections::BTreeSet;

use super::keymap::{CLIP_G_PREFIX, CLIP_L_PREFIX, UNET_PREFIX, VAE_PREFIX};
use crate::config::{ClipConfig, PerBlock, UNetConfig, VaeConfig};
use crate::header::Header;
use crate::Result;

/// The configs of the four weighted components.
#[derive(Clone, Debug)]
pub struct Configs {
    pub unet: UNetConfig,
    pub vae: VaeConfig,
    pub te1: ClipConfig,
    pub te2: ClipConfig,
}

/// Architecture numbers, as a file's shapes or a set of configs give them.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Architecture {
    pub unet_in_channels: Option<usize>,
    pub unet_width: Option<usize>,
    pub unet_deepest_width: Option<usize>,
    pub unet_input_blocks: Option<usize>,
    pub unet_transformer_blocks: Option<usize>,
    pub context_dim: Option<usize>,
    pub added_cond_dim: Option<usize>,
    pub vae_width: Option<usize>,
    pub vae_levels: Option<usize>,
    pub vae_latent_channels: Option<usize>,
    pub clip_l_width: Option<usize>,
    pub clip_l_layers: Option<usize>,
    pub clip_l_vocab: Option<usize>,
    pub clip_g_width: Option<usize>,
    pub clip_g_layers: Option<usize>,
    pub clip_g_vocab: Option<usize>,
    pub clip_g_projection: Option<usize>,
}

impl Architecture {
    /// What an SDXL single file's shapes say (fields stay `None` where a part is absent).
    pub fn from_header(h: &Header) -> Self {
        let dim = |key: &str, i: usize| h.shape(key).and_then(|s| s.get(i).copied());
        let u = |k: &str| format!("{UNET_PREFIX}{k}");
        let g = |k: &str| format!("{CLIP_G_PREFIX}{k}");
        let l = |k: &str| format!("{CLIP_L_PREFIX}text_model.{k}");
        Self {
            unet_in_channels: dim(&u("input_blocks.0.0.weight"), 1),
            unet_width: dim(&u("input_blocks.0.0.weight"), 0),
            unet_deepest_width: dim(&u("middle_block.0.in_layers.2.weight"), 0),
            unet_input_blocks: max_index(h, &u("input_blocks.")).map(|m| m + 1),
            unet_transformer_blocks: count_transformer_blocks(h),
            context_dim: first_with_suffix(h, UNET_PREFIX, "attn2.to_k.weight").and_then(|s| s.get(1).copied()),
            added_cond_dim: dim(&u("label_emb.0.0.weight"), 1),
            vae_width: dim(&format!("{VAE_PREFIX}encoder.conv_in.weight"), 0),
            vae_levels: max_index(h, &format!("{VAE_PREFIX}encoder.down.")).map(|m| m + 1),
            vae_latent_channels: dim(&format!("{VAE_PREFIX}quant_conv.weight"), 0).map(|c| c / 2),
            clip_l_width: dim(&l("embeddings.token_embedding.weight"), 1),
            clip_l_layers: max_index(h, &l("encoder.layers.")).map(|m| m + 1),
            clip_l_vocab: dim(&l("embeddings.token_embedding.weight"), 0),
            clip_g_width: dim(&g("token_embedding.weight"), 1),
            clip_g_layers: max_index(h, &g("transformer.resblocks.")).map(|m| m + 1),
            clip_g_vocab: dim(&g("token_embedding.weight"), 0),
            clip_g_projection: dim(&g("text_projection"), 1),
        }
    }

    /// What the configs describe.
    pub fn from_configs(c: &Configs) -> Result<Self> {
        let ch = &c.unet.block_out_channels;
        let n = ch.len();
        let layers = c.unet.layers_per_block.expand(n, "layers_per_block")?;
        let depth = c
            .unet
            .transformer_layers_per_block
            .expand(n, "transformer_layers_per_block")?;
        let attn_down = |i: usize| c.unet.down_block_types[i].starts_with("CrossAttn");
        let attn_up = |i: usize| c.unet.up_block_types[i].starts_with("CrossAttn");
        let down: usize = (0..n).filter(|&i| attn_down(i)).map(|i| layers[i] * depth[i]).sum();
        let up: usize = (0..n)
            .filter(|&i| attn_up(i))
            .map(|i| (layers[n - 1 - i] + 1) * depth[n - 1 - i])
            .sum();
        Ok(Self {
            unet_in_channels: Some(c.unet.in_channels),
            unet_width: ch.first().copied(),
            unet_deepest_width: ch.last().copied(),
            unet_input_blocks: Some(1 + layers.iter().sum::<usize>() + n.saturating_sub(1)),
            unet_transformer_blocks: Some(down + depth[n - 1] + up),
            context_dim: match &c.unet.cross_attention_dim {
                PerBlock::One(v) => Some(*v),
                PerBlock::Each(v) => v.first().copied(),
            },
            added_cond_dim: c.unet.projection_class_embeddings_input_dim,
            vae_width: c.vae.block_out_channels.first().copied(),
            vae_levels: Some(c.vae.block_out_channels.len()),
            vae_latent_channels: Some(c.vae.latent_channels),
            clip_l_width: Some(c.te1.hidden_size),
            clip_l_layers: Some(c.te1.num_hidden_layers),
            clip_l_vocab: Some(c.te1.vocab_size),
            clip_g_width: Some(c.te2.hidden_size),
            clip_g_layers: Some(c.te2.num_hidden_layers),
            clip_g_vocab: Some(c.te2.vocab_size),
            clip_g_projection: c.te2.projection_dim,
        })
    }

    fn fields(&self) -> [(&'static str, Option<usize>); 17] {
        [
            ("UNet input channels", self.unet_in_channels),
            ("UNet width", self.unet_width),
            ("UNet deepest width", self.unet_deepest_width),
            ("UNet input blocks", self.unet_input_blocks),
            ("UNet transformer blocks", self.unet_transformer_blocks),
            ("UNet context width", self.context_dim),
            ("UNet added-conditioning width", self.added_cond_dim),
            ("VAE width", self.vae_width),
            ("VAE levels", self.vae_levels),
            ("VAE latent channels", self.vae_latent_channels),
            ("CLIP-L width", self.clip_l_width),
            ("CLIP-L layers", self.clip_l_layers),
            ("CLIP-L vocabulary", self.clip_l_vocab),
            ("OpenCLIP-G width", self.clip_g_width),
            ("OpenCLIP-G layers", self.clip_g_layers),
            ("OpenCLIP-G vocabulary", self.clip_g_vocab),
            ("OpenCLIP-G projection", self.clip_g_projection),
        ]
    }

    /// Differences between a file (`self`) and the configs (`want`), one phrase each.
    pub fn differences(&self, want: &Architecture) -> Vec<String> {
        let mut out = vec![];
        for ((name, got), (_, expected)) in self.fields().into_iter().zip(want.fields()) {
            match (got, expected) {
                (Some(g), Some(e)) if g != e => out.push(format!("{name} {g} (config: {e})")),
                (None, Some(e)) => out.push(format!("{name} absent from the file (config: {e})")),
                _ => {}
            }
        }
        out
    }
}

/// The largest `N` among keys `{prefix}N.…`.
fn max_index(h: &Header, prefix: &str) -> Option<usize> {
    h.keys_with_prefix(prefix)
        .filter_map(|k| k[prefix.len()..].split('.').next()?.parse::<usize>().ok())
        .max()
}

/// The shape of the first key under `prefix` ending with `suffix`.
fn first_with_suffix<'a>(h: &'a Header, prefix: &'a str, suffix: &str) -> Option<&'a [usize]> {
    h.keys_with_prefix(prefix)
        .find(|k| k.ends_with(suffix))
        .and_then(|k| h.shape(k))
}

/// Distinct `…transformer_blocks.N` modules in the UNet.
fn count_transformer_blocks(h: &Header) -> Option<usize> {
    let marker = "transformer_blocks.";
    let blocks: BTreeSet<&str> = h
        .keys_with_prefix(UNET_PREFIX)
        .filter_map(|k| {
            let at = k.find(marker)? + marker.len();
            let end = at + k[at..].find('.')?;
            Some(&k[..end])
        })
        .collect();
    h.has_prefix(UNET_PREFIX).then_some(blocks.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_each_mismatch_and_each_missing_part() {
        let file = Architecture {
            unet_width: Some(16),
            vae_width: None,
            ..Default::default()
        };
        let want = Architecture {
            unet_width: Some(320),
            vae_width: Some(128),
            clip_l_layers: None,
            ..Default::default()
        };
        assert_eq!(
            file.differences(&want),
            [
                "UNet width 16 (config: 320)",
                "VAE width absent from the file (config: 128)"
            ]
        );
    }
}
