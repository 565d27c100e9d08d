//! Why this exists: timing Easel's CPU kernels against candle's ops on SDXL's shapes (UNet
//! at 512×512 with guidance, VAE decoder at 512×512) shows whether a kernel still earns its
//! place. Ignored tests, run on demand:
//! `cargo test --release -p easel-sdxl --lib kernels::timing -- --ignored --nocapture --test-threads 1`
//! (append `conv`, `norm`, `attn` or `linear` to the filter for one kind). Prints
//! milliseconds per call, GFLOP/s and the ratio Easel/candle (lower is better).

use std::time::Instant;

use crate::kernels;
use candle_core::{Device, Module, Result, Tensor};

fn time(mut f: impl FnMut() -> Result<Tensor>) -> Result<f64> {
    f()?;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn report(name: &str, flops: f64, easel: f64, candle: f64) {
    println!(
        "{name:34} easel {:9.2} ms {:7.1} GFLOP/s | candle {:9.2} ms | ratio {:.2}",
        easel * 1e3,
        flops / easel / 1e9,
        candle * 1e3,
        easel / candle
    );
}

#[test]
#[ignore = "timing, not a check: run with --ignored --nocapture"]
fn conv() -> Result<()> {
    let dev = Device::Cpu;
    for &(b, cin, cout, side) in &[
        (2, 64, 64, 64),
        (2, 128, 128, 32),
        (2, 256, 256, 16),
        (1, 512, 512, 64),
        (1, 512, 512, 128),
        (1, 256, 256, 256),
        (1, 128, 128, 512),
    ] {
        let x = Tensor::randn(0f32, 1.0, (b, cin, side, side), &dev)?;
        let w = Tensor::randn(0f32, 0.05, (cout, cin, 3, 3), &dev)?;
        let bias = Tensor::zeros(cout, candle_core::DType::F32, &dev)?;
        let flops = 2.0 * 9.0 * (b * cin * cout * side * side) as f64;
        let e = time(|| kernels::conv::conv2d(&x, &w, &bias))?;
        let d = time(|| kernels::conv::conv2d_direct(&x, &w, &bias))?;
        let c = time(|| x.conv2d(&w, 1, 1, 1, 1)?.broadcast_add(&bias.reshape((1, cout, 1, 1))?))?;
        report(&format!("conv3x3 {b}x{cin}x{side}² -> {cout}"), flops, e, c);
        report("  (shifted GEMMs, no Winograd)", flops, d, c);
    }
    Ok(())
}

#[test]
#[ignore = "timing, not a check: run with --ignored --nocapture"]
fn norm() -> Result<()> {
    let dev = Device::Cpu;
    for &(b, c, side) in &[(2, 64, 64), (1, 512, 128), (1, 128, 512)] {
        let x = Tensor::randn(0f32, 1.0, (b, c, side, side), &dev)?;
        let g = Tensor::ones(c, candle_core::DType::F32, &dev)?;
        let z = Tensor::zeros(c, candle_core::DType::F32, &dev)?;
        let norm = candle_nn::GroupNorm::new(g.clone(), z.clone(), c, 32, 1e-6)?;
        let e = time(|| kernels::group_norm::group_norm(&x, &g, &z, 32, 1e-6, true))?;
        let cn = time(|| candle_nn::ops::silu(&norm.forward(&x)?))?;
        report(&format!("group_norm+silu {b}x{c}x{side}²"), 0.0, e, cn);
    }
    Ok(())
}

#[test]
#[ignore = "timing, not a check: run with --ignored --nocapture"]
fn attn() -> Result<()> {
    let dev = Device::Cpu;
    for &(b, n, m, h, d) in &[
        (2, 1024, 1024, 2, 64),
        (2, 1024, 77, 2, 64),
        (2, 256, 256, 4, 64),
        (1, 4096, 4096, 1, 512),
    ] {
        let q = Tensor::randn(0f32, 1.0, (b, n, h * d), &dev)?;
        let k = Tensor::randn(0f32, 1.0, (b, m, h * d), &dev)?;
        let v = Tensor::randn(0f32, 1.0, (b, m, h * d), &dev)?;
        let scale = 1.0 / (d as f64).sqrt();
        let flops = 4.0 * (b * h * n * m * d) as f64;
        let e = time(|| kernels::attention::attention(&q, &k, &v, h, scale))?;
        let split = |t: &Tensor| crate::layers::attention::split_heads(t, h);
        let c = time(|| {
            let o = crate::layers::attention::sdpa(&split(&q)?, &split(&k)?, &split(&v)?, scale, None)?;
            crate::layers::attention::merge_heads(&o)
        })?;
        report(&format!("attention {b}x{h}h {n}x{m} d{d}"), flops, e, c);
    }
    Ok(())
}

#[test]
#[ignore = "timing, not a check: run with --ignored --nocapture"]
fn linear() -> Result<()> {
    let dev = Device::Cpu;
    for &(rows, cin, cout) in &[
        (512, 256, 256),
        (512, 256, 2048),
        (512, 1024, 256),
        (2048, 128, 1024),
        (2048, 128, 128),
    ] {
        let x = Tensor::randn(0f32, 1.0, (2, rows / 2, cin), &dev)?;
        let w = Tensor::randn(0f32, 0.05, (cout, cin), &dev)?;
        let lin = candle_nn::Linear::new(w.clone(), Some(Tensor::zeros(cout, candle_core::DType::F32, &dev)?));
        let flops = 2.0 * (rows * cin * cout) as f64;
        let c = time(|| lin.forward(&x))?;
        let b = Tensor::zeros(cout, candle_core::DType::F32, &dev)?;
        let e = time(|| kernels::linear::linear(&x, &w, Some(&b)))?;
        report(&format!("linear {rows}x{cin} -> {cout}"), flops, e, c);
    }
    Ok(())
}
