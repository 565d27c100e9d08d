//! Why this exists: the building blocks shared by the UNet and the VAE (ResNet blocks,
//! attention, transformer blocks, up/down sampling, timestep embeddings), each a plain
//! struct whose `new` loads its weights by diffusers' checkpoint keys.

pub mod attention;
pub mod embeddings;
pub mod resnet;
pub mod sampling;
pub mod transformer;

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, GroupNorm, VarBuilder};

/// A 2-D convolution with bias and "same"-style padding for odd kernels.
pub fn conv2d(cin: usize, cout: usize, kernel: usize, stride: usize, padding: usize, vb: VarBuilder) -> Result<Conv2d> {
    let cfg = Conv2dConfig {
        padding,
        stride,
        ..Default::default()
    };
    candle_nn::conv2d(cin, cout, kernel, cfg, vb)
}

/// GroupNorm by diffusers' key layout (`weight`, `bias`).
pub fn group_norm(groups: usize, channels: usize, eps: f64, vb: VarBuilder) -> Result<GroupNorm> {
    candle_nn::group_norm(groups, channels, eps, vb)
}

/// `silu(group_norm(x))`, the pre-activation used before most convolutions.
pub fn norm_silu(norm: &GroupNorm, xs: &Tensor) -> Result<Tensor> {
    candle_nn::ops::silu(&norm.forward(xs)?)
}
