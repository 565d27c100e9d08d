//! Why this exists: both 3×3 convolution kernels (the shifted GEMMs of `conv.rs` and the
//! Winograd tiles of `winograd.rs`) start by copying the input into zero-padded planes,
//! optionally upsampling it or folding a GroupNorm + SiLU in on the way. That shared step
//! lives here so neither kernel depends on the other's file.

use rayon::prelude::*;

/// What happens to the input on its way into the padded buffer.
#[derive(Clone, Copy)]
pub(crate) struct Pre<'a> {
    /// Nearest 2× upsampling (x is h/2 × w/2).
    pub up: bool,
    /// `silu(scale · x + shift)` per (batch, channel): a GroupNorm + SiLU folded in.
    pub norm_silu: Option<&'a [f32]>,
}

/// Copies image `bi` of x into the zero-padded planes (`pw` wide, the data starting at
/// row 1, column 1) of a convolution whose input is h × wd, applying `pre` on the way: with
/// `up`, x is h/2 × wd/2 and is upsampled (nearest, 2×), so the upsampled tensor never
/// exists; with `norm_silu`, each value becomes silu(scale · x + shift) (the padding stays 0).
#[allow(clippy::too_many_arguments)]
pub(crate) fn fill_padded(
    padded: &mut [f32],
    plane: usize,
    pw: usize,
    x: &[f32],
    bi: usize,
    cin: usize,
    h: usize,
    wd: usize,
    pre: Pre,
) {
    let (hi, wi) = if pre.up { (h / 2, wd / 2) } else { (h, wd) };
    let xb = &x[bi * cin * hi * wi..(bi + 1) * cin * hi * wi];
    padded
        .par_chunks_mut(plane)
        .zip(xb.par_chunks(hi * wi))
        .enumerate()
        .for_each(|(ci, (p, c))| {
            let norm = pre
                .norm_silu
                .map(|k| (k[2 * (bi * cin + ci)], k[2 * (bi * cin + ci) + 1]));
            for r in 0..h {
                let at = (r + 1) * pw + 1;
                let dst = &mut p[at..at + wd];
                if pre.up {
                    let src = &c[(r / 2) * wi..(r / 2 + 1) * wi];
                    for (pair, &v) in dst.chunks_exact_mut(2).zip(src) {
                        pair[0] = v;
                        pair[1] = v;
                    }
                } else {
                    dst.copy_from_slice(&c[r * wd..(r + 1) * wd]);
                }
                if let Some((a, s)) = norm {
                    super::simd!(for v in dst.iter_mut() {
                        *v = super::math::silu(*v * a + s);
                    });
                }
            }
        });
}
