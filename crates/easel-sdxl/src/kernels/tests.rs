//! Why this exists: Easel's CPU kernels must agree with candle's own ops on the same random
//! inputs — shapes that are not multiples of any block size, batches, one and many heads,
//! large magnitudes — or the images drift; on every instruction set the CPU has.

use crate::kernels;
use candle_core::{DType, Device, Result, Tensor, D};

fn randn(shape: &[usize], scale: f64, seed: u64) -> Result<Tensor> {
    // A fixed pseudo-random sequence (LCG → Box-Muller) so failures reproduce.
    let n: usize = shape.iter().product();
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let v: Vec<f32> = (0..n)
        .map(|_| {
            let (u1, u2) = (next(), next());
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * scale) as f32
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
}

/// Runs `check` once on every instruction set this CPU has (AVX-512, AVX2, baseline), with
/// the process's kernels forced to it; checks that force the ISA run one at a time.
fn each_isa(check: fn() -> Result<()>) -> Result<()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for isa in kernels::isa::available() {
        assert_eq!(kernels::isa::force(Some(isa)), isa);
        let result = check();
        kernels::isa::force(None);
        result.map_err(|e| candle_core::Error::Msg(format!("on {}: {e}", isa.name())))?;
    }
    Ok(())
}

/// Largest |a − b| relative to max(1, max |b|).
fn rel_err(a: &Tensor, b: &Tensor) -> Result<f32> {
    assert_eq!(a.dims(), b.dims());
    let diff = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    let scale = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?.max(1.0);
    Ok(diff / scale)
}

fn conv3x3_matches_candle_once() -> Result<()> {
    // Small channel counts take the shifted-GEMM path, 32 and more Winograd (odd sides
    // leave partial tiles); every case is also run on the shifted-GEMM path.
    let cases = [
        (1, 3, 5, 7, 9),
        (2, 16, 8, 13, 6),
        (1, 64, 32, 33, 40),
        (2, 8, 8, 1, 1),
        (2, 32, 48, 5, 3),
        (1, 40, 32, 1, 1),
    ];
    for (i, &(b, cin, cout, h, w)) in cases.iter().enumerate() {
        let x = randn(&[b, cin, h, w], 1.0, i as u64)?;
        let wt = randn(&[cout, cin, 3, 3], 0.3, 100 + i as u64)?;
        let bias = randn(&[cout], 1.0, 200 + i as u64)?;
        let want = x
            .conv2d(&wt, 1, 1, 1, 1)?
            .broadcast_add(&bias.reshape((1, cout, 1, 1))?)?;
        let got = kernels::conv::conv2d(&x, &wt, &bias)?;
        let e = rel_err(&got, &want)?;
        assert!(e < 1e-5, "shape {:?}: error {e}", (b, cin, cout, h, w));
        let direct = kernels::conv::conv2d_direct(&x, &wt, &bias)?;
        let e = rel_err(&direct, &want)?;
        assert!(e < 1e-5, "shape {:?} without Winograd: error {e}", (b, cin, cout, h, w));
    }
    Ok(())
}

/// Wide layers with many channels give bands of two tile rows, padded in groups of bands:
/// with the work split for one thread the groups hold several bands (the last group and
/// band partial); with 64 threads each group holds one. Both equal candle's convolution.
fn winograd_band_groups_match_candle_once() -> Result<()> {
    let (cin, cout, h, w) = (256, 256, 49, 255);
    let x = randn(&[1, cin, h, w], 1.0, 7)?;
    let wt = randn(&[cout, cin, 3, 3], 0.05, 8)?;
    let bias = randn(&[cout], 1.0, 9)?;
    let want = x
        .conv2d(&wt, 1, 1, 1, 1)?
        .broadcast_add(&bias.reshape((1, cout, 1, 1))?)?;
    let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
    let (xs, ws, bs) = (flat(&x)?, flat(&wt)?, flat(&bias)?);
    let pre = super::padded::Pre {
        up: false,
        norm_silu: None,
    };
    for threads in [1, 64] {
        let got = kernels::winograd::conv3x3(&xs, &ws, &bs, 1, cin, cout, h, w, pre, threads);
        let got = Tensor::from_vec(got, (1, cout, h, w), &candle_core::Device::Cpu)?;
        let e = rel_err(&got, &want)?;
        assert!(e < 1e-5, "split for {threads} threads: error {e}");
    }
    Ok(())
}

