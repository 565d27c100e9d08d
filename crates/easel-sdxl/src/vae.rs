//! Why this exists: the SDXL autoencoder (diffusers' `AutoencoderKL`). Decode turns
//! latents into pixels, encode turns an init image into the latent distribution for
//! image-to-image. The latent scaling factor comes from the VAE config (0.13025 for
//! SDXL, not SD 1.5's 0.18215).
//!
//! Encoder: conv_in → down blocks (ResNets, asymmetric-pad downsample) → mid (ResNet,
//! single-head attention, ResNet) → GroupNorm/SiLU → conv_out → quant_conv → (mean,
//! logvar). Decoder: post_quant_conv → conv_in → mid → up blocks → GroupNorm/SiLU → conv_out.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::config::VaeConfig;
use crate::layers::attention::{from_tokens, to_tokens, Attention, AttentionSpec};
use crate::layers::resnet::{ResnetBlock, ResnetSpec};
use crate::layers::sampling::{Downsample, Upsample};
use crate::layers::{conv2d, group_norm, Conv2d, GroupNorm};
use crate::noise::NoiseSource;

/// diffusers' VAE normalisation epsilon.
const VAE_EPS: f64 = 1e-6;

fn resnet_spec(cin: usize, cout: usize, groups: usize) -> ResnetSpec {
    ResnetSpec {
        in_channels: cin,
        out_channels: cout,
        temb_channels: None,
        groups,
        eps: VAE_EPS,
        output_scale: 1.0,
    }
}

/// The VAE's mid-block attention: GroupNorm, one head over all pixels, residual.
struct SpatialAttention {
    norm: GroupNorm,
    attn: Attention,
}

