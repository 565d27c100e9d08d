//! Why this exists: candle runs a convolution as im2col + matmul, and the column matrix of
//! a 3×3 convolution is nine times its input (1.2 GB for one 128-channel 512×512 VAE
//! layer). This kernel never builds it. The input is copied once into a zero-padded
//! buffer whose rows are W+2 wide; in that layout each of the nine kernel taps is the same
//! matrix shifted by a constant offset, so the convolution is nine GEMMs that accumulate
//! into the output (`out[co, p] += W[co, ci, ky, kx] · xpad[ci, p + ky·(W+2) + kx]`). The
//! output is computed W+2 wide in bands of rows (two junk columns per row, dropped when a
//! band is copied out), so each band stays in cache across its nine GEMMs.
//!
//! Layers with at least [`WINOGRAD_MIN_CHANNELS`] channels in and out (all but the first
//! and last convolution of the UNet and the VAE) use Winograd's F(2×2, 3×3) instead (see
//! `winograd.rs`): 4 multiplications per output instead of 9.
//!
//! Handles stride 1 with "same" padding for 1×1 and 3×3 kernels (every convolution of the
//! SDXL UNet and VAE decoder but the three downsamplers); `supported` says which.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use super::padded::{fill_padded, Pre};
use super::{contiguous, Operand, SendPtr};

/// Whether `conv2d` handles this kernel size, stride and padding.
pub fn supported(kernel: usize, stride: usize, padding: usize) -> bool {
    stride == 1 && ((kernel == 3 && padding == 1) || (kernel == 1 && padding == 0))
}

/// Below this many input or output channels a 3×3 layer runs as shifted GEMMs: the
/// Winograd transforms would cost more than the multiplications they save.
pub const WINOGRAD_MIN_CHANNELS: usize = 32;

/// x: [B, Cin, H, W]; w: [Cout, Cin, k, k]; bias: [Cout]. Only for `supported` shapes.
pub fn conv2d(x: &Tensor, w: &Tensor, bias: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op3_no_bwd(
        &w.contiguous()?,
        &bias.contiguous()?,
        &ConvOp {
            winograd: true,
            up: false,
            norm_silu: None,
            residual: None,
        },
    )
}

/// `conv2d(x) + residual` for a 1×1 kernel (a ResNet block's shortcut and its sum): the
/// output starts as residual + bias and the GEMM accumulates onto it, so the shortcut's
/// own output never exists. residual: [B, Cout, H, W].
pub fn conv1x1_add(x: &Tensor, w: &Tensor, bias: &Tensor, residual: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op3_no_bwd(
        &w.contiguous()?,
        &bias.contiguous()?,
        &ConvOp {
            winograd: false,
            up: false,
            norm_silu: None,
            residual: Some(residual.contiguous()?),
        },
    )
}

/// `conv2d(upsample_nearest_2x(x))` for a 3×3 kernel, without materialising the upsampled input.
pub fn conv2d_upsampled(x: &Tensor, w: &Tensor, bias: &Tensor, winograd: bool) -> Result<Tensor> {
    x.contiguous()?.apply_op3_no_bwd(
        &w.contiguous()?,
        &bias.contiguous()?,
        &ConvOp {
            winograd,
            up: true,
            norm_silu: None,
            residual: None,
        },
    )
}

/// `conv2d(silu(group_norm(x)))` for a 3×3 kernel: the normalisation is applied while the
/// input is copied into the padded buffer, so the normalised tensor never exists.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_after_norm_silu(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    groups: usize,
    eps: f64,
    w: &Tensor,
    bias: &Tensor,
    winograd: bool,
) -> Result<Tensor> {
    let coef = super::group_norm::coefficients(x, gamma, beta, groups, eps)?;
    let op = ConvOp {
        winograd,
        up: false,
        norm_silu: Some(coef),
        residual: None,
    };
    x.contiguous()?
        .apply_op3_no_bwd(&w.contiguous()?, &bias.contiguous()?, &op)
}

/// As [`conv2d`] but always as shifted GEMMs, never Winograd (for tests and comparisons).
#[cfg(test)]
pub fn conv2d_direct(x: &Tensor, w: &Tensor, bias: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op3_no_bwd(
        &w.contiguous()?,
        &bias.contiguous()?,
        &ConvOp {
            winograd: false,
            up: false,
            norm_silu: None,
            residual: None,
        },
    )
}

