//! Why this exists: the noise tables and timestep grids every sampler starts from,
//! computed the way diffusers computes them (torch `float32` tensors, numpy `float64`
//! arrays) so that timesteps come out bit-identical and sigmas agree to float32
//! rounding. Also the numpy helpers they need (`linspace`, `arange`, `interp`, `round`
//! and numpy's own SIMD `float32` log) and the Karras ramp with its sigma → t mapping.

use super::config::SchedulerConfig;
use crate::{Error, Result};

/// `alphas_cumprod` as diffusers' scheduler `__init__` builds it (a float32 tensor).
///
/// `clamp_terminal` mirrors Euler / Euler Ancestral / DPM, which set the last entry to
/// 2^-24 after zero-terminal-SNR rescaling (DDIM leaves it at 0).
pub(crate) fn alphas_cumprod(config: &SchedulerConfig, clamp_terminal: bool) -> Result<Vec<f32>> {
    let n = config.num_train_timesteps;
    let mut betas: Vec<f32> = if let Some(trained) = &config.trained_betas {
        if trained.len() != n {
            return Err(Error::invalid(format!(
                "scheduler config has {} trained_betas but num_train_timesteps = {n}",
                trained.len()
            )));
        }
        trained.iter().map(|&b| b as f32).collect()
    } else {
        match config.beta_schedule.as_str() {
            "linear" => torch_linspace_f32(config.beta_start, config.beta_end, n),
            "scaled_linear" => torch_linspace_f32(config.beta_start.sqrt(), config.beta_end.sqrt(), n)
                .into_iter()
                .map(|b| b * b)
                .collect(),
            "squaredcos_cap_v2" => betas_for_alpha_bar(n),
            other => {
                return Err(Error::Unsupported(format!(
                    "beta_schedule \"{other}\" (supported: linear, scaled_linear, squaredcos_cap_v2)"
                )))
            }
        }
    };
    if config.rescale_betas_zero_snr {
        betas = rescale_zero_terminal_snr(&betas);
    }
    let alphas: Vec<f32> = betas.iter().map(|b| 1.0 - b).collect();
    let mut cumprod = torch_cumprod_f32(&alphas);
    if config.rescale_betas_zero_snr && clamp_terminal {
        if let Some(last) = cumprod.last_mut() {
            *last = 2f32.powi(-24);
        }
    }
    Ok(cumprod)
}

/// `((1 - a) / a) ** 0.5` elementwise in float32: the training sigmas, by timestep.
pub(crate) fn train_sigmas(alphas_cumprod: &[f32]) -> Vec<f32> {
    alphas_cumprod.iter().map(|&a| ((1.0 - a) / a).sqrt()).collect()
}

/// `torch.linspace(start, end, n, dtype=float32)` on CPU: float32 endpoints, a float32
/// step, each value one fused multiply-add from the nearer end.
fn torch_linspace_f32(start: f64, end: f64, n: usize) -> Vec<f32> {
    let (start, end) = (start as f32, end as f32);
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f32;
    let halfway = n / 2;
    (0..n)
        .map(|i| {
            if i < halfway {
                step.mul_add(i as f32, start)
            } else {
                (-step).mul_add((n - i - 1) as f32, end)
            }
        })
        .collect()
}

/// `torch.cumprod` of a float32 tensor on CPU: accumulates in float64, stores float32.
fn torch_cumprod_f32(values: &[f32]) -> Vec<f32> {
    let mut acc = 1f64;
    values
        .iter()
        .map(|&v| {
            acc *= v as f64;
            acc as f32
        })
        .collect()
}

