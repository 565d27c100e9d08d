//! Why this exists: the SDXL UNet (diffusers' `UNet2DConditionModel`), including SDXL's
//! `text_time` added conditioning that candle-transformers omits: the six `time_ids`
//! (original size, crop, target size) go through sinusoidal features, are concatenated
//! with the pooled text embedding, embedded by `add_embedding` and added to the
//! timestep embedding.
//!
//! Flow: conv_in → down blocks (collecting skips) → mid block → up blocks (consuming
//! skips, upsampling to each skip's size) → GroupNorm → SiLU → conv_out.

mod blocks;

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::config::UNetConfig;
use crate::layers::embeddings::{TimestepEmbedding, Timesteps};
use crate::layers::{conv2d, group_norm, Conv2d, GroupNorm};
use blocks::{Attn, Common, DownBlock, DownSpec, MidBlock, UpBlock, UpSpec};

/// SDXL's added conditioning: `add_time_proj` + `add_embedding`.
struct TextTime {
    proj: Timesteps,
    embedding: TimestepEmbedding,
}

/// The UNet.
pub struct UNet {
    conv_in: Conv2d,
    time_proj: Timesteps,
    time_embedding: TimestepEmbedding,
    text_time: Option<TextTime>,
    down: Vec<DownBlock>,
    mid: MidBlock,
    up: Vec<UpBlock>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    dtype: DType,
}

/// The conditioning of one UNet call.
pub struct UNetCond<'a> {
    /// [B, 77, cross_attention_dim].
    pub context: &'a Tensor,
    /// Pooled text embedding [B, P] (SDXL: the projected CLIP-G EOS state).
    pub text_embeds: Option<&'a Tensor>,
    /// [B, 6]: original h, w, crop top, left, target h, w.
    pub time_ids: Option<&'a Tensor>,
}

impl UNet {
    /// Builds the UNet described by `cfg` from weights under `vb` (diffusers keys).
    pub(crate) fn new(cfg: &UNetConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let ch = &cfg.block_out_channels;
        let n = ch.len();
        let temb = 4 * ch[0];
        let err = |e: crate::Error| candle_core::Error::Msg(e.to_string());
        let heads = cfg.heads().map_err(err)?;
        let layers = cfg.layers_per_block.expand(n, "layers_per_block").map_err(err)?;
        let tlayers = cfg
            .transformer_layers_per_block
            .expand(n, "transformer_layers_per_block")
            .map_err(err)?;
        let ctx = cfg.cross_attention_dim.expand(n, "cross_attention_dim").map_err(err)?;
        if ctx.iter().any(|&c| c != ctx[0]) {
            candle_core::bail!("unet: per-block cross_attention_dim values differ; unsupported");
        }
        let common = Common {
            temb,
            groups: cfg.norm_num_groups,
            eps: cfg.norm_eps,
            context_dim: ctx[0],
            linear_projection: cfg.use_linear_projection,
        };
        let time_proj = Timesteps {
            dim: ch[0],
            flip_sin_to_cos: cfg.flip_sin_to_cos,
            freq_shift: cfg.freq_shift,
        };
        let text_time = match (cfg.addition_time_embed_dim, cfg.projection_class_embeddings_input_dim) {
            (Some(d), Some(p)) if cfg.addition_embed_type.as_deref() == Some("text_time") => Some(TextTime {
                proj: Timesteps {
                    dim: d,
                    flip_sin_to_cos: cfg.flip_sin_to_cos,
                    freq_shift: cfg.freq_shift,
                },
                embedding: TimestepEmbedding::new(p, temb, vb.pp("add_embedding"))?,
            }),
            _ => None,
        };
        let attn_at = |types: &[String], i: usize, layers: usize| {
            types[i].starts_with("CrossAttn").then_some(Attn {
                heads: heads[i],
                layers,
            })
        };
        let mut down = Vec::with_capacity(n);
        for i in 0..n {
            let spec = DownSpec {
                cin: if i == 0 { ch[0] } else { ch[i - 1] },
                cout: ch[i],
                layers: layers[i],
                attn: attn_at(&cfg.down_block_types, i, tlayers[i]),
                downsample: i + 1 < n,
                downsample_padding: cfg.downsample_padding,
            };
            down.push(DownBlock::new(spec, &common, vb.pp("down_blocks").pp(i))?);
        }
        let mid_attn = Attn {
            heads: heads[n - 1],
            layers: tlayers[n - 1],
        };
        let mid = MidBlock::new(
            ch[n - 1],
            mid_attn,
            cfg.mid_block_scale_factor,
            &common,
            vb.pp("mid_block"),
        )?;
        let mut up = Vec::with_capacity(n);
        for i in 0..n {
            let r = n - 1 - i; // the level this up block mirrors
            let spec = UpSpec {
                skip_in: ch[r.saturating_sub(1)],
                prev: if i == 0 { ch[n - 1] } else { ch[r + 1] },
                cout: ch[r],
                layers: layers[r] + 1,
                attn: cfg.up_block_types[i].starts_with("CrossAttn").then_some(Attn {
                    heads: heads[r],
                    layers: tlayers[r],
                }),
                upsample: i + 1 < n,
            };
            up.push(UpBlock::new(spec, &common, vb.pp("up_blocks").pp(i))?);
        }
        Ok(Self {
            conv_in: conv2d(cfg.in_channels, ch[0], 3, 1, 1, vb.pp("conv_in"))?,
            time_proj,
            time_embedding: TimestepEmbedding::new(ch[0], temb, vb.pp("time_embedding"))?,
            text_time,
            down,
            mid,
            up,
            norm_out: group_norm(cfg.norm_num_groups, ch[0], cfg.norm_eps, vb.pp("conv_norm_out"))?,
            conv_out: conv2d(ch[0], cfg.out_channels, 3, 1, 1, vb.pp("conv_out"))?,
            dtype: vb.dtype(),
        })
    }

