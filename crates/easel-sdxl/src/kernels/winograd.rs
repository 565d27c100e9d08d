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

use super::padded::{fill_padded_band, Pre};
use super::{Operand, SendPtr};

/// Transformed-input bytes per band we aim for (16 positions × channels × tiles × 4).
const BAND_BYTES: usize = 4 << 20;

/// Tile rows padded at once for thin bands (see `conv3x3`): the halo adds 1/8.
const GROUP_TILE_ROWS: usize = 8;

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

/// 3×3, stride 1, padding 1. x: [b, cin, h, w] (h/2 × w/2 when `pre` upsamples; `pre` is
/// applied on the way in, see `padded::fill_padded`); w: [cout, cin, 3, 3]; returns [b, cout, h, w].
/// The work is split for `threads` threads (the kernel threads; tests pick other splits).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv3x3(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    b: usize,
    cin: usize,
    cout: usize,
    h: usize,
    wd: usize,
    pre: Pre,
    threads: usize,
) -> Vec<f32> {
    let (th, tw) = (h.div_ceil(2), wd.div_ceil(2));
    // Padded input: one zero row/column before, enough after for whole tiles. Each band
    // pads its own rows (and the two-row halo), so no padded copy of the whole input exists.
    let pw = 2 * tw + 2;
    let u = transform_weights(w, cout, cin);
    let mut out = vec![0f32; b * cout * h * wd];
    let dst = SendPtr(out.as_mut_ptr());
    let threads = threads.max(1);
    // Bands of whole tile rows: about BAND_BYTES of transformed input each, and at least
    // two bands per thread when the image allows.
    let rows_per_band = (BAND_BYTES / (64 * cin.max(cout) * tw))
        .max(1)
        .min(th.div_ceil(2 * threads).max(1));
    let bands = th.div_ceil(rows_per_band);
    // Bands of one or two tile rows (wide layers) are padded in groups of about
    // GROUP_TILE_ROWS tile rows: a group's padded rows carry a two-row halo, which such
    // bands would fill once or twice over. Groups stay many (four per thread at least), so
    // the threads stay balanced; taller bands are padded one by one.
    let per_group = if rows_per_band > 2 {
        1
    } else {
        GROUP_TILE_ROWS
            .div_ceil(rows_per_band)
            .min(bands / (4 * threads))
            .max(1)
    };
    let groups = bands.div_ceil(per_group);
    for bi in 0..b {
        let u = &u;
        (0..groups)
            .into_par_iter()
            .for_each_init(Bufs::default, |bufs: &mut Bufs, g| {
                let Bufs { pad, v, m, scratch } = bufs;
                let gy0 = g * per_group * rows_per_band;
                let gy1 = ((g + 1) * per_group * rows_per_band).min(th);
                // Padded rows 2·gy0 .. 2·gy1 + 2: each tile row reads four.
                let pad_rows = 2 * (gy1 - gy0) + 2;
                pad.resize(cin * pad_rows * pw, 0.0);
                fill_padded_band(pad, 2 * gy0, pad_rows, pw, x, bi, cin, h, wd, pre);
                for ty0 in (gy0..gy1).step_by(rows_per_band) {
                    let rows = rows_per_band.min(gy1 - ty0);
                    let n = rows * tw;
                    v.resize(16 * cin * n, 0.0);
                    m.resize(16 * cout * n, 0.0);
                    scratch.resize(4 * (tw + 1) + 2 * tw, 0.0);
                    for ci in 0..cin {
                        let p = &pad[ci * pad_rows * pw..(ci + 1) * pad_rows * pw];
                        for k in 0..rows {
                            let top = 2 * (ty0 - gy0 + k) * pw;
                            let at = ci * n + k * tw;
                            super::simd!(input_row(
                                &p[top..top + 4 * pw],
                                pw,
                                tw,
                                &mut v[..],
                                at,
                                cin * n,
                                &mut scratch[..]
                            ));
                        }
                    }
                    for xi in 0..16 {
                        // SAFETY: M[ξ] (cout × n) = U[ξ] (cout × cin) · V[ξ] (cin × n), all row-major.
                        unsafe {
                            super::gemm(
                                (cout, n, cin),
                                m.as_mut_ptr().add(xi * cout * n),
                                n,
                                false,
                                Operand(u.as_ptr().add(xi * cout * cin), cin as isize, 1),
                                Operand(v.as_ptr().add(xi * cin * n), n as isize, 1),
                                1.0,
                                Parallelism::None,
                            );
                        }
                    }
                    for (co, &bias_co) in bias.iter().enumerate() {
                        for k in 0..rows {
                            let y = 2 * (ty0 + k);
                            let at = co * n + k * tw;
                            let line = &mut scratch[..4 * tw];
                            super::simd!(output_row(&m[..], at, cout * n, tw, bias_co, line));
                            for r in 0..2.min(h - y) {
                                let o = ((bi * cout + co) * h + y + r) * wd;
                                // SAFETY: each tile row of each output channel belongs to one band.
                                let dst_row = unsafe { std::slice::from_raw_parts_mut(dst.at(o), wd) };
                                dst_row.copy_from_slice(&line[r * 2 * tw..r * 2 * tw + wd]);
                            }
                        }
                    }
                }
            });
    }
    out
}

