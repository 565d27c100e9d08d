//! Why this exists: GroupNorm (optionally followed by SiLU) in two passes over memory
//! instead of candle's chain of separate ops: one pass for each group's mean and variance,
//! one pass that normalises, applies the per-channel scale and shift and the activation.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{math, simd, SendPtr};

/// `group_norm(x) · gamma + beta`, then SiLU when `silu`. x: [B, C, ...] with C divisible
/// by `groups`; gamma, beta: [C].
pub fn group_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, groups: usize, eps: f64, silu: bool) -> Result<Tensor> {
    let x = x.contiguous()?;
    x.apply_op3_no_bwd(
        &gamma.contiguous()?,
        &beta.contiguous()?,
        &GroupNormOp { groups, eps, silu },
    )
}

struct GroupNormOp {
    groups: usize,
    eps: f64,
    silu: bool,
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let all = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&all[a..b]),
        None => candle_core::bail!("group_norm: {what} must be contiguous"),
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
        let x = slice(s1, l1, "input")?;
        let gamma = slice(s2, l2, "weight")?;
        let beta = slice(s3, l3, "bias")?;
        let dims = l1.dims();
        if dims.len() < 2 {
            candle_core::bail!("group_norm: expected [B, C, ...], got {dims:?}");
        }
        let (b, c) = (dims[0], dims[1]);
        let g = self.groups;
        if g == 0 || c % g != 0 || gamma.len() != c || beta.len() != c {
            candle_core::bail!("group_norm: {c} channels, {g} groups, {} weights", gamma.len());
        }
        let spatial: usize = dims[2..].iter().product();
        let group_len = (c / g) * spatial;
        let mut out = vec![0f32; x.len()];
        let dst = SendPtr(out.as_mut_ptr());
        let (eps, silu) = (self.eps, self.silu);
        (0..b * g).into_par_iter().for_each(|bg| {
            let start = bg * group_len;
            let xs = &x[start..start + group_len];
            let (mean, var) = simd!(moments(xs));
            let rstd = 1.0 / (var + eps).sqrt();
            let c0 = (bg % g) * (c / g);
            for ci in 0..c / g {
                let a = (rstd * gamma[c0 + ci] as f64) as f32;
                let sh = (beta[c0 + ci] as f64 - mean * rstd * gamma[c0 + ci] as f64) as f32;
                let off = start + ci * spatial;
                // SAFETY: each (batch, group) writes only its own range of `out`.
                let o = unsafe { std::slice::from_raw_parts_mut(dst.at(off), spatial) };
                let i = &x[off..off + spatial];
                simd!(affine(i, o, a, sh, silu));
            }
        });
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