fn conv1x1_matches_candle_and_strided_inputs_are_accepted_once() -> Result<()> {
    let x = randn(&[2, 12, 10, 7], 1.0, 1)?;
    let wt = randn(&[20, 12, 1, 1], 0.3, 2)?;
    let bias = randn(&[20], 1.0, 3)?;
    let want = x
        .conv2d(&wt, 0, 1, 1, 1)?
        .broadcast_add(&bias.reshape((1, 20, 1, 1))?)?;
    assert!(rel_err(&kernels::conv::conv2d(&x, &wt, &bias)?, &want)? < 1e-5);
    // A transposed (non-contiguous) view gives the same result as its contiguous copy.
    let xt = randn(&[2, 12, 7, 10], 1.0, 4)?.transpose(2, 3)?;
    let want = xt
        .contiguous()?
        .conv2d(&wt, 0, 1, 1, 1)?
        .broadcast_add(&bias.reshape((1, 20, 1, 1))?)?;
    assert!(rel_err(&kernels::conv::conv2d(&xt, &wt, &bias)?, &want)? < 1e-5);
    // With the residual folded in (a ResNet shortcut and its sum), residual given as a view.
    let residual = randn(&[2, 20, 10, 7], 1.0, 5)?;
    let want = (x
        .conv2d(&wt, 0, 1, 1, 1)?
        .broadcast_add(&bias.reshape((1, 20, 1, 1))?)?
        + &residual)?;
    assert!(rel_err(&kernels::conv::conv1x1_add(&x, &wt, &bias, &residual)?, &want)? < 1e-5);
    let rt = residual.transpose(2, 3)?.contiguous()?.transpose(2, 3)?;
    assert!(rel_err(&kernels::conv::conv1x1_add(&x, &wt, &bias, &rt)?, &want)? < 1e-5);
    let wrong = randn(&[2, 20, 7, 10], 1.0, 6)?;
    assert!(kernels::conv::conv1x1_add(&x, &wt, &bias, &wrong).is_err());
    Ok(())
}

#[test]
fn unsupported_convolutions_are_refused_by_supported() {
    assert!(kernels::conv::supported(3, 1, 1));
    assert!(kernels::conv::supported(1, 1, 0));
    assert!(!kernels::conv::supported(3, 2, 1));
    assert!(!kernels::conv::supported(3, 1, 0));
    assert!(!kernels::conv::supported(5, 1, 2));
}

fn group_norm_and_silu_match_candle_once() -> Result<()> {
    for (i, &(b, c, g, h, w, shift)) in [(1, 32, 32, 5, 7, 0.0), (2, 64, 32, 9, 9, 50.0), (1, 6, 3, 1, 1, -3.0)]
        .iter()
        .enumerate()
    {
        // A large common offset checks that the variance is computed around the mean.
        let x = (randn(&[b, c, h, w], 2.0, i as u64)? + shift)?;
        let gamma = (randn(&[c], 0.1, 10 + i as u64)? + 1.0)?;
        let beta = randn(&[c], 0.1, 20 + i as u64)?;
        let norm = candle_nn::GroupNorm::new(gamma.clone(), beta.clone(), c, g, 1e-6)?;
        let want = candle_core::Module::forward(&norm, &x)?;
        let got = kernels::group_norm::group_norm(&x, &gamma, &beta, g, 1e-6, false)?;
        assert!(rel_err(&got, &want)? < 1e-4, "case {i}: {}", rel_err(&got, &want)?);
        let want = candle_nn::ops::silu(&want)?;
        let got = kernels::group_norm::group_norm(&x, &gamma, &beta, g, 1e-6, true)?;
        assert!(rel_err(&got, &want)? < 1e-4, "case {i} silu: {}", rel_err(&got, &want)?);
    }
    let x = randn(&[1, 10, 4, 4], 1.0, 0)?;
    let ones = Tensor::ones(10, DType::F32, &Device::Cpu)?;
    assert!(kernels::group_norm::group_norm(&x, &ones, &ones, 3, 1e-6, false).is_err());
    Ok(())
}

