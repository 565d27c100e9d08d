//! Why this exists: the exact (erf) GELU runs on every element of the UNet's GEGLU
//! feed-forwards and of CLIP-G's MLPs, and candle computes it with a scalar erf and, for
//! GEGLU, separate ops for the split, the activation and the product. These kernels do it
//! in one vectorised pass.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{math, simd};

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `gelu(x)` (erf form) elementwise.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&Gelu)
}

/// GEGLU: for h = [.., 2n], `h[.., :n] · gelu(h[.., n:])` → [.., n].
pub fn geglu(h: &Tensor) -> Result<Tensor> {
    h.contiguous()?.apply_op1_no_bwd(&Geglu)
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "easel-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = super::contiguous(s, l, "gelu")?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(o, i)| {
            simd!(for (o, &v) in o.iter_mut().zip(i) {
                *o = math::gelu(v);
            })
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}

struct Geglu;

impl CustomOp1 for Geglu {
    fn name(&self) -> &'static str {
        "easel-geglu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let h = super::contiguous(s, l, "geglu")?;
        let dims = l.dims();
        let last = dims.last().copied().unwrap_or(0);
        if last % 2 != 0 {
            candle_core::bail!("geglu: last dimension {last} is odd");
        }
        let n = last / 2;
        let mut out = vec![0f32; h.len() / 2];
        if let Some(rows_per_task) = CHUNK.checked_div(n) {
            let rows_per_task = rows_per_task.max(1);
            out.par_chunks_mut(rows_per_task * n)
                .zip(h.par_chunks(rows_per_task * last))
                .for_each(|(o, i)| {
                    for (o, row) in o.chunks_mut(n).zip(i.chunks(last)) {
                        let (a, g) = row.split_at(n);
                        simd!(for ((o, &a), &g) in o.iter_mut().zip(a).zip(g) {
                            *o = a * math::gelu(g);
                        })
                    }
                });
        }
        let mut shape = dims.to_vec();
        if let Some(l) = shape.last_mut() {
            *l = n;
        }
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }
}