/// diffusers' `betas_for_alpha_bar` with the cosine transform (`squaredcos_cap_v2`):
/// computed in float64, stored as a float32 tensor.
fn betas_for_alpha_bar(n: usize) -> Vec<f32> {
    let alpha_bar = |t: f64| ((t + 0.008) / 1.008 * std::f64::consts::PI / 2.0).cos().powi(2);
    (0..n)
        .map(|i| {
            let t1 = i as f64 / n as f64;
            let t2 = (i + 1) as f64 / n as f64;
            (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(0.999) as f32
        })
        .collect()
}

/// diffusers' `rescale_zero_terminal_snr` (arXiv 2305.08891, Algorithm 1), in float32.
fn rescale_zero_terminal_snr(betas: &[f32]) -> Vec<f32> {
    let alphas: Vec<f32> = betas.iter().map(|b| 1.0 - b).collect();
    let mut sqrt_bar: Vec<f32> = torch_cumprod_f32(&alphas).iter().map(|a| a.sqrt()).collect();
    let first = sqrt_bar[0];
    let last = sqrt_bar[sqrt_bar.len() - 1];
    let scale = first / (first - last);
    for v in &mut sqrt_bar {
        *v = (*v - last) * scale;
    }
    let bar: Vec<f32> = sqrt_bar.iter().map(|v| v * v).collect();
    let mut out = Vec::with_capacity(bar.len());
    out.push(1.0 - bar[0]);
    out.extend(bar.windows(2).map(|w| 1.0 - w[1] / w[0]));
    out
}

/// `np.linspace(start, stop, num)` in float64 (endpoint included).
pub(crate) fn np_linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 0 {
        return Vec::new();
    }
    let div = (num - 1) as f64;
    let delta = stop - start;
    let mut out: Vec<f64> = if num > 1 {
        let step = delta / div;
        if step == 0.0 {
            (0..num).map(|i| i as f64 / div * delta + start).collect()
        } else {
            (0..num).map(|i| i as f64 * step + start).collect()
        }
    } else {
        vec![start]
    };
    if num > 1 {
        out[num - 1] = stop;
    }
    out
}

/// `np.arange(start, stop, step)` in float64, including numpy's fill rule: the
/// second value is `start + step` and later ones use `start + i * (second - start)`.
pub(crate) fn np_arange(start: f64, stop: f64, step: f64) -> Vec<f64> {
    let len = ((stop - start) / step).ceil();
    if len.is_nan() || len <= 0.0 {
        return Vec::new();
    }
    let len = len as usize;
    let second = start + step;
    let delta = second - start;
    (0..len)
        .map(|i| match i {
            0 => start,
            1 => second,
            _ => start + i as f64 * delta,
        })
        .collect()
}

/// `np.interp(x, np.arange(len(fp)), fp)`: linear interpolation over integer grid
/// points, clamped to the end values outside the grid.
pub(crate) fn np_interp_grid(x: f64, fp: &[f32]) -> f64 {
    let last = fp.len() - 1;
    if x.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 {
        return fp[0] as f64;
    }
    if x >= last as f64 {
        return fp[last] as f64;
    }
    let j = x.floor() as usize;
    if x == j as f64 {
        return fp[j] as f64;
    }
    let slope = fp[j + 1] as f64 - fp[j] as f64;
    slope * (x - j as f64) + fp[j] as f64
}

/// `np.log` of a float32 array as numpy's AVX2/AVX512F kernel computes it (a 5/5
/// rational approximation after range reduction, up to ~4 ulp off the true log).
/// diffusers maps Karras sigmas back to timesteps through these values, so matching
/// them makes the fractional Euler-Karras timesteps bit-identical.
pub(crate) fn np_log_f32(x: f32) -> f32 {
    // numpy's NPY_COEFF_{P,Q}{0..5}_LOGf, as the float32 values they round to.
    const P: [f32; 6] = [0.0, 1.0, 2.112_677_6, 1.480_000_6, 0.380_883_78, 0.025_899_792];
    const Q: [f32; 6] = [1.0, 2.612_677_6, 2.453_006, 0.986_494_3, 0.154_647_63, 0.005_875_095_3];
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 {
        return f32::NEG_INFINITY;
    }
    if x == f32::INFINITY {
        return f32::INFINITY;
    }
    // Denormals are pre-scaled by 2^100.
    let (scaled, adjust) = if x < f32::MIN_POSITIVE {
        (x * f32::from_bits(0x7180_0000), 100.0)
    } else {
        (x, 0.0)
    };
    let bits = scaled.to_bits();
    let mut exponent = ((bits >> 23) as i32 - 126) as f32 - adjust;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | (126 << 23));
    if m <= std::f32::consts::FRAC_1_SQRT_2 {
        m += m;
        exponent -= 1.0;
    }
    let y = m - 1.0;
    let mut num = P[5].mul_add(y, P[4]);
    let mut den = Q[5].mul_add(y, Q[4]);
    for k in (0..4).rev() {
        num = num.mul_add(y, P[k]);
        den = den.mul_add(y, Q[k]);
    }
    exponent.mul_add(std::f32::consts::LN_2, num / den)
}