/// softmax(q kᵀ s) v with candle's ops, heads split out.
fn naive_attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, scale: f64) -> Result<Tensor> {
    let split = |t: &Tensor| -> Result<Tensor> {
        let (b, n, c) = t.dims3()?;
        t.reshape((b, n, heads, c / heads))?.transpose(1, 2)?.contiguous()
    };
    let (q, k, v) = (split(q)?, split(k)?, split(v)?);
    let scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?;
    let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
    let out = probs.matmul(&v)?;
    let (b, h, n, d) = out.dims4()?;
    out.transpose(1, 2)?.reshape((b, n, h * d))
}

fn attention_matches_candle_for_self_and_cross_attention_once() -> Result<()> {
    // (batch, queries, keys, heads, head dim): a partial query block, 77 text tokens, one head of 40.
    for (i, &(b, n, m, h, d)) in [
        (2, 100, 100, 2, 8),
        (1, 130, 77, 4, 16),
        (1, 65, 65, 1, 40),
        (3, 1, 5, 2, 4),
    ]
    .iter()
    .enumerate()
    {
        let q = randn(&[b, n, h * d], 1.0, i as u64)?;
        let k = randn(&[b, m, h * d], 1.0, 10 + i as u64)?;
        let v = randn(&[b, m, h * d], 1.0, 20 + i as u64)?;
        // Scores of a few hundred: the softmax must subtract the row maximum.
        let scale = 30.0 / (d as f64).sqrt();
        let want = naive_attention(&q, &k, &v, h, scale)?;
        let got = kernels::attention::attention(&q, &k, &v, h, scale)?;
        let e = rel_err(&got, &want)?;
        assert!(e < 1e-5, "case {i}: error {e}");
    }
    Ok(())
}

fn gelu_and_geglu_match_candle_once() -> Result<()> {
    let x = randn(&[3, 7, 40], 3.0, 5)?;
    let want = x.gelu_erf()?;
    assert!(rel_err(&kernels::activation::gelu(&x)?, &want)? < 1e-5);
    let chunks = x.chunk(2, D::Minus1)?;
    let want = (&chunks[0] * chunks[1].gelu_erf()?)?;
    let got = kernels::activation::geglu(&x)?;
    assert_eq!(got.dims(), &[3, 7, 20]);
    assert!(rel_err(&got, &want)? < 1e-5);
    assert!(kernels::activation::geglu(&randn(&[2, 5], 1.0, 0)?).is_err());
    Ok(())
}

fn upsampling_convolution_matches_upsample_then_convolve_once() -> Result<()> {
    // Winograd (32+ channels, odd input sides) and shifted-GEMM (few channels) paths.
    for (i, &(b, cin, cout, h, w)) in [(2, 32, 40, 5, 3), (1, 4, 6, 3, 4)].iter().enumerate() {
        let x = randn(&[b, cin, h, w], 1.0, i as u64)?;
        let wt = randn(&[cout, cin, 3, 3], 0.3, 10 + i as u64)?;
        let bias = randn(&[cout], 1.0, 20 + i as u64)?;
        let up = x.upsample_nearest2d(2 * h, 2 * w)?;
        let want = up
            .conv2d(&wt, 1, 1, 1, 1)?
            .broadcast_add(&bias.reshape((1, cout, 1, 1))?)?;
        for winograd in [true, false] {
            let got = kernels::conv::conv2d_upsampled(&x, &wt, &bias, winograd)?;
            let e = rel_err(&got, &want)?;
            assert!(e < 1e-5, "case {i} (winograd {winograd}): error {e}");
        }
    }
    Ok(())
}

