//! Why this exists: the building blocks shared by the UNet and the VAE (ResNet blocks,
//! attention, transformer blocks, up/down sampling, timestep embeddings), each a plain
//! struct whose `new` loads its weights by diffusers' checkpoint keys. Convolution and
//! GroupNorm are Easel's own types so f32 on the CPU runs Easel's kernels
//! ([`crate::kernels`]) and everything else runs candle's ops.

pub mod attention;
pub mod embeddings;
pub mod resnet;
pub mod sampling;
pub mod transformer;

use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

use crate::kernels;

/// A linear layer (`weight` [out, in], optional `bias`).
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

/// A linear layer with bias.
pub fn linear(cin: usize, cout: usize, vb: VarBuilder) -> Result<Linear> {
    linear_b(cin, cout, true, vb)
}

/// A linear layer without bias.
pub fn linear_no_bias(cin: usize, cout: usize, vb: VarBuilder) -> Result<Linear> {
    linear_b(cin, cout, false, vb)
}

/// A linear layer, with bias when `bias`.
pub fn linear_b(cin: usize, cout: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    let weight = vb.get((cout, cin), "weight")?;
    let bias = if bias { Some(vb.get(cout, "bias")?) } else { None };
    Ok(Linear { weight, bias })
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if kernels::enabled() && kernels::cpu_f32(xs) {
            return kernels::linear::linear(xs, &self.weight, self.bias.as_ref());
        }
        let ys = match xs.dims() {
            [b, n, c] => xs
                .reshape((b * n, *c))?
                .matmul(&self.weight.t()?)?
                .reshape((*b, *n, ()))?,
            _ => xs.broadcast_matmul(&self.weight.t()?)?,
        };
        match &self.bias {
            Some(b) => ys.broadcast_add(b),
            None => Ok(ys),
        }
    }
}

/// A 2-D convolution with bias (every convolution in SDXL has one).
#[derive(Clone, Debug)]
pub struct Conv2d {
    weight: Tensor,
    bias: Tensor,
    cfg: Conv2dConfig,
    kernel: usize,
}

/// A 2-D convolution with bias and "same"-style padding for odd kernels.
pub fn conv2d(cin: usize, cout: usize, kernel: usize, stride: usize, padding: usize, vb: VarBuilder) -> Result<Conv2d> {
    let weight = vb.get((cout, cin, kernel, kernel), "weight")?;
    let bias = vb.get(cout, "bias")?;
    let cfg = Conv2dConfig {
        padding,
        stride,
        ..Default::default()
    };
    Ok(Conv2d {
        weight,
        bias,
        cfg,
        kernel,
    })
}

impl Module for Conv2d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if kernels::enabled()
            && kernels::cpu_f32(xs)
            && kernels::conv::supported(self.kernel, self.cfg.stride, self.cfg.padding)
        {
            return kernels::conv::conv2d(xs, &self.weight, &self.bias);
        }
        let (b, cin, _, w) = xs.dims4()?;
        // candle's GPU convolution builds an im2col matrix of the whole input (4.8 GB in
        // bf16 for the VAE's 256-channel layer at 1024²): above a budget, convolve bands of rows.
        let col_row_bytes = b * w * cin * self.kernel * self.kernel * xs.dtype().size_in_bytes();
        let ys = if self.kernel == 3
            && self.cfg.stride == 1
            && self.cfg.padding == 1
            && xs.dim(2)? * col_row_bytes > IM2COL_BUDGET
        {
            conv3x3_in_bands(xs, &self.weight, (IM2COL_BUDGET / col_row_bytes.max(1)).max(1))?
        } else {
            xs.conv2d(&self.weight, self.cfg.padding, self.cfg.stride, 1, 1)?
        };
        ys.broadcast_add(&self.bias.reshape((1, (), 1, 1))?)
    }
}

/// Largest im2col matrix candle's own convolution may build at once (bytes).
const IM2COL_BUDGET: usize = 512 << 20;

