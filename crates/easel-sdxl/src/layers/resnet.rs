//! Why this exists: diffusers' `ResnetBlock2D` (GroupNorm → SiLU → conv, twice, with an
//! optional timestep projection and a 1×1 shortcut when channels change).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::layers::Linear;

use super::{conv2d, group_norm, Conv2d, GroupNorm};

/// Shape of one ResNet block.
#[derive(Clone, Copy, Debug)]
pub struct ResnetSpec {
    pub in_channels: usize,
    pub out_channels: usize,
    /// Width of the timestep embedding, `None` in the VAE.
    pub temb_channels: Option<usize>,
    pub groups: usize,
    pub eps: f64,
    /// diffusers' `output_scale_factor` (1.0 for SDXL).
    pub output_scale: f64,
}

/// diffusers' `ResnetBlock2D` with `time_embedding_norm = "default"`.
pub struct ResnetBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_emb_proj: Option<Linear>,
    norm2: GroupNorm,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
    output_scale: f64,
}

impl ResnetBlock {
    /// Loads `norm1`, `conv1`, `time_emb_proj`, `norm2`, `conv2`, `conv_shortcut`.
    pub fn new(spec: ResnetSpec, vb: VarBuilder) -> Result<Self> {
        let (cin, cout) = (spec.in_channels, spec.out_channels);
        let time_emb_proj = match spec.temb_channels {
            Some(t) => Some(crate::layers::linear(t, cout, vb.pp("time_emb_proj"))?),
            None => None,
        };
        let shortcut = if cin != cout {
            Some(conv2d(cin, cout, 1, 1, 0, vb.pp("conv_shortcut"))?)
        } else {
            None
        };
        Ok(Self {
            norm1: group_norm(spec.groups, cin, spec.eps, vb.pp("norm1"))?,
            conv1: conv2d(cin, cout, 3, 1, 1, vb.pp("conv1"))?,
            time_emb_proj,
            norm2: group_norm(spec.groups, cout, spec.eps, vb.pp("norm2"))?,
            conv2: conv2d(cout, cout, 3, 1, 1, vb.pp("conv2"))?,
            shortcut,
            output_scale: spec.output_scale,
        })
    }

    /// `xs`: [B, C, H, W]; `temb`: [B, T] or `None`.
    pub fn forward(&self, xs: &Tensor, temb: Option<&Tensor>) -> Result<Tensor> {
        // The first conv's output is dropped as soon as the second has read it, before the
        // shortcut and the sum allocate: at the VAE's 512² levels each such tensor is
        // 128-268 MB, and this is where a decode's peak memory is.
        let h = {
            let h = self.conv1.forward_after_norm_silu(&self.norm1, xs)?;
            let h = match (&self.time_emb_proj, temb) {
                (Some(proj), Some(t)) => {
                    let t = proj.forward(&candle_nn::ops::silu(t)?)?;
                    h.broadcast_add(&t.unsqueeze(2)?.unsqueeze(3)?)?
                }
                _ => h,
            };
            self.conv2.forward_after_norm_silu(&self.norm2, &h)?
        };
        let out = match &self.shortcut {
            Some(conv) => conv.forward_add(xs, &h)?,
            None => (xs + h)?,
        };
        if self.output_scale == 1.0 {
            Ok(out)
        } else {
            out / self.output_scale
        }
    }
}
