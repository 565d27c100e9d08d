//! Why this exists: `f32::exp` is a libm call that stops a loop from being vectorised.
//! Softmax and SiLU call exp for every element, so the kernels use this branch-free
//! version, which the compiler turns into vector code (plain multiply-adds: `mul_add`
//! would be a libm call on CPUs compiled for without FMA) (relative error about 2e-7, like
//! Cephes' `expf`).

/// e^x for x in f32's range (saturates to 0 below -87.3 and to a large finite value above 88.3).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that n · ln2 is exact in the high part.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.3);
    let n = (x * LOG2E).round();
    let r = x - n * LN2_HI - n * LN2_LO;
    // Cephes expf polynomial for e^r on |r| ≤ ln2/2.
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * (r * r) + r + 1.0;
    // 2^n by building the exponent bits directly.
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    e * scale
}

/// x · sigmoid(x).
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// The error function (Abramowitz & Stegun 7.1.26: 1.5e-7 in exact arithmetic, below
/// 5e-7 evaluated in f32).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let mut p = 1.061_405_4_f32;
    p = p * t - 1.453_152_1;
    p = p * t + 1.421_413_7;
    p = p * t - 0.284_496_74;
    p = p * t + 0.254_829_6;
    let y = 1.0 - p * t * exp(-a * a);
    y.copysign(x)
}

/// GELU with the exact (erf) form, as PyTorch's default `gelu`.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[cfg(test)]
mod tests {
    #[test]
    fn erf_and_gelu_are_within_5e7_of_the_exact_values() {
        // erf from its series (exact enough in f64 for |x| <= 4) and the tail.
        let erf64 = |x: f64| -> f64 {
            if x.abs() > 4.0 {
                return x.signum();
            }
            let (mut term, mut sum, mut n) = (x, x, 0.0);
            while term.abs() > 1e-17 {
                n += 1.0;
                term *= -x * x / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        };
        let mut x = -6.0f64;
        while x < 6.0 {
            let e = (super::erf(x as f32) as f64 - erf64(x)).abs();
            assert!(e < 5e-7, "erf({x}): error {e}");
            let g = 0.5 * x * (1.0 + erf64(x / std::f64::consts::SQRT_2));
            let e = (super::gelu(x as f32) as f64 - g).abs();
            assert!(e < 1e-6 * g.abs().max(1.0), "gelu({x}): error {e}");
            x += 0.0173;
        }
    }

    #[test]
    fn exp_matches_std_to_a_few_ulp_over_the_useful_range() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (a, b) = (super::exp(x), x.exp());
            worst = worst.max(((a - b) / b).abs());
            x += 0.0137;
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        assert_eq!(super::exp(-200.0), (-87.3f32).exp());
        assert!(super::exp(200.0).is_finite());
    }

    #[test]
    fn silu_matches_definition() {
        for x in [-30.0f32, -3.0, -0.5, 0.0, 0.7, 4.0, 30.0] {
            let want = x / (1.0 + (-x).exp());
            assert!((super::silu(x) - want).abs() <= 1e-6 * want.abs().max(1.0), "{x}");
        }
    }
}
