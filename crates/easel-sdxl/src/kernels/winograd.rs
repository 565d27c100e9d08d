//! Why this exists: the 3×3 convolutions of the VAE decoder at 256² and 512² are most of
//! a CPU generation's time. Winograd's minimal filtering F(2×2, 3×3) computes each 2×2
//! output tile from a 4×4 input tile with 16 multiplications per channel pair instead of
//! 36: the input tiles and the weights are transformed (`V = Bᵀ d B`, `U = G g Gᵀ`), the
//! 16 transformed positions become 16 GEMMs over channels (`M = U · V`), and each output
//! tile is `Aᵀ M A`. Its transforms only add, subtract and halve, so f32 results stay
//! within about 1e-6 of direct convolution.
//!
//! Tiles are processed in bands sized so one band's transformed input and output stay in
//! cache; bands run in parallel.

use gemm::Parallelism;
use rayon::prelude::*;

use super::SendPtr;

/// Transformed-input bytes per band we aim for (16 positions × channels × tiles × 4).
const BAND_BYTES: usize = 4 << 20;

/// `U[ξ][co][ci] = (G g Gᵀ)[ξ]` for every (co, ci); w: [cout, cin, 3, 3].
fn transform_weights(w: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    let mut u = vec![0f32; 16 * cout * cin];
    let dst = SendPtr(u.as_mut_ptr());
    (0..cout).into_par_iter().for_each(|co| {
        for ci in 0..cin {
            let g = &w[(co * cin + ci) * 9..(co * cin + ci) * 9 + 9];
            // a = G g (4×3), then u = a Gᵀ (4×4).
            let mut a = [[0f32; 3]; 4];
            for c in 0..3 {
                let (g0, g1, g2) = (g[c], g[3 + c], g[6 + c]);
                a[0][c] = g0;
                a[1][c] = 0.5 * (g0 + g1 + g2);
                a[2][c] = 0.5 * (g0 - g1 + g2);
                a[3][c] = g2;
            }
            for (r, row) in a.iter().enumerate() {
                let [p0, p1, p2] = *row;
                let vals = [p0, 0.5 * (p0 + p1 + p2), 0.5 * (p0 - p1 + p2), p2];
                for (c, v) in vals.into_iter().enumerate() {
                    // SAFETY: each co writes only its own (co, ·) entries of every position.
                    unsafe { *dst.at(((r * 4 + c) * cout + co) * cin + ci) = v };
                }
            }
        }
    });
    u
}

/// 3×3, stride 1, padding 1. x: [b, cin, h, w]; w: [cout, cin, 3, 3]; returns [b, cout, h, w].
#[allow(clippy::too_many_arguments)]
pub fn conv3x3(x: &[f32], w: &[f32], bias: &[f32], b: usize, cin: usize, cout: usize, h: usize, wd: usize) -> Vec<f32> {
    let (th, tw) = (h.div_ceil(2), wd.div_ceil(2));
    // Padded input: one zero row/column before, enough after for whole tiles.
    let (ph, pw) = (2 * th + 2, 2 * tw + 2);
    let plane = ph * pw;
    let u = transform_weights(w, cout, cin);
    let mut out = vec![0f32; b * cout * h * wd];
    let dst = SendPtr(out.as_mut_ptr());
    let tiles = th * tw;
    let threads = super::threads();
    let per_band = (BAND_BYTES / (64 * cin.max(cout)))
        .clamp(16, 2048)
        .min(tiles.div_ceil(2 * threads).max(16));
    let bands = tiles.div_ceil(per_band);
    let mut padded = vec![0f32; cin * plane];
    for bi in 0..b {
        let xb = &x[bi * cin * h * wd..(bi + 1) * cin * h * wd];
        padded.par_chunks_mut(plane).zip(xb.par_chunks(h * wd)).for_each(|(p, c)| {
            for (r, row) in c.chunks(wd).enumerate() {
                let at = (r + 1) * pw + 1;
                p[at..at + wd].copy_from_slice(row);
            }
        });
        let (padded, u) = (&padded, &u);
        (0..bands)
            .into_par_iter()
            .for_each_init(Default::default, |bufs: &mut (Vec<f32>, Vec<f32>), band| {
                let t0 = band * per_band;
                let n = per_band.min(tiles - t0);
                let (v, m) = bufs;
                v.resize(16 * cin * n, 0.0);
                m.resize(16 * cout * n, 0.0);
                for ci in 0..cin {
                    let p = &padded[ci * plane..(ci + 1) * plane];
                    super::simd!(input_tiles(p, pw, tw, t0, n, &mut v[..], ci * n, cin * n));
                }
                for xi in 0..16 {
                    // SAFETY: M[ξ] (cout × n) = U[ξ] (cout × cin) · V[ξ] (cin × n), all row-major.
                    unsafe {
                        gemm::gemm(
                            cout,
                            n,
                            cin,
                            m.as_mut_ptr().add(xi * cout * n),
                            1,
                            n as isize,
                            false,
                            u.as_ptr().add(xi * cout * cin),
                            1,
                            cin as isize,
                            v.as_ptr().add(xi * cin * n),
                            1,
                            n as isize,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            Parallelism::None,
                        );
                    }
                }
                for co in 0..cout {
                    let base = (bi * cout + co) * h * wd;
                    super::simd!(output_tiles(&m[..], co * n, cout * n, n, t0, tw, h, wd, bias[co], dst, base));
                }
            });
    }
    out
}