/// Per-thread buffers: transformed input, GEMM output, and rows for the transforms.
#[derive(Default)]
struct Bufs {
    /// This group of bands' padded input rows, every channel.
    pad: Vec<f32>,
    v: Vec<f32>,
    m: Vec<f32>,
    scratch: Vec<f32>,
}

/// Transforms one row of tiles of one channel: `rows` holds the 4 padded input rows
/// (each `pw` = 2·tw + 2 wide); writes V[ξ] at `v[ξ·stride + at + tx]` for tx < tw.
#[inline(always)]
fn input_row(rows: &[f32], pw: usize, tw: usize, v: &mut [f32], at: usize, stride: usize, scratch: &mut [f32]) {
    let (r0, rest) = rows.split_at(pw);
    let (r1, rest) = rest.split_at(pw);
    let (r2, r3) = rest.split_at(pw);
    let (even, odd) = scratch[..2 * (tw + 1)].split_at_mut(tw + 1);
    for r in 0..4 {
        // Bᵀ d along the columns: one combination of the four rows, deinterleaved into
        // even and odd columns so the row combinations below read contiguous memory.
        for j in 0..=tw {
            let q = |c: usize| match r {
                0 => r0[c] - r2[c],
                1 => r1[c] + r2[c],
                2 => r2[c] - r1[c],
                _ => r1[c] - r3[c],
            };
            even[j] = q(2 * j);
            odd[j] = q(2 * j + 1);
        }
        // (Bᵀ d) B along the rows.
        let base = (r * 4) * stride + at;
        let (e0, e1) = (&even[..tw], &even[1..=tw]);
        let (o0, o1) = (&odd[..tw], &odd[1..=tw]);
        for (c, out) in [0usize, 1, 2, 3].into_iter().map(|c| (c, base + c * stride)) {
            let dst = &mut v[out..out + tw];
            match c {
                0 => dst.iter_mut().zip(e0.iter().zip(e1)).for_each(|(d, (a, b))| *d = a - b),
                1 => dst.iter_mut().zip(o0.iter().zip(e1)).for_each(|(d, (a, b))| *d = a + b),
                2 => dst.iter_mut().zip(e1.iter().zip(o0)).for_each(|(d, (a, b))| *d = a - b),
                _ => dst.iter_mut().zip(o0.iter().zip(o1)).for_each(|(d, (a, b))| *d = a - b),
            }
        }
    }
}

/// `Aᵀ M A` + bias for one row of tiles of one output channel: M[ξ] at `m[ξ·stride + at + tx]`;
/// writes the two output rows, 2·tw wide, one after the other into `line`.
#[inline(always)]
fn output_row(m: &[f32], at: usize, stride: usize, tw: usize, bias: f32, line: &mut [f32]) {
    let g = |xi: usize| &m[xi * stride + at..xi * stride + at + tw];
    let (top, bottom) = line.split_at_mut(2 * tw);
    for (r, out) in [top, bottom].into_iter().enumerate() {
        // Aᵀ M: output row 0 is tile rows 0 + 1 + 2, output row 1 is rows 1 − 2 − 3.
        let (c0, c1, c2, c3) = if r == 0 {
            (
                [g(0), g(4), g(8)],
                [g(1), g(5), g(9)],
                [g(2), g(6), g(10)],
                [g(3), g(7), g(11)],
            )
        } else {
            (
                [g(4), g(8), g(12)],
                [g(5), g(9), g(13)],
                [g(6), g(10), g(14)],
                [g(7), g(11), g(15)],
            )
        };
        let sign = if r == 0 { 1.0 } else { -1.0 };
        let out = &mut out[..2 * tw];
        for tx in 0..tw {
            let s = |c: &[&[f32]; 3]| c[0][tx] + sign * (c[1][tx] + c[2][tx]);
            let (s0, s1, s2, s3) = (s(&c0), s(&c1), s(&c2), s(&c3));
            // (Aᵀ M) A: the same two combinations along the row.
            out[2 * tx] = s0 + s1 + s2 + bias;
            out[2 * tx + 1] = s1 - s2 - s3 + bias;
        }
    }
}