    /// Predicts noise for `sample` [B, C, h, w] at `timestep`.
    pub fn forward(&self, sample: &Tensor, timestep: f64, cond: &UNetCond) -> Result<Tensor> {
        let b = sample.dim(0)?;
        let temb = self.embed(b, timestep, cond, sample.device())?;
        let ctx = cond.context.to_dtype(self.dtype)?;
        let mut xs = self.conv_in.forward(&sample.to_dtype(self.dtype)?)?;
        let mut skips = vec![xs.clone()];
        for block in &self.down {
            xs = block.forward(&xs, &temb, &ctx, &mut skips)?;
        }
        xs = self.mid.forward(&xs, &temb, &ctx)?;
        for (i, block) in self.up.iter().enumerate() {
            let keep = skips.len().saturating_sub(block.skips_needed());
            let size = match (i + 1 < self.up.len(), keep.checked_sub(1).and_then(|k| skips.get(k))) {
                (true, Some(next)) => Some((next.dim(2)?, next.dim(3)?)),
                _ => None,
            };
            xs = block.forward(&xs, &mut skips, &temb, &ctx, size)?;
        }
        let xs = self.conv_out.forward_after_norm_silu(&self.norm_out, &xs)?;
        xs.to_dtype(DType::F32)
    }

    /// Timestep embedding plus SDXL's added conditioning: [B, 4·C0].
    fn embed(&self, b: usize, timestep: f64, cond: &UNetCond, dev: &candle_core::Device) -> Result<Tensor> {
        let t = Tensor::full(timestep as f32, b, dev)?;
        let t = self.time_proj.forward(&t)?.to_dtype(self.dtype)?;
        let temb = self.time_embedding.forward(&t)?;
        let Some(tt) = &self.text_time else { return Ok(temb) };
        let (Some(text), Some(ids)) = (cond.text_embeds, cond.time_ids) else {
            candle_core::bail!("this UNet uses SDXL's added conditioning: text_embeds and time_ids are required")
        };
        let time = tt.proj.forward(&ids.flatten_all()?)?.reshape((b, ()))?;
        let add = Tensor::cat(&[&text.to_dtype(DType::F32)?, &time], 1)?.to_dtype(self.dtype)?;
        temb + tt.embedding.forward(&add)?
    }
}
