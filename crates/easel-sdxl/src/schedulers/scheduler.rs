//! Why this exists: the one interface every sampler implements and the pipeline drives.
//! It lives apart from `mod.rs` so the samplers import it from a sibling, not from the
//! module that re-exports them.

use candle_core::Tensor;

use crate::noise::NoiseSource;
use crate::Result;

/// A diffusion sampler set up for a fixed number of inference steps.
pub trait Scheduler: Send {
    /// The timesteps fed to the UNet, first to last (one per step index).
    fn timesteps(&self) -> &[f64];
    /// The factor applied to unit-variance initial noise.
    fn init_noise_sigma(&self) -> f64;
    /// Scales the latents before the UNet at step `index`.
    fn scale_model_input(&self, sample: &Tensor, index: usize) -> Result<Tensor>;
    /// One denoising step from `sample` at `index` given the UNet's `model_output`.
    fn step(
        &mut self,
        model_output: &Tensor,
        index: usize,
        sample: &Tensor,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor>;
    /// Noises clean latents to the noise level of step `index` (image-to-image).
    fn add_noise(&self, original: &Tensor, noise: &Tensor, index: usize) -> Result<Tensor>;
}
