//! Why this exists: every random draw of a generation (initial latents, the VAE's
//! posterior sample, img2img's added noise, ancestral sampler noise) goes through one
//! [`NoiseSource`], so a run is reproducible from its seeds and tests can replay the
//! exact noise diffusers drew.
//!
//! Per-image seeds: image `i` of a batch draws from its own generator seeded with
//! `seed + i` (as diffusers does with a list of generators), so image `i` is the same
//! whatever the batch size.

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use crate::Result;

/// A source of standard-normal noise.
pub trait NoiseSource {
    /// Draws a tensor of `shape` (`[batch, ...]`) of independent N(0, 1) samples.
    fn randn(&mut self, shape: &[usize], device: &Device) -> Result<Tensor>;
}

/// Seeded noise: one ChaCha generator per batch element, seeded `seed + i`.
pub struct SeededNoise {
    rngs: Vec<rand::rngs::StdRng>,
}

impl SeededNoise {
    /// One generator per image, seeded `seed`, `seed + 1`, ...
    pub fn new(seed: u64, batch: usize) -> Self {
        let rngs = (0..batch)
            .map(|i| rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(i as u64)))
            .collect();
        Self { rngs }
    }
}

impl NoiseSource for SeededNoise {
    fn randn(&mut self, shape: &[usize], device: &Device) -> Result<Tensor> {
        let batch = shape.first().copied().unwrap_or(1);
        if batch != self.rngs.len() {
            return Err(crate::Error::invalid(format!(
                "noise for batch {batch} requested from a source seeded for {} images",
                self.rngs.len()
            )));
        }
        let per: usize = shape.iter().skip(1).product();
        let mut data = Vec::with_capacity(batch * per);
        for rng in &mut self.rngs {
            data.extend((0..per).map(|_| {
                let v: f32 = StandardNormal.sample(rng);
                v
            }));
        }
        Ok(Tensor::from_vec(data, shape, device)?)
    }
}

/// Replays recorded tensors in order (tests use it to feed diffusers' own noise).
pub struct ReplayNoise {
    queue: std::collections::VecDeque<Tensor>,
}

impl ReplayNoise {
    /// Replays `draws` first to last.
    pub fn new(draws: Vec<Tensor>) -> Self {
        Self { queue: draws.into() }
    }

    /// How many recorded draws have not been used.
    pub fn remaining(&self) -> usize {
        self.queue.len()
    }
}

impl NoiseSource for ReplayNoise {
    fn randn(&mut self, shape: &[usize], device: &Device) -> Result<Tensor> {
        let t = self
            .queue
            .pop_front()
            .ok_or_else(|| crate::Error::invalid("replayed noise exhausted"))?;
        if t.dims() != shape {
            return Err(crate::Error::invalid(format!(
                "replayed noise has shape {:?}, the pipeline asked for {shape:?}",
                t.dims()
            )));
        }
        Ok(t.to_device(device)?.to_dtype(DType::F32)?)
    }
}