fn banded_convolution_is_exactly_the_whole_convolution_once() -> Result<()> {
    let x = randn(&[2, 5, 11, 7], 1.0, 3)?;
    let wt = randn(&[4, 5, 3, 3], 0.3, 4)?;
    let want = x.conv2d(&wt, 1, 1, 1, 1)?;
    for rows in [1, 3, 4, 11, 50] {
        let got = crate::layers::conv3x3_in_bands(&x, &wt, rows)?;
        assert!(rel_err(&got, &want)? < 1e-6, "bands of {rows} rows");
    }
    Ok(())
}

fn convolution_after_norm_and_silu_matches_the_separate_ops_once() -> Result<()> {
    for (i, &(b, cin, cout, h, w, winograd)) in [
        (2, 64, 32, 7, 5, true),
        (2, 64, 32, 7, 5, false),
        (1, 6, 4, 3, 8, false),
    ]
    .iter()
    .enumerate()
    {
        let groups = if cin % 32 == 0 { 32 } else { 3 };
        let x = (randn(&[b, cin, h, w], 2.0, i as u64)? + 5.0)?;
        let gamma = (randn(&[cin], 0.1, 10 + i as u64)? + 1.0)?;
        let beta = randn(&[cin], 0.1, 20 + i as u64)?;
        let wt = randn(&[cout, cin, 3, 3], 0.3, 30 + i as u64)?;
        let bias = randn(&[cout], 1.0, 40 + i as u64)?;
        let norm = candle_nn::GroupNorm::new(gamma.clone(), beta.clone(), cin, groups, 1e-6)?;
        let normed = candle_nn::ops::silu(&candle_core::Module::forward(&norm, &x)?)?;
        let want = normed
            .conv2d(&wt, 1, 1, 1, 1)?
            .broadcast_add(&bias.reshape((1, cout, 1, 1))?)?;
        let got = kernels::conv::conv2d_after_norm_silu(&x, &gamma, &beta, groups, 1e-6, &wt, &bias, winograd)?;
        let e = rel_err(&got, &want)?;
        assert!(e < 1e-5, "case {i}: error {e}");
    }
    Ok(())
}

// Every check above, on every instruction set the CPU has.

#[test]
fn conv3x3_matches_candle() -> Result<()> {
    each_isa(conv3x3_matches_candle_once)
}

#[test]
fn winograd_band_groups_match_candle() -> Result<()> {
    each_isa(winograd_band_groups_match_candle_once)
}

#[test]
fn conv1x1_matches_candle_and_strided_inputs_are_accepted() -> Result<()> {
    each_isa(conv1x1_matches_candle_and_strided_inputs_are_accepted_once)
}

#[test]
fn group_norm_and_silu_match_candle() -> Result<()> {
    each_isa(group_norm_and_silu_match_candle_once)
}

#[test]
fn attention_matches_candle_for_self_and_cross_attention() -> Result<()> {
    each_isa(attention_matches_candle_for_self_and_cross_attention_once)
}

#[test]
fn gelu_and_geglu_match_candle() -> Result<()> {
    each_isa(gelu_and_geglu_match_candle_once)
}

#[test]
fn upsampling_convolution_matches_upsample_then_convolve() -> Result<()> {
    each_isa(upsampling_convolution_matches_upsample_then_convolve_once)
}

#[test]
fn banded_convolution_is_exactly_the_whole_convolution() -> Result<()> {
    each_isa(banded_convolution_is_exactly_the_whole_convolution_once)
}

#[test]
fn convolution_after_norm_and_silu_matches_the_separate_ops() -> Result<()> {
    each_isa(convolution_after_norm_and_silu_matches_the_separate_ops_once)
}
