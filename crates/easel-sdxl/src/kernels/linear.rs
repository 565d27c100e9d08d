//! Why this exists: candle runs a linear layer on [B, N, C] input as a batched matmul
//! against a broadcast, transposed weight, which on the CPU is two to three times slower
//! than one plain GEMM over all B·N rows. This is that one GEMM, with the bias written
//! into the output first so it costs no extra pass.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::Operand;

/// `x · wᵀ (+ bias)` over the last dimension of x; w: [out, in], bias: [out].
pub fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let x = x.contiguous()?;
    let w = w.contiguous()?;
    match bias {
        Some(b) => x.apply_op3_no_bwd(&w, &b.contiguous()?, &LinearOp),
        None => x.apply_op2_no_bwd(&w, &LinearOp),
    }
}

struct LinearOp;

impl LinearOp {
    fn run(&self, x: &[f32], xl: &Layout, w: &[f32], wl: &Layout, bias: Option<&[f32]>) -> Result<(CpuStorage, Shape)> {
        let dims = xl.dims();
        let (out_f, in_f) = wl.shape().dims2()?;
        let k = dims.last().copied().unwrap_or(0);
        if k != in_f || bias.is_some_and(|b| b.len() != out_f) {
            candle_core::bail!("linear: input {dims:?}, weight {:?}", wl.dims());
        }
        let rows = x.len().checked_div(k).unwrap_or(0);
        let mut out = vec![0f32; rows * out_f];
        if let Some(b) = bias {
            for row in out.chunks_mut(out_f.max(1)) {
                row.copy_from_slice(b);
            }
        }
        // SAFETY: out is rows × out_f, x is rows × k, w is out_f × k (read as its transpose).
        unsafe {
            super::gemm(
                (rows, out_f, k),
                out.as_mut_ptr(),
                out_f,
                bias.is_some(),
                Operand(x.as_ptr(), k as isize, 1),
                Operand(w.as_ptr(), 1, k as isize),
                1.0,
                super::all_threads(),
            );
        }
        let mut shape = dims.to_vec();
        if let Some(l) = shape.last_mut() {
            *l = out_f;
        }
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }
}

impl CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        "easel-linear"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        self.run(
            super::contiguous(s1, l1, "linear")?,
            l1,
            super::contiguous(s2, l2, "linear")?,
            l2,
            None,
        )
    }
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "easel-linear"
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
        let bias = super::contiguous(s3, l3, "linear")?;
        self.run(
            super::contiguous(s1, l1, "linear")?,
            l1,
            super::contiguous(s2, l2, "linear")?,
            l2,
            Some(bias),
        )
    }
}
