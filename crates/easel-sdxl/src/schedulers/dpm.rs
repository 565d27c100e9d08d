//! Why this exists: DPM-Solver++(2M) (Lu et al. 2022), diffusers'
//! `DPMSolverMultistepScheduler` with `algorithm_type="dpmsolver++"`, `solver_order=2`,
//! midpoint solver: a second-order multistep update in log-SNR time that reuses the
//! previous step's clean-sample prediction, with diffusers' integer timesteps, its
//! first-order first and final steps, and optionally Karras sigmas.

use candle_core::Tensor;

use super::betas::{alphas_cumprod, karras_sigmas, np_interp_grid, np_log_f32, np_round, sigma_to_t, train_sigmas};
use super::config::{Prediction, SchedulerConfig};
use super::math::{check_index, finish, lincomb, work};
use super::scheduler::Scheduler;
use super::timesteps;
use crate::noise::NoiseSource;
use crate::{Error, Result};

/// DPM++ 2M, optionally with Karras sigmas.
#[derive(Debug, Clone)]
pub struct DpmSolverMultistep {
    timesteps: Vec<f64>,
    sigmas: Vec<f64>,
    prediction: Prediction,
    /// diffusers' `lower_order_final` (first-order last step when < 15 steps).
    lower_order_final: bool,
    /// diffusers' `euler_at_final`.
    euler_at_final: bool,
    /// The final sigma is 0 (`final_sigmas_type="zero"`): the last step is first order.
    final_zero: bool,
    /// The previous step's index and clean-sample prediction (float32).
    previous: Option<(usize, Tensor)>,
}

/// `(alpha_t, sigma_t)` of the variance-preserving process at Karras sigma `sigma`.
fn alpha_sigma(sigma: f64) -> (f64, f64) {
    let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
    (alpha, sigma * alpha)
}

/// The log-SNR `lambda = ln(alpha) - ln(sigma)`; +inf at sigma 0.
fn lambda(sigma: f64) -> f64 {
    let (a, s) = alpha_sigma(sigma);
    a.ln() - s.ln()
}

impl DpmSolverMultistep {
    /// Sets up `steps` inference steps for `config`; `karras` picks Karras sigmas (the
    /// sampler kind decides, not the config's `use_karras_sigmas`).
    pub fn new(config: &SchedulerConfig, steps: usize, karras: bool) -> Result<Self> {
        let prediction = config.prediction("dpmpp_2m", &[Prediction::Epsilon, Prediction::V, Prediction::Sample])?;
        config.reject_unsupported_sigmas()?;
        if let Some(v) = &config.variance_type {
            return Err(Error::Unsupported(format!(
                "variance_type \"{v}\" with the dpmpp_2m sampler"
            )));
        }
        let spacing = config.spacing()?;
        let final_sigma_min = config.final_sigma_is_min()?;
        let train_len = config.num_train_timesteps;
        let ac = alphas_cumprod(config, true)?;
        let train = train_sigmas(&ac);

        // `lambda_min_clipped` cuts the schedule where log-SNR drops below it.
        let clipped = match config.lambda_min_clipped {
            Some(min) if min.is_finite() => ac
                .iter()
                .filter(|&&a| {
                    let l = a.sqrt().ln() - (1.0 - a).sqrt().ln();
                    (l as f64) < min
                })
                .count(),
            _ => 0,
        };
        let last_timestep = train_len - clipped;
        // Leading spacing with a zero step ratio puts every timestep at the same
        // sigma (diffusers then divides by h = 0); Karras sigmas replace the grid.
        if !karras && spacing == super::config::Spacing::Leading && last_timestep / (steps + 1) == 0 {
            return Err(Error::invalid(format!(
                "{steps} steps is too many for dpmpp_2m with leading timestep spacing \
                 (at most {})",
                last_timestep.saturating_sub(1)
            )));
        }
        let int_ts = timesteps::dpm(config, spacing, steps, last_timestep);

        let (ts, mut sigmas): (Vec<f64>, Vec<f64>) = if karras {
            let log_sigmas: Vec<f32> = train.iter().map(|&s| np_log_f32(s)).collect();
            let sigma_min = config.sigma_min.unwrap_or(train[0] as f64);
            let sigma_max = config.sigma_max.unwrap_or(train[train.len() - 1] as f64);
            let sigmas = karras_sigmas(sigma_min, sigma_max, steps);
            let ts = sigmas
                .iter()
                .map(|&s| {
                    let t = sigma_to_t(s, &log_sigmas);
                    if config.beta_schedule == "squaredcos_cap_v2" {
                        t.trunc()
                    } else {
                        np_round(t)
                    }
                })
                .collect();
            (ts, sigmas)
        } else {
            let ts: Vec<f64> = int_ts.iter().map(|&t| t as f64).collect();
            let sigmas = ts.iter().map(|&t| np_interp_grid(t, &train)).collect();
            (ts, sigmas)
        };
        sigmas.push(if final_sigma_min {
            ((1.0 - ac[0]) / ac[0]).sqrt() as f64
        } else {
            0.0
        });
        let sigmas = sigmas.into_iter().map(|s| s as f32 as f64).collect();
        Ok(Self {
            timesteps: ts,
            sigmas,
            prediction,
            lower_order_final: config.lower_order_final,
            euler_at_final: config.euler_at_final,
            final_zero: !final_sigma_min,
            previous: None,
        })
    }

