//! Why this exists: the samplers that turn UNet noise predictions into latents.
//! Timesteps are floats (sigma-space samplers interpolate between training steps),
//! unlike candle's integer-timestep trait. Each sampler reproduces diffusers'
//! scheduler of the same name with SDXL's scheduler config.
//!
//! Flow of one generation: `build` → `init_noise_sigma` scales the initial latents →
//! for each step index `i`: `scale_model_input(x, i)` → UNet → `step(eps, i, x)`.
//! Image-to-image starts at a later index `begin` after `add_noise(x0, noise, begin)`.

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
