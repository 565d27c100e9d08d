//! Why this exists: attention as one kernel reading q, k and v in the token layout the
//! projections produce ([B, N, heads·D]): no head split/merge copies, no full score
//! tensor, softmax with a vectorised exp. Each task takes a block of query rows of one
//! head: scores = q·kᵀ·scale (GEMM into a per-thread buffer), exp(s − max) in place,
//! out = p·v (GEMM straight into the output), then each row is divided by its sum.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use super::{contiguous, math, simd, Operand, SendPtr};

/// Score elements per task (a 256 KB buffer): query rows per task = this / keys,
/// between 64 and 256. Few large GEMMs beat many small ones until the buffer leaves cache.
const SCORES_PER_TASK: usize = 1 << 16;

/// `softmax(q kᵀ · scale) v` per head. q: [B, N, H·D], k and v: [B, M, H·D]; returns [B, N, H·D].
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, scale: f64) -> Result<Tensor> {
    q.contiguous()?.apply_op3_no_bwd(
        &k.contiguous()?,
        &v.contiguous()?,
        &AttentionOp {
            heads,
            scale: scale as f32,
        },
    )
}

struct AttentionOp {
    heads: usize,
    scale: f32,
}

impl CustomOp3 for AttentionOp {
    fn name(&self) -> &'static str {
        "easel-attention"
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
        let (q, k, v) = (
            contiguous(s1, l1, "attention")?,
            contiguous(s2, l2, "attention")?,
            contiguous(s3, l3, "attention")?,
        );
        let (b, n, c) = l1.shape().dims3()?;
        let (bk, m, ck) = l2.shape().dims3()?;
        if bk != b || ck != c || l3.dims() != l2.dims() || self.heads == 0 || c % self.heads != 0 {
            candle_core::bail!(
                "attention: q {:?}, k {:?}, v {:?}, {} heads",
                l1.dims(),
                l2.dims(),
                l3.dims(),
                self.heads
            );
        }
        let (h, d) = (self.heads, c / self.heads);
        let mut out = vec![0f32; b * n * c];
        let dst = SendPtr(out.as_mut_ptr());
        let threads = super::threads();
        let mut block = (SCORES_PER_TASK / m.max(1)).clamp(64, 256).min(n.max(1));
        while block > 16 && b * h * n.div_ceil(block) < 2 * threads {
            block /= 2;
        }
        let blocks = n.div_ceil(block);
        let scale = self.scale;
        (0..b * h * blocks).into_par_iter().for_each_init(
            Default::default,
            |(scores, sums): &mut (Vec<f32>, Vec<f32>), task| {
                let (bh, blk) = (task / blocks, task % blocks);
                let (bi, hi) = (bh / h, bh % h);
                let r0 = blk * block;
                let rows = block.min(n - r0);
                scores.clear();
                scores.resize(rows * m, 0.0);
                let qp = q[(bi * n + r0) * c + hi * d..].as_ptr();
                let kp = k[bi * m * c + hi * d..].as_ptr();
                let vp = v[bi * m * c + hi * d..].as_ptr();
                // SAFETY: the strides walk rows of one head inside q, k, v; `scores` is rows×m.
                unsafe {
                    super::gemm(
                        (rows, m, d),
                        scores.as_mut_ptr(),
                        m,
                        false,
                        Operand(qp, c as isize, 1),
                        Operand(kp, 1, c as isize),
                        scale,
                        Parallelism::None,
                    );
                }
                sums.clear();
                sums.resize(rows, 0.0);
                for (row, s) in scores.chunks_mut(m).zip(sums.iter_mut()) {
                    *s = simd!(exp_shifted(row));
                }
                let op = dst.at((bi * n + r0) * c + hi * d);
                // SAFETY: this task owns rows r0..r0+rows of head hi in the output.
                unsafe {
                    super::gemm(
                        (rows, d, m),
                        op,
                        c,
                        false,
                        Operand(scores.as_ptr(), m as isize, 1),
                        Operand(vp, c as isize, 1),
                        1.0,
                        Parallelism::None,
                    );
                }
                for (r, &s) in sums.iter().enumerate() {
                    let inv = 1.0 / s;
                    // SAFETY: as above, one row of this head.
                    let o = unsafe { std::slice::from_raw_parts_mut(op.add(r * c), d) };
                    for x in o {
                        *x *= inv;
                    }
                }
            },
        );
        Ok((CpuStorage::F32(out), Shape::from((b, n, c))))
    }
}

/// Replaces each score by exp(score − max) and returns their sum.
#[inline(always)]
fn exp_shifted(row: &mut [f32]) -> f32 {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let mut sum = 0f32;
    let mut acc = [0f32; 8];
    let mut chunks = row.chunks_exact_mut(8);
    for ch in &mut chunks {
        for (a, x) in acc.iter_mut().zip(ch.iter_mut()) {
            *x = math::exp(*x - max);
            *a += *x;
        }
    }
    for x in chunks.into_remainder() {
        *x = math::exp(*x - max);
        sum += *x;
    }
    sum + acc.iter().sum::<f32>()
}