    /// The sigmas, one per timestep plus the final one (float32 values).
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    /// diffusers' `convert_model_output` for dpmsolver++: the clean-sample prediction.
    fn x0(&self, model_output: &Tensor, x: &Tensor, index: usize) -> Result<Tensor> {
        let (alpha, sigma) = alpha_sigma(self.sigmas[index]);
        match self.prediction {
            Prediction::Epsilon => lincomb(1.0 / alpha, x, -sigma / alpha, model_output),
            Prediction::V => lincomb(alpha, x, -sigma, model_output),
            Prediction::Sample => work(&model_output.to_dtype(x.dtype())?),
        }
    }
}

impl Scheduler for DpmSolverMultistep {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f64 {
        1.0
    }

    fn scale_model_input(&self, sample: &Tensor, index: usize) -> Result<Tensor> {
        check_index(index, self.timesteps.len())?;
        Ok(sample.clone())
    }

    fn step(
        &mut self,
        model_output: &Tensor,
        index: usize,
        sample: &Tensor,
        _noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let n = self.timesteps.len();
        check_index(index, n)?;
        let x = work(sample)?;
        let m0 = self.x0(model_output, &x, index)?;
        let lower_order_final =
            index == n - 1 && (self.euler_at_final || (self.lower_order_final && n < 15) || self.final_zero);
        let previous = self.previous.take().filter(|(i, _)| i + 1 == index);

        let (sigma_t, sigma_s0) = (self.sigmas[index + 1], self.sigmas[index]);
        let (alpha_t, sig_t) = alpha_sigma(sigma_t);
        let (_, sig_s0) = alpha_sigma(sigma_s0);
        let (lambda_t, lambda_s0) = (lambda(sigma_t), lambda(sigma_s0));
        let h = lambda_t - lambda_s0;
        // alpha_t (e^-h - 1); at sigma_t = 0 this is -1 and the step returns x0.
        let phi = alpha_t * ((-h).exp() - 1.0);
        let ratio = sig_t / sig_s0;

        let prev = match previous {
            Some((_, m1)) if !lower_order_final => {
                let h0 = lambda_s0 - lambda(self.sigmas[index - 1]);
                let r0 = h0 / h;
                // x_t = ratio x - phi D0 - 0.5 phi D1, D1 = (m0 - m1) / r0.
                let d = lincomb(-phi * (1.0 + 0.5 / r0), &m0, 0.5 * phi / r0, &m1)?;
                lincomb(ratio, &x, 1.0, &d)?
            }
            _ => {
                if sigma_t == 0.0 {
                    m0.clone()
                } else {
                    lincomb(ratio, &x, -phi, &m0)?
                }
            }
        };
        self.previous = Some((index, m0));
        finish(prev, sample.dtype())
    }

    fn add_noise(&self, original: &Tensor, noise: &Tensor, index: usize) -> Result<Tensor> {
        check_index(index, self.timesteps.len())?;
        let (alpha, sigma) = alpha_sigma(self.sigmas[index]);
        lincomb(alpha, original, sigma, noise)
    }
}