/// V[ξ][ci][t] for tiles t0..t0+n of one channel's padded plane `p`.
#[inline(always)]
fn input_tiles(p: &[f32], pw: usize, tw: usize, t0: usize, n: usize, v: &mut [f32], at: usize, stride: usize) {
    for t in 0..n {
        let (ty, tx) = ((t0 + t) / tw, (t0 + t) % tw);
        let o = 2 * ty * pw + 2 * tx;
        let row = |r: usize| -> [f32; 4] {
            let s = &p[o + r * pw..o + r * pw + 4];
            [s[0], s[1], s[2], s[3]]
        };
        let (d0, d1, d2, d3) = (row(0), row(1), row(2), row(3));
        // Bᵀ d: row combinations.
        let mut q = [[0f32; 4]; 4];
        for c in 0..4 {
            q[0][c] = d0[c] - d2[c];
            q[1][c] = d1[c] + d2[c];
            q[2][c] = d2[c] - d1[c];
            q[3][c] = d1[c] - d3[c];
        }
        // (Bᵀ d) B: column combinations.
        for (r, row) in q.iter().enumerate() {
            let vals = [row[0] - row[2], row[1] + row[2], row[2] - row[1], row[1] - row[3]];
            for (c, val) in vals.into_iter().enumerate() {
                v[(r * 4 + c) * stride + at + t] = val;
            }
        }
    }
}

/// Output tiles `Aᵀ M A` + bias of one output channel, written where they fall inside h × w.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn output_tiles(
    m: &[f32],
    at: usize,
    stride: usize,
    n: usize,
    t0: usize,
    tw: usize,
    h: usize,
    wd: usize,
    bias: f32,
    dst: SendPtr,
    base: usize,
) {
    for t in 0..n {
        let g = |xi: usize| m[xi * stride + at + t];
        // Aᵀ M: two row combinations of the 4×4 tile.
        let mut s = [[0f32; 4]; 2];
        for c in 0..4 {
            s[0][c] = g(c) + g(4 + c) + g(8 + c);
            s[1][c] = g(4 + c) - g(8 + c) - g(12 + c);
        }
        let (ty, tx) = ((t0 + t) / tw, (t0 + t) % tw);
        for (r, row) in s.iter().enumerate() {
            let y = 2 * ty + r;
            if y >= h {
                break;
            }
            let vals = [row[0] + row[1] + row[2] + bias, row[1] - row[2] - row[3] + bias];
            for (c, val) in vals.into_iter().enumerate() {
                let xcol = 2 * tx + c;
                if xcol < wd {
                    // SAFETY: each tile of each output channel is written by one band only.
                    unsafe { *dst.at(base + y * wd + xcol) = val };
                }
            }
        }
    }
}
