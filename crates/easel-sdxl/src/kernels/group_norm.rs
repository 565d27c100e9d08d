//! Why this exists: GroupNorm (optionally followed by SiLU) in two passes over memory
//! instead of candle's chain of separate ops: one pass for each group's mean and variance,
//! one pass that normalises, applies the per-channel scale and shift and the activation.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous, math, simd};

/// `group_norm(x) · gamma + beta`, then SiLU when `silu`. x: [B, C, ...] with C divisible
/// by `groups`; gamma, beta: [C].
pub fn group_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, groups: usize, eps: f64, silu: bool) -> Result<Tensor> {
    let op = GroupNormOp {
        groups,
        eps,
        silu,
        stats_only: false,
    };
    x.contiguous()?
        .apply_op3_no_bwd(&gamma.contiguous()?, &beta.contiguous()?, &op)
}

/// The GroupNorm as per-(batch, channel) `(scale, shift)` pairs, flattened [B·C·2]: the
/// normalised tensor is `scale · x + shift`, which a convolution can apply while reading x.
pub fn coefficients(x: &Tensor, gamma: &Tensor, beta: &Tensor, groups: usize, eps: f64) -> Result<Vec<f32>> {
    let op = GroupNormOp {
        groups,
        eps,
        silu: false,
        stats_only: true,
    };
    x.contiguous()?
        .apply_op3_no_bwd(&gamma.contiguous()?, &beta.contiguous()?, &op)?
        .flatten_all()?
        .to_vec1()
}

struct GroupNormOp {
    groups: usize,
    eps: f64,
    silu: bool,
    /// Return the per-channel `(scale, shift)` pairs [B, C, 2] instead of the output.
    stats_only: bool,
}

impl GroupNormOp {
    /// Checks the shapes; returns (batch, channels, spatial size).
    fn dims(&self, l1: &Layout, gamma: &[f32], beta: &[f32]) -> Result<(usize, usize, usize)> {
        let dims = l1.dims();
        if dims.len() < 2 {
            candle_core::bail!("group_norm: expected [B, C, ...], got {dims:?}");
        }
        let (b, c) = (dims[0], dims[1]);
        let g = self.groups;
        if g == 0 || c % g != 0 || gamma.len() != c || beta.len() != c {
            candle_core::bail!("group_norm: {c} channels, {g} groups, {} weights", gamma.len());
        }
        Ok((b, c, dims[2..].iter().product()))
    }

    /// Per (batch, channel) `(scale, shift)` such that the normalised value is `scale · x + shift`.
    fn coefficients(&self, x: &[f32], b: usize, c: usize, spatial: usize, gamma: &[f32], beta: &[f32]) -> Vec<f32> {
        let g = self.groups;
        let cg = c / g;
        let group_len = cg * spatial;
        let mut coef = vec![0f32; 2 * b * c];
        coef.par_chunks_mut(2 * cg).enumerate().for_each(|(bg, out)| {
            let start = bg * group_len;
            let (mean, var) = simd!(moments(&x[start..start + group_len]));
            let rstd = 1.0 / (var + self.eps).sqrt();
            let c0 = (bg % g) * cg;
            for (ci, pair) in out.chunks_exact_mut(2).enumerate() {
                let gm = gamma[c0 + ci] as f64;
                pair[0] = (rstd * gm) as f32;
                pair[1] = (beta[c0 + ci] as f64 - mean * rstd * gm) as f32;
            }
        });
        coef
    }
}

impl CustomOp3 for GroupNormOp {
    fn name(&self) -> &'static str {
        "easel-group-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, "group_norm")?;
        let gamma = contiguous(s2, l2, "group_norm")?;
        let beta = contiguous(s3, l3, "group_norm")?;
        let (b, c, spatial) = self.dims(l1, gamma, beta)?;
        let coef = self.coefficients(x, b, c, spatial, gamma, beta);
        if self.stats_only {
            return Ok((CpuStorage::F32(coef), Shape::from((b, c, 2))));
        }
        let mut out = vec![0f32; x.len()];
        let silu = self.silu;
        out.par_chunks_mut(spatial.max(1))
            .zip(x.par_chunks(spatial.max(1)))
            .zip(coef.par_chunks(2))
            .for_each(|((o, i), ab)| simd!(affine(i, o, ab[0], ab[1], silu)));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Mean and (biased) variance, summed in f32 lanes per block and f64 across blocks.
#[inline(always)]
fn moments(xs: &[f32]) -> (f64, f64) {
    let n = xs.len().max(1) as f64;
    let mut sum = 0f64;
    for block in xs.chunks(4096) {
        sum += lanes_sum(block, |v| v) as f64;
    }
    let mean = sum / n;
    let m = mean as f32;
    let mut sq = 0f64;
    for block in xs.chunks(4096) {
        sq += lanes_sum(block, |v| (v - m) * (v - m)) as f64;
    }
    (mean, sq / n)
}

#[inline(always)]
fn lanes_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = xs.chunks_exact(16);
    let rest = chunks.remainder();
    for ch in chunks {
        for (a, &v) in acc.iter_mut().zip(ch) {
            *a += f(v);
        }
    }
    rest.iter().map(|&v| f(v)).sum::<f32>() + acc.iter().sum::<f32>()
}

#[inline(always)]
fn affine(i: &[f32], o: &mut [f32], a: f32, b: f32, silu: bool) {
    if silu {
        for (o, &v) in o.iter_mut().zip(i) {
            *o = math::silu(v * a + b);
        }
    } else {
        for (o, &v) in o.iter_mut().zip(i) {
            *o = v * a + b;
        }
    }
}
