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
/// Writes only the data: the padding of `padded` must already be zero.
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
    let src = Source::new(x, bi, cin, h, wd, pre);
    padded.par_chunks_mut(plane).enumerate().for_each(|(ci, p)| {
        for r in 0..h {
            let at = (r + 1) * pw + 1;
            src.row(ci, r, &mut p[at..at + wd]);
        }
    });
}

/// Rows `y0 .. y0 + rows` of the padded planes of [`fill_padded`], for every channel,
/// into `band` (`rows` × `pw` per channel), padding included: a convolution that works in
/// bands of rows needs only its band's rows (plus the halo) at a time, never a padded copy
/// of the whole input. Serial: it runs inside one band's task.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fill_padded_band(
    band: &mut [f32],
    y0: usize,
    rows: usize,
    pw: usize,
    x: &[f32],
    bi: usize,
    cin: usize,
    h: usize,
    wd: usize,
    pre: Pre,
) {
    let src = Source::new(x, bi, cin, h, wd, pre);
    for (ci, p) in band.chunks_mut(rows * pw).take(cin).enumerate() {
        for (k, line) in p.chunks_mut(pw).enumerate() {
            // Padded row y holds input row y - 1; row 0 and rows past h are padding.
            match (y0 + k).checked_sub(1).filter(|&r| r < h) {
                Some(r) => {
                    line[0] = 0.0;
                    line[1 + wd..].fill(0.0);
                    src.row(ci, r, &mut line[1..1 + wd]);
                }
                None => line.fill(0.0),
            }
        }
    }
}

/// Image `bi` of the input, read row by row through `pre`.
struct Source<'a> {
    xb: &'a [f32],
    bi: usize,
    cin: usize,
    /// The stored input's height and width (half the convolution's with `up`).
    hi: usize,
    wi: usize,
    pre: Pre<'a>,
}

impl<'a> Source<'a> {
    fn new(x: &'a [f32], bi: usize, cin: usize, h: usize, wd: usize, pre: Pre<'a>) -> Self {
        let (hi, wi) = if pre.up { (h / 2, wd / 2) } else { (h, wd) };
        let xb = &x[bi * cin * hi * wi..(bi + 1) * cin * hi * wi];
        Self {
            xb,
            bi,
            cin,
            hi,
            wi,
            pre,
        }
    }

    /// Row `r` (of the convolution's input) of channel `ci` into `dst` (wd values).
    fn row(&self, ci: usize, r: usize, dst: &mut [f32]) {
        let c = &self.xb[ci * self.hi * self.wi..(ci + 1) * self.hi * self.wi];
        if self.pre.up {
            let src = &c[(r / 2) * self.wi..(r / 2 + 1) * self.wi];
            for (pair, &v) in dst.chunks_exact_mut(2).zip(src) {
                pair[0] = v;
                pair[1] = v;
            }
        } else {
            dst.copy_from_slice(&c[r * self.wi..(r + 1) * self.wi]);
        }
        if let Some(k) = self.pre.norm_silu {
            let (a, s) = (k[2 * (self.bi * self.cin + ci)], k[2 * (self.bi * self.cin + ci) + 1]);
            super::simd!(for v in dst.iter_mut() {
                *v = super::math::silu(*v * a + s);
            });
        }
    }
}