/// Round half to even, as `np.round` does.
pub(crate) fn np_round(x: f64) -> f64 {
    x.round_ties_even()
}

/// The Karras et al. (2022) ramp: `n` sigmas from `sigma_max` down to `sigma_min`,
/// evenly spaced in `sigma^(1/7)` (float64, as numpy computes it).
pub(crate) fn karras_sigmas(sigma_min: f64, sigma_max: f64, n: usize) -> Vec<f64> {
    let rho = 7.0f64;
    let min_inv_rho = sigma_min.powf(1.0 / rho);
    let max_inv_rho = sigma_max.powf(1.0 / rho);
    np_linspace(0.0, 1.0, n)
        .into_iter()
        .map(|r| (max_inv_rho + r * (min_inv_rho - max_inv_rho)).powf(rho))
        .collect()
}

/// diffusers' `_sigma_to_t`: the fractional training timestep whose sigma is `sigma`,
/// interpolating linearly in log-sigma. `log_sigmas` is `np.log` of the float32
/// training sigmas (see [`np_log_f32`]).
pub(crate) fn sigma_to_t(sigma: f64, log_sigmas: &[f32]) -> f64 {
    let log_sigma = sigma.max(1e-10).ln();
    // Index of the last entry with log_sigma >= log_sigmas[i] (0 if none), clipped so
    // that a higher neighbour exists.
    let low_idx = log_sigmas
        .iter()
        .rposition(|&l| log_sigma - l as f64 >= 0.0)
        .unwrap_or(0)
        .min(log_sigmas.len() - 2);
    let high_idx = low_idx + 1;
    let low = log_sigmas[low_idx] as f64;
    let high = log_sigmas[high_idx] as f64;
    let w = ((low - log_sigma) / (low - high)).clamp(0.0, 1.0);
    (1.0 - w) * low_idx as f64 + w * high_idx as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_numpy_shapes() {
        assert_eq!(np_linspace(0.0, 1.0, 1), vec![0.0]);
        assert_eq!(np_linspace(0.0, 999.0, 3), vec![0.0, 499.5, 999.0]);
    }

    #[test]
    fn arange_counts_like_numpy() {
        assert_eq!(np_arange(1000.0, 0.0, -250.0), vec![1000.0, 750.0, 500.0, 250.0]);
        assert!(np_arange(0.0, 1.0, -1.0).is_empty());
    }

    #[test]
    fn interp_clamps_and_interpolates() {
        let fp = [1.0f32, 3.0, 7.0];
        assert_eq!(np_interp_grid(-1.0, &fp), 1.0);
        assert_eq!(np_interp_grid(0.5, &fp), 2.0);
        assert_eq!(np_interp_grid(2.0, &fp), 7.0);
        assert_eq!(np_interp_grid(5.0, &fp), 7.0);
    }

    #[test]
    fn numpy_log_is_close_to_ln() {
        for x in [1e-40f32, 0.029, 0.5, 1.0, 2.0, 14.6, 4096.0] {
            let got = np_log_f32(x) as f64;
            assert!((got - (x as f64).ln()).abs() < 1e-6 * (1.0 + got.abs()), "{x}");
        }
        assert_eq!(np_log_f32(0.0), f32::NEG_INFINITY);
    }

    #[test]
    fn rounding_is_half_even() {
        assert_eq!(np_round(0.5), 0.0);
        assert_eq!(np_round(1.5), 2.0);
        assert_eq!(np_round(499.5), 500.0);
    }
}
