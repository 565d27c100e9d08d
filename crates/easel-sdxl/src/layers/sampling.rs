//! Why this exists: diffusers' `Downsample2D` and `Upsample2D`. The UNet downsamples
//! with a padded stride-2 conv; the VAE encoder pads right/bottom by one and uses no
//! conv padding. Upsampling is nearest-neighbour to an explicit size, so latents whose
//! sides are not multiples of 2^levels still line up with their skip connections
//! (diffusers' `upsample_size`).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::{conv2d, Conv2d};

/// Stride-2 3×3 convolution (`downsamplers.0.conv`).
pub struct Downsample {
    conv: Conv2d,
    /// VAE style: pad (0, 1, 0, 1) with zeros, conv padding 0.
    asymmetric_pad: bool,
}

impl Downsample {
    /// `padding` is diffusers' `downsample_padding` (1 in the UNet, 0 in the VAE).
    pub fn new(channels: usize, padding: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: conv2d(channels, channels, 3, 2, padding, vb.pp("conv"))?,
            asymmetric_pad: padding == 0,
        })
    }

    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if self.asymmetric_pad {
            let xs = xs.pad_with_zeros(2, 0, 1)?.pad_with_zeros(3, 0, 1)?;
            self.conv.forward(&xs)
        } else {
            self.conv.forward(xs)
        }
    }
}

/// Nearest-neighbour upsampling followed by a 3×3 conv (`upsamplers.0.conv`).
pub struct Upsample {
    conv: Conv2d,
}

impl Upsample {
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: conv2d(channels, channels, 3, 1, 1, vb.pp("conv"))?,
        })
    }

    /// Upsamples to `size` (h, w), or doubles when `None`.
    pub fn forward(&self, xs: &Tensor, size: Option<(usize, usize)>) -> Result<Tensor> {
        let (_, _, h, w) = xs.dims4()?;
        let (th, tw) = size.unwrap_or((2 * h, 2 * w));
        if (th, tw) == (2 * h, 2 * w) {
            return self.conv.forward_upsampled(xs);
        }
        let xs = xs.upsample_nearest2d(th, tw)?;
        self.conv.forward(&xs)
    }
}
