//! Why this exists: SDXL-base's default sampler, diffusers' `EulerDiscreteScheduler`:
//! the first-order Euler ODE step in sigma space (Karras et al. 2022, Algorithm 2
//! without churn), with float timesteps interpolated from the training sigmas, and
//! optionally the Karras sigma ramp.

use candle_core::Tensor;

use super::betas::{alphas_cumprod, karras_sigmas, np_interp_grid, np_log_f32, sigma_to_t, train_sigmas};
use super::config::{Prediction, SchedulerConfig, Spacing};
use super::math::{check_index, finish, lincomb, work};
use super::scheduler::Scheduler;
use super::timesteps;
use crate::noise::NoiseSource;
use crate::{Error, Result};

/// Euler (diffusers `EulerDiscreteScheduler`, no churn).
#[derive(Debug, Clone)]
pub struct EulerDiscrete {
    schedule: SigmaSchedule,
    prediction: Prediction,
}

/// The sigma schedule shared by Euler and Euler Ancestral: float32 timesteps, and
/// float32 sigmas (one per timestep, then the final sigma) as f64.
#[derive(Debug, Clone)]
pub(crate) struct SigmaSchedule {
    pub timesteps: Vec<f64>,
    pub sigmas: Vec<f64>,
    pub init_noise_sigma: f64,
}

impl SigmaSchedule {
    /// diffusers' Euler-family `set_timesteps`. `karras` and `final_sigma_min` are
    /// Euler-only options (Euler Ancestral passes `false`).
    pub(crate) fn new(config: &SchedulerConfig, steps: usize, karras: bool, final_sigma_min: bool) -> Result<Self> {
        let spacing = config.spacing()?;
        let ac = alphas_cumprod(config, true)?;
        let train = train_sigmas(&ac);
        let mut ts = timesteps::euler(config, spacing, steps);
        let mut sigmas: Vec<f64> = ts.iter().map(|&t| np_interp_grid(t, &train)).collect();
        if karras {
            let log_sigmas: Vec<f32> = train.iter().map(|&s| np_log_f32(s)).collect();
            let sigma_min = config.sigma_min.unwrap_or(sigmas[sigmas.len() - 1]);
            let sigma_max = config.sigma_max.unwrap_or(sigmas[0]);
            sigmas = karras_sigmas(sigma_min, sigma_max, steps);
            ts = sigmas
                .iter()
                .map(|&s| sigma_to_t(s, &log_sigmas) as f32 as f64)
                .collect();
        }
        let last = if final_sigma_min {
            ((1.0 - ac[0]) / ac[0]).sqrt() as f64
        } else {
            0.0
        };
        sigmas.push(last);
        let sigmas: Vec<f64> = sigmas.into_iter().map(|s| s as f32 as f64).collect();
        let max = sigmas.iter().fold(f32::MIN, |m, &s| m.max(s as f32));
        let init_noise_sigma = match spacing {
            Spacing::Linspace | Spacing::Trailing => max,
            Spacing::Leading => (max * max + 1.0).sqrt(),
        } as f64;
        Ok(Self {
            timesteps: ts,
            sigmas,
            init_noise_sigma,
        })
    }

    /// `sample / sqrt(sigma^2 + 1)` at step `index`.
    pub(crate) fn scale_model_input(&self, sample: &Tensor, index: usize) -> Result<Tensor> {
        check_index(index, self.timesteps.len())?;
        let s = self.sigmas[index] as f32;
        let denom = (s * s + 1.0).sqrt() as f64;
        Ok((sample / denom)?)
    }

    /// The sigmas at step `index` and after it.
    pub(crate) fn sigma_pair(&self, index: usize) -> Result<(f64, f64)> {
        check_index(index, self.timesteps.len())?;
        Ok((self.sigmas[index], self.sigmas[index + 1]))
    }

    /// `original + noise * sigma` at step `index`.
    pub(crate) fn add_noise(&self, original: &Tensor, noise: &Tensor, index: usize) -> Result<Tensor> {
        check_index(index, self.timesteps.len())?;
        lincomb(1.0, original, self.sigmas[index], noise)
    }
}

/// `(a, b)` with the predicted clean sample `x0 = a * sample + b * model_output` at
/// `sigma` (Karras-style preconditioning, as diffusers' Euler samplers compute it).
pub(crate) fn x0_coefficients(prediction: Prediction, sigma: f64) -> (f64, f64) {
    match prediction {
        Prediction::Epsilon => (1.0, -sigma),
        Prediction::V => {
            let s2 = sigma * sigma + 1.0;
            (1.0 / s2, -sigma / s2.sqrt())
        }
        Prediction::Sample => (0.0, 1.0),
    }
}

impl EulerDiscrete {
    /// Sets up `steps` inference steps for `config`.
    pub fn new(config: &SchedulerConfig, steps: usize) -> Result<Self> {
        let prediction = config.prediction("euler", &[Prediction::Epsilon, Prediction::V, Prediction::Sample])?;
        config.reject_unsupported_sigmas()?;
        if config.interpolation_type != "linear" {
            return Err(Error::Unsupported(format!(
                "interpolation_type \"{}\" (supported: linear)",
                config.interpolation_type
            )));
        }
        if config.timestep_type != "discrete" && prediction == Prediction::V {
            return Err(Error::Unsupported(format!(
                "timestep_type \"{}\" with v_prediction (supported: discrete)",
                config.timestep_type
            )));
        }
        let schedule = SigmaSchedule::new(config, steps, config.use_karras_sigmas, config.final_sigma_is_min()?)?;
        Ok(Self { schedule, prediction })
    }

    /// The sigmas, one per timestep plus the final one (float32 values).
    pub fn sigmas(&self) -> &[f64] {
        &self.schedule.sigmas
    }
}

impl Scheduler for EulerDiscrete {
    fn timesteps(&self) -> &[f64] {
        &self.schedule.timesteps
    }

    fn init_noise_sigma(&self) -> f64 {
        self.schedule.init_noise_sigma
    }

    fn scale_model_input(&self, sample: &Tensor, index: usize) -> Result<Tensor> {
        self.schedule.scale_model_input(sample, index)
    }

    fn step(
        &mut self,
        model_output: &Tensor,
        index: usize,
        sample: &Tensor,
        _noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let (sigma, sigma_next) = self.schedule.sigma_pair(index)?;
        let dt = sigma_next - sigma;
        // x0 = a x + b m; d = (x - x0) / sigma; x' = x + d dt.
        let (a, b) = x0_coefficients(self.prediction, sigma);
        let x = work(sample)?;
        let prev = lincomb(1.0 + dt * (1.0 - a) / sigma, &x, -b * dt / sigma, model_output)?;
        finish(prev, sample.dtype())
    }

    fn add_noise(&self, original: &Tensor, noise: &Tensor, index: usize) -> Result<Tensor> {
        self.schedule.add_noise(original, noise, index)
    }
}
