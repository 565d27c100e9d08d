//! Why this exists: diffusers' `EulerAncestralDiscreteScheduler` ("euler_a"): each
//! step goes down to `sigma_down` deterministically, then adds fresh noise of size
//! `sigma_up`. The noise comes from the generation's [`NoiseSource`], one draw of the
//! sample's shape per step (the last step too, as diffusers does), so runs replay.

use candle_core::Tensor;

use super::config::{Prediction, SchedulerConfig};
use super::euler::{x0_coefficients, SigmaSchedule};
use super::math::{finish, lincomb, work};
use super::scheduler::Scheduler;
use crate::noise::NoiseSource;
use crate::Result;

/// Euler Ancestral (diffusers `EulerAncestralDiscreteScheduler`).
#[derive(Debug, Clone)]
pub struct EulerAncestral {
    schedule: SigmaSchedule,
    prediction: Prediction,
}

impl EulerAncestral {
    /// Sets up `steps` inference steps for `config`. diffusers' Euler Ancestral has no
    /// Karras sigmas or final-sigma option, so those config keys are ignored.
    pub fn new(config: &SchedulerConfig, steps: usize) -> Result<Self> {
        let prediction = config.prediction("euler_a", &[Prediction::Epsilon, Prediction::V])?;
        let schedule = SigmaSchedule::new(config, steps, false, false)?;
        Ok(Self { schedule, prediction })
    }

    /// The sigmas, one per timestep plus the final 0 (float32 values).
    pub fn sigmas(&self) -> &[f64] {
        &self.schedule.sigmas
    }
}

impl Scheduler for EulerAncestral {
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
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let (sigma, sigma_to) = self.schedule.sigma_pair(index)?;
        let sigma_up = (sigma_to * sigma_to * (sigma * sigma - sigma_to * sigma_to) / (sigma * sigma)).sqrt();
        let sigma_down = (sigma_to * sigma_to - sigma_up * sigma_up).max(0.0).sqrt();
        let dt = sigma_down - sigma;
        let (a, b) = x0_coefficients(self.prediction, sigma);
        let x = work(sample)?;
        let prev = lincomb(1.0 + dt * (1.0 - a) / sigma, &x, -b * dt / sigma, model_output)?;
        let eps = noise.randn(model_output.dims(), model_output.device())?;
        let prev = lincomb(1.0, &prev, sigma_up, &eps)?;
        finish(prev, sample.dtype())
    }

    fn add_noise(&self, original: &Tensor, noise: &Tensor, index: usize) -> Result<Tensor> {
        self.schedule.add_noise(original, noise, index)
    }
}
