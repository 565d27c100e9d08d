//! Why this exists: diffusers' `DDIMScheduler` with `eta = 0` (Song et al. 2020): the
//! deterministic DDIM update on integer timesteps, indexing the training
//! `alphas_cumprod` directly. Its previous timestep is always `t - T // steps`
//! (whatever the spacing) and past the end it uses `final_alpha_cumprod`, which SDXL
//! (`set_alpha_to_one = false`) takes from `alphas_cumprod[0]`.

use candle_core::Tensor;

use super::betas::alphas_cumprod;
use super::config::{Prediction, SchedulerConfig};
use super::math::{check_index, finish, lincomb, work};
use super::scheduler::Scheduler;
use super::timesteps;
use crate::noise::NoiseSource;
use crate::{Error, Result};

/// DDIM with `eta = 0`.
#[derive(Debug, Clone)]
pub struct Ddim {
    timesteps: Vec<f64>,
    alphas_cumprod: Vec<f32>,
    final_alpha_cumprod: f32,
    /// `num_train_timesteps // steps`: the distance to the previous timestep.
    step_ratio: i64,
    prediction: Prediction,
    /// `Some(r)`: clamp the predicted clean sample to `[-r, r]`.
    clip: Option<f64>,
}

impl Ddim {
    /// Sets up `steps` inference steps for `config`.
    pub fn new(config: &SchedulerConfig, steps: usize) -> Result<Self> {
        let prediction = config.prediction("ddim", &[Prediction::Epsilon, Prediction::V, Prediction::Sample])?;
        config.reject_unsupported_sigmas()?;
        let spacing = config.spacing()?;
        let ac = alphas_cumprod(config, false)?;
        let train = config.num_train_timesteps as i64;
        let ts = timesteps::ddim(config, spacing, steps);
        if let Some(bad) = ts.iter().find(|&&t| t < 0 || t >= train) {
            return Err(Error::invalid(format!(
                "ddim with {steps} steps and {} spacing gives timestep {bad}, outside \
                 the training range 0..{train}; choose another step count",
                config.timestep_spacing
            )));
        }
        Ok(Self {
            timesteps: ts.into_iter().map(|t| t as f64).collect(),
            final_alpha_cumprod: if config.set_alpha_to_one { 1.0 } else { ac[0] },
            alphas_cumprod: ac,
            step_ratio: train / steps as i64,
            prediction,
            clip: config.clip_sample.then_some(config.clip_sample_range),
        })
    }

    fn alpha_at(&self, index: usize) -> f64 {
        self.alphas_cumprod[self.timesteps[index] as usize] as f64
    }
}

impl Scheduler for Ddim {
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
        check_index(index, self.timesteps.len())?;
        let t = self.timesteps[index] as i64;
        let prev_t = t - self.step_ratio;
        let a_t = self.alpha_at(index);
        let a_prev = if prev_t >= 0 {
            self.alphas_cumprod[prev_t as usize]
        } else {
            self.final_alpha_cumprod
        } as f64;
        let (sa, sb) = (a_t.sqrt(), (1.0 - a_t).sqrt());
        // x0 = x0a x + x0b m, eps = ea x + eb m.
        let ((x0a, x0b), (ea, eb)) = match self.prediction {
            Prediction::Epsilon => ((1.0 / sa, -sb / sa), (0.0, 1.0)),
            Prediction::V => ((sa, -sb), (sb, sa)),
            Prediction::Sample => ((0.0, 1.0), (1.0 / sb, -sa / sb)),
        };
        let (cx, ce) = (a_prev.sqrt(), (1.0 - a_prev).sqrt());
        let x = work(sample)?;
        let prev = match self.clip {
            None => lincomb(cx * x0a + ce * ea, &x, cx * x0b + ce * eb, model_output)?,
            Some(r) => {
                let x0 = lincomb(x0a, &x, x0b, model_output)?.clamp(-r, r)?;
                let eps = lincomb(ea, &x, eb, model_output)?;
                lincomb(cx, &x0, ce, &eps)?
            }
        };
        finish(prev, sample.dtype())
    }

    fn add_noise(&self, original: &Tensor, noise: &Tensor, index: usize) -> Result<Tensor> {
        check_index(index, self.timesteps.len())?;
        let a = self.alpha_at(index);
        lincomb(a.sqrt(), original, (1.0 - a).sqrt(), noise)
    }
}