impl SpatialAttention {
    fn new(channels: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        let spec = AttentionSpec {
            query_dim: channels,
            context_dim: None,
            heads: 1,
            head_dim: channels,
            qkv_bias: true,
        };
        Ok(Self {
            norm: group_norm(groups, channels, VAE_EPS, vb.pp("group_norm"))?,
            attn: Attention::new(spec, vb)?,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = xs.dims4()?;
        let tokens = to_tokens(&self.norm.forward(xs)?)?;
        from_tokens(&self.attn.forward(&tokens, None)?, h, w)? + xs
    }
}

/// `UNetMidBlock2D` without timestep embedding.
struct Mid {
    res0: ResnetBlock,
    attn: Option<SpatialAttention>,
    res1: ResnetBlock,
}

impl Mid {
    fn new(c: usize, groups: usize, attention: bool, vb: VarBuilder) -> Result<Self> {
        let spec = resnet_spec(c, c, groups);
        let attn = if attention {
            Some(SpatialAttention::new(c, groups, vb.pp("attentions").pp(0))?)
        } else {
            None
        };
        Ok(Self {
            res0: ResnetBlock::new(spec, vb.pp("resnets").pp(0))?,
            attn,
            res1: ResnetBlock::new(spec, vb.pp("resnets").pp(1))?,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut xs = self.res0.forward(xs, None)?;
        if let Some(a) = &self.attn {
            xs = a.forward(&xs)?;
        }
        self.res1.forward(&xs, None)
    }
}

/// A down (encoder) or up (decoder) block: ResNets and an optional resampler.
struct Level {
    resnets: Vec<ResnetBlock>,
    down: Option<Downsample>,
    up: Option<Upsample>,
}

impl Level {
    /// Takes its input by value: the level's input is dropped once its first block has
    /// read it, instead of living (up to 268 MB at 512²) until the whole level is done.
    fn forward(&self, xs: Tensor) -> Result<Tensor> {
        let mut xs = xs;
        for r in &self.resnets {
            xs = r.forward(&xs, None)?;
        }
        if let Some(d) = &self.down {
            xs = d.forward(&xs)?;
        }
        if let Some(u) = &self.up {
            xs = u.forward(&xs, None)?;
        }
        Ok(xs)
    }
}

fn resnets(cin: usize, cout: usize, n: usize, groups: usize, vb: &VarBuilder) -> Result<Vec<ResnetBlock>> {
    (0..n)
        .map(|j| {
            ResnetBlock::new(
                resnet_spec(if j == 0 { cin } else { cout }, cout, groups),
                vb.pp("resnets").pp(j),
            )
        })
        .collect()
}

struct Encoder {
    conv_in: Conv2d,
    levels: Vec<Level>,
    mid: Mid,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Encoder {
    fn new(cfg: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        let ch = &cfg.block_out_channels;
        let g = cfg.norm_num_groups;
        let mut levels = Vec::with_capacity(ch.len());
        for (i, &cout) in ch.iter().enumerate() {
            let vbi = vb.pp("down_blocks").pp(i);
            let cin = if i == 0 { ch[0] } else { ch[i - 1] };
            let down = if i + 1 < ch.len() {
                Some(Downsample::new(cout, 0, vbi.pp("downsamplers").pp(0))?)
            } else {
                None
            };
            levels.push(Level {
                resnets: resnets(cin, cout, cfg.layers_per_block, g, &vbi)?,
                down,
                up: None,
            });
        }
        let last = ch[ch.len() - 1];
        Ok(Self {
            conv_in: conv2d(cfg.in_channels, ch[0], 3, 1, 1, vb.pp("conv_in"))?,
            levels,
            mid: Mid::new(last, g, cfg.mid_block_add_attention, vb.pp("mid_block"))?,
            norm_out: group_norm(g, last, VAE_EPS, vb.pp("conv_norm_out"))?,
            conv_out: conv2d(last, 2 * cfg.latent_channels, 3, 1, 1, vb.pp("conv_out"))?,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut xs = self.conv_in.forward(xs)?;
        for l in &self.levels {
            xs = l.forward(xs)?;
        }
        let xs = self.mid.forward(&xs)?;
        self.conv_out.forward_after_norm_silu(&self.norm_out, &xs)
    }
}

struct Decoder {
    conv_in: Conv2d,
    mid: Mid,
    levels: Vec<Level>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Decoder {
    fn new(cfg: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        let ch = &cfg.block_out_channels;
        let g = cfg.norm_num_groups;
        let n = ch.len();
        let mut levels = Vec::with_capacity(n);
        let mut prev = ch[n - 1];
        for i in 0..n {
            let vbi = vb.pp("up_blocks").pp(i);
            let cout = ch[n - 1 - i];
            let up = if i + 1 < n {
                Some(Upsample::new(cout, vbi.pp("upsamplers").pp(0))?)
            } else {
                None
            };
            levels.push(Level {
                resnets: resnets(prev, cout, cfg.layers_per_block + 1, g, &vbi)?,
                down: None,
                up,
            });
            prev = cout;
        }
        Ok(Self {
            conv_in: conv2d(cfg.latent_channels, ch[n - 1], 3, 1, 1, vb.pp("conv_in"))?,
            mid: Mid::new(ch[n - 1], g, cfg.mid_block_add_attention, vb.pp("mid_block"))?,
            levels,
            norm_out: group_norm(g, ch[0], VAE_EPS, vb.pp("conv_norm_out"))?,
            conv_out: conv2d(ch[0], cfg.out_channels, 3, 1, 1, vb.pp("conv_out"))?,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut xs = self.mid.forward(&self.conv_in.forward(xs)?)?;
        for l in &self.levels {
            xs = l.forward(xs)?;
        }
        self.conv_out.forward_after_norm_silu(&self.norm_out, &xs)
    }
}

/// The latent distribution of an encoded image.
pub struct LatentDist {
    pub mean: Tensor,
    pub logvar: Tensor,
}

impl LatentDist {
    /// The same distribution for `n` batch elements (one encoded image used `n` times).
    pub fn repeat(&self, n: usize) -> Result<Self> {
        Ok(Self {
            mean: self.mean.repeat((n, 1, 1, 1))?,
            logvar: self.logvar.repeat((n, 1, 1, 1))?,
        })
    }

    /// `mean + exp(logvar / 2) · noise`, noise drawn from `noise`.
    pub fn sample(&self, noise: &mut dyn NoiseSource) -> crate::Result<Tensor> {
        let eps = noise.randn(self.mean.dims(), self.mean.device())?;
        let std = (&self.logvar * 0.5)?.exp()?;
        Ok((&self.mean + std.mul(&eps)?)?)
    }
}

/// The autoencoder.
pub struct Vae {
    encoder: Encoder,
    decoder: Decoder,
    quant_conv: Option<Conv2d>,
    post_quant_conv: Option<Conv2d>,
    cfg: VaeConfig,
    dtype: DType,
}

impl Vae {
    pub(crate) fn new(cfg: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let l2 = 2 * cfg.latent_channels;
        let l = cfg.latent_channels;
        let quant_conv = if cfg.use_quant_conv {
            Some(conv2d(l2, l2, 1, 1, 0, vb.pp("quant_conv"))?)
        } else {
            None
        };
        let post_quant_conv = if cfg.use_post_quant_conv {
            Some(conv2d(l, l, 1, 1, 0, vb.pp("post_quant_conv"))?)
        } else {
            None
        };
        Ok(Self {
            encoder: Encoder::new(cfg, vb.pp("encoder"))?,
            decoder: Decoder::new(cfg, vb.pp("decoder"))?,
            quant_conv,
            post_quant_conv,
            cfg: cfg.clone(),
            dtype: vb.dtype(),
        })
    }

    /// The config this VAE was built from.
    pub(crate) fn config(&self) -> &VaeConfig {
        &self.cfg
    }

    /// Raw decode: latents (already divided by the scaling factor) → pixels in about [-1, 1], f32.
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let mut z = z.to_dtype(self.dtype)?;
        if let Some(c) = &self.post_quant_conv {
            z = c.forward(&z)?;
        }
        self.decoder.forward(&z)?.to_dtype(DType::F32)
    }

    /// Raw encode: pixels in [-1, 1] → latent distribution (f32, unscaled).
    pub fn encode(&self, x: &Tensor) -> Result<LatentDist> {
        let mut m = self.encoder.forward(&x.to_dtype(self.dtype)?)?;
        if let Some(c) = &self.quant_conv {
            m = c.forward(&m)?;
        }
        let m = m.to_dtype(DType::F32)?;
        let parts = m.chunk(2, 1)?;
        Ok(LatentDist {
            mean: parts[0].clone(),
            logvar: parts[1].clamp(-30f32, 20f32)?,
        })
    }

    /// Latents as the UNet sees them → image tensor in [0, 1].
    pub fn latents_to_image(&self, latents: &Tensor) -> Result<Tensor> {
        let mut z = (latents / self.cfg.scaling_factor)?;
        if let Some(shift) = self.cfg.shift_factor {
            z = (z + shift)?;
        }
        let x = self.decode(&z)?;
        ((x / 2.0)? + 0.5)?.clamp(0f32, 1f32)
    }

    /// Scales sampled latents into the UNet's space.
    pub fn scale_latents(&self, z: &Tensor) -> Result<Tensor> {
        match self.cfg.shift_factor {
            Some(shift) => (z - shift)? * self.cfg.scaling_factor,
            None => z * self.cfg.scaling_factor,
        }
    }
}