struct ConvOp {
    winograd: bool,
    /// Upsample the input 2× (nearest) first, as diffusers' `Upsample2D` does.
    up: bool,
    /// GroupNorm + SiLU applied to the input first, as per-(batch, channel) `(scale, shift)`.
    norm_silu: Option<Vec<f32>>,
    /// Added to the output (1×1 only): [B, Cout, H, W], see [`conv1x1_add`].
    residual: Option<Tensor>,
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        "easel-conv2d"
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
        let (x, w, bias) = (
            contiguous(s1, l1, "conv2d")?,
            contiguous(s2, l2, "conv2d")?,
            contiguous(s3, l3, "conv2d")?,
        );
        let (b, cin, h, wd) = l1.shape().dims4()?;
        let (cout, cin_w, kh, kw) = l2.shape().dims4()?;
        let fused = self.up || self.norm_silu.is_some();
        if cin != cin_w || kh != kw || !supported(kh, 1, kh / 2) || bias.len() != cout || (fused && kh != 3) {
            candle_core::bail!("conv2d: unsupported shapes {:?} * {:?}", l1.dims(), l2.dims());
        }
        let residual_ok = self
            .residual
            .as_ref()
            .is_none_or(|r| kh == 1 && r.dims() == [b, cout, h, wd]);
        if !residual_ok {
            candle_core::bail!(
                "conv2d: the residual does not match the output of {:?} * {:?}",
                l1.dims(),
                l2.dims()
            );
        }
        let (h, wd) = if self.up { (2 * h, 2 * wd) } else { (h, wd) };
        if self.norm_silu.as_ref().is_some_and(|c| c.len() != 2 * b * cin) {
            candle_core::bail!("conv2d: normalisation coefficients do not match the input");
        }
        let pre = Pre {
            up: self.up,
            norm_silu: self.norm_silu.as_deref(),
        };
        let out = if kh == 1 {
            match &self.residual {
                Some(r) => {
                    let (storage, layout) = r.storage_and_layout();
                    let candle_core::Storage::Cpu(r) = &*storage else {
                        candle_core::bail!("conv2d: the residual is not on the CPU");
                    };
                    let r = contiguous(r, layout, "conv2d")?;
                    pointwise(x, w, bias, Some(r), b, cin, cout, h * wd)
                }
                None => pointwise(x, w, bias, None, b, cin, cout, h * wd),
            }
        } else if self.winograd && cin >= WINOGRAD_MIN_CHANNELS && cout >= WINOGRAD_MIN_CHANNELS {
            super::winograd::conv3x3(x, w, bias, b, cin, cout, h, wd, pre, super::threads())
        } else {
            three_by_three(x, w, bias, b, cin, cout, h, wd, pre)
        };
        Ok((CpuStorage::F32(out), Shape::from((b, cout, h, wd))))
    }
}

/// 1×1: out[b] = W · x[b] + bias (+ residual[b]), one GEMM per batch element.
#[allow(clippy::too_many_arguments)]
fn pointwise(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    residual: Option<&[f32]>,
    b: usize,
    cin: usize,
    cout: usize,
    hw: usize,
) -> Vec<f32> {
    let mut out = vec![0f32; b * cout * hw];
    for bi in 0..b {
        let o = &mut out[bi * cout * hw..(bi + 1) * cout * hw];
        for (co, row) in o.chunks_mut(hw).enumerate() {
            match residual {
                Some(r) => {
                    let at = (bi * cout + co) * hw;
                    row.iter_mut()
                        .zip(&r[at..at + hw])
                        .for_each(|(v, &x)| *v = x + bias[co]);
                }
                None => row.fill(bias[co]),
            }
        }
        // SAFETY: dims and strides describe the slices above.
        unsafe {
            super::gemm(
                (cout, hw, cin),
                o.as_mut_ptr(),
                hw,
                true,
                Operand(w.as_ptr(), cin as isize, 1),
                Operand(x[bi * cin * hw..].as_ptr(), hw as isize, 1),
                1.0,
                super::all_threads(),
            );
        }
    }
    out
}

/// 3×3, stride 1, padding 1, as nine shifted GEMMs over a padded copy (see the module doc).
#[allow(clippy::too_many_arguments)]
fn three_by_three(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    b: usize,
    cin: usize,
    cout: usize,
    h: usize,
    wd: usize,
    pre: Pre,
) -> Vec<f32> {
    let pw = wd + 2;
    // Two spare zeros per channel: the last tap of the last row reads two past the end.
    let plane = (h + 2) * pw + 2;
    let mut out = vec![0f32; b * cout * h * wd];
    let dst = SendPtr(out.as_mut_ptr());
    // Bands of output rows: about 1024 wide columns each, at least two bands per thread.
    let threads = super::threads();
    let rows_per_band = (1024 / pw).clamp(1, h.div_ceil(2 * threads).max(1));
    let bands = h.div_ceil(rows_per_band);
    let mut padded = vec![0f32; cin * plane];
    for bi in 0..b {
        fill_padded(&mut padded, plane, pw, x, bi, cin, h, wd, pre);
        let padded = &padded;
        (0..bands)
            .into_par_iter()
            .for_each_init(Vec::new, |band_buf: &mut Vec<f32>, band| {
                let r0 = band * rows_per_band;
                let rows = rows_per_band.min(h - r0);
                let n = rows * pw;
                band_buf.clear();
                band_buf.resize(cout * n, 0.0);
                for (tap, (ky, kx)) in (0..3).flat_map(|ky| (0..3).map(move |kx| (ky, kx))).enumerate() {
                    let shift = (r0 + ky) * pw + kx;
                    // SAFETY: lhs is W[:, :, ky, kx] (row stride cin·9, column stride 9); rhs
                    // rows are channels of the padded input starting at `shift`, n columns,
                    // which stay inside each channel's plane (it has two spare zeros).
                    unsafe {
                        super::gemm(
                            (cout, n, cin),
                            band_buf.as_mut_ptr(),
                            n,
                            tap > 0,
                            Operand(w.as_ptr().add(tap), (cin * 9) as isize, 9),
                            Operand(padded.as_ptr().add(shift), plane as isize, 1),
                            1.0,
                            Parallelism::None,
                        );
                    }
                }
                for co in 0..cout {
                    let src = &band_buf[co * n..(co + 1) * n];
                    for r in 0..rows {
                        let at = ((bi * cout + co) * h + r0 + r) * wd;
                        // SAFETY: bands write disjoint rows of `out`.
                        let o = unsafe { std::slice::from_raw_parts_mut(dst.at(at), wd) };
                        for (o, &v) in o.iter_mut().zip(&src[r * pw..r * pw + wd]) {
                            *o = v + bias[co];
                        }
                    }
                }
            });
    }
    out
}
