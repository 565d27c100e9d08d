//! Why this exists: sinusoidal timestep features (diffusers' `Timesteps`) and the MLP
//! that embeds them (`TimestepEmbedding`). SDXL uses both twice: for the diffusion
//! timestep and for the six `time_ids` of its added conditioning.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::layers::Linear;

/// Sinusoidal features of scalar inputs.
#[derive(Clone, Copy, Debug)]
pub struct Timesteps {
    pub dim: usize,
    pub flip_sin_to_cos: bool,
    pub freq_shift: f64,
}

/// diffusers' `max_period`.
const MAX_PERIOD: f64 = 10_000.0;

impl Timesteps {
    /// `ts`: [N] (any float dtype) → [N, dim] in f32.
    pub fn forward(&self, ts: &Tensor) -> Result<Tensor> {
        let half = self.dim / 2;
        let freqs = frequencies(half, self.freq_shift, ts.device())?;
        let args = ts
            .to_dtype(DType::F32)?
            .unsqueeze(1)?
            .broadcast_mul(&freqs.unsqueeze(0)?)?;
        let (sin, cos) = (args.sin()?, args.cos()?);
        let emb = if self.flip_sin_to_cos {
            Tensor::cat(&[cos, sin], 1)?
        } else {
            Tensor::cat(&[sin, cos], 1)?
        };
        if self.dim % 2 == 1 {
            emb.pad_with_zeros(1, 0, 1)
        } else {
            Ok(emb)
        }
    }
}

/// `exp(-ln(max_period) * i / (half - shift))` for i in 0..half, computed in f32 as torch does.
fn frequencies(half: usize, shift: f64, device: &Device) -> Result<Tensor> {
    let denom = half as f32 - shift as f32;
    let ln = -(MAX_PERIOD as f32).ln();
    let v: Vec<f32> = (0..half).map(|i| (ln * i as f32 / denom).exp()).collect();
    Tensor::from_vec(v, half, device)
}

/// `linear_2(silu(linear_1(x)))`.
pub struct TimestepEmbedding {
    linear_1: Linear,
    linear_2: Linear,
}

impl TimestepEmbedding {
    pub fn new(cin: usize, dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            linear_1: crate::layers::linear(cin, dim, vb.pp("linear_1"))?,
            linear_2: crate::layers::linear(dim, dim, vb.pp("linear_2"))?,
        })
    }

    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = candle_nn::ops::silu(&self.linear_1.forward(xs)?)?;
        self.linear_2.forward(&xs)
    }
}