/// A 3×3, stride-1, padding-1 convolution (no bias) computed `band_rows` output rows at a
/// time from a zero-padded copy, so candle's im2col matrix never covers the whole image.
/// Exact: every band sees its one-row halo.
pub fn conv3x3_in_bands(xs: &Tensor, weight: &Tensor, band_rows: usize) -> Result<Tensor> {
    let h = xs.dim(2)?;
    let padded = xs.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
    let band_rows = band_rows.max(1);
    let mut bands = Vec::with_capacity(h.div_ceil(band_rows));
    for r0 in (0..h).step_by(band_rows) {
        let rows = band_rows.min(h - r0);
        bands.push(padded.narrow(2, r0, rows + 2)?.conv2d(weight, 0, 1, 1, 1)?);
    }
    Tensor::cat(&bands, 2)
}

impl Conv2d {
    /// `forward(upsample_nearest(xs, 2×))`; on the CPU in f32 the upsampled input is
    /// never materialised (for 512² VAE output it would be 268 MB).
    pub fn forward_upsampled(&self, xs: &Tensor) -> Result<Tensor> {
        if kernels::enabled()
            && kernels::cpu_f32(xs)
            && self.kernel == 3
            && self.cfg.stride == 1
            && self.cfg.padding == 1
        {
            return kernels::conv::conv2d_upsampled(xs, &self.weight, &self.bias, true);
        }
        let (_, _, h, w) = xs.dims4()?;
        self.forward(&xs.upsample_nearest2d(2 * h, 2 * w)?)
    }
}

impl Conv2d {
    /// `self.forward(xs) + residual`; a 1×1 layer on the CPU writes the sum in one pass.
    pub fn forward_add(&self, xs: &Tensor, residual: &Tensor) -> Result<Tensor> {
        if kernels::enabled()
            && kernels::cpu_f32(xs)
            && kernels::cpu_f32(residual)
            && self.kernel == 1
            && self.cfg.stride == 1
            && self.cfg.padding == 0
        {
            return kernels::conv::conv1x1_add(xs, &self.weight, &self.bias, residual);
        }
        self.forward(xs)? + residual
    }

    /// `forward(silu(norm(xs)))`; on the CPU in f32 the normalisation is applied while the
    /// convolution reads its input, so the normalised tensor never exists.
    pub fn forward_after_norm_silu(&self, norm: &GroupNorm, xs: &Tensor) -> Result<Tensor> {
        if kernels::enabled()
            && kernels::cpu_f32(xs)
            && self.kernel == 3
            && self.cfg.stride == 1
            && self.cfg.padding == 1
        {
            return kernels::conv::conv2d_after_norm_silu(
                xs,
                &norm.weight,
                &norm.bias,
                norm.groups,
                norm.eps,
                &self.weight,
                &self.bias,
                true,
            );
        }
        self.forward(&norm_silu(norm, xs)?)
    }
}

/// GroupNorm by diffusers' key layout (`weight`, `bias`).
#[derive(Clone, Debug)]
pub struct GroupNorm {
    inner: candle_nn::GroupNorm,
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    eps: f64,
}

pub fn group_norm(groups: usize, channels: usize, eps: f64, vb: VarBuilder) -> Result<GroupNorm> {
    let weight = vb.get(channels, "weight")?;
    let bias = vb.get(channels, "bias")?;
    let inner = candle_nn::GroupNorm::new(weight.clone(), bias.clone(), channels, groups, eps)?;
    Ok(GroupNorm {
        inner,
        weight,
        bias,
        groups,
        eps,
    })
}

impl GroupNorm {
    fn run(&self, xs: &Tensor, silu: bool) -> Result<Tensor> {
        if kernels::enabled() && kernels::cpu_f32(xs) {
            return kernels::group_norm::group_norm(xs, &self.weight, &self.bias, self.groups, self.eps, silu);
        }
        let ys = self.inner.forward(xs)?;
        if silu {
            candle_nn::ops::silu(&ys)
        } else {
            Ok(ys)
        }
    }
}

impl Module for GroupNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.run(xs, false)
    }
}

/// `silu(group_norm(x))`, the pre-activation used before most convolutions.
pub fn norm_silu(norm: &GroupNorm, xs: &Tensor) -> Result<Tensor> {
    norm.run(xs, true)
}
