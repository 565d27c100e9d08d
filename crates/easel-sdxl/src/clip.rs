//! Why this exists: the CLIP text encoders (transformers' `CLIPTextModel` and
//! `CLIPTextModelWithProjection`). SDXL conditions on the **penultimate** hidden state
//! of both encoders (no final LayerNorm) and on the projected pooled output of the
//! second; candle-transformers returns the last state after the final norm instead.
//!
//! Flow: token + position embeddings → N causal pre-LN encoder layers (every layer's
//! output kept) → final LayerNorm → pooled = state at the EOS token → `text_projection`.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, VarBuilder};

use crate::layers::Linear;

use crate::config::ClipConfig;
use crate::layers::attention::{merge_heads, sdpa, split_heads};

#[derive(Clone, Copy, Debug)]
enum Act {
    QuickGelu,
    Gelu,
}

impl Act {
    fn apply(self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Act::QuickGelu => xs * candle_nn::ops::sigmoid(&(xs * 1.702)?)?,
            Act::Gelu if crate::kernels::enabled() && crate::kernels::cpu_f32(xs) => {
                crate::kernels::activation::gelu(xs)
            }
            Act::Gelu => xs.gelu_erf(),
        }
    }
}

struct SelfAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
    scale: f64,
}

impl SelfAttention {
    fn new(cfg: &ClipConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        Ok(Self {
            q: crate::layers::linear(d, d, vb.pp("q_proj"))?,
            k: crate::layers::linear(d, d, vb.pp("k_proj"))?,
            v: crate::layers::linear(d, d, vb.pp("v_proj"))?,
            out: crate::layers::linear(d, d, vb.pp("out_proj"))?,
            heads: cfg.num_attention_heads,
            scale: 1.0 / ((d / cfg.num_attention_heads) as f64).sqrt(),
        })
    }

    fn forward(&self, xs: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let q = split_heads(&self.q.forward(xs)?, self.heads)?;
        let k = split_heads(&self.k.forward(xs)?, self.heads)?;
        let v = split_heads(&self.v.forward(xs)?, self.heads)?;
        let o = sdpa(&q, &k, &v, self.scale, Some(mask))?;
        self.out.forward(&merge_heads(&o)?)
    }
}

struct EncoderLayer {
    ln1: LayerNorm,
    attn: SelfAttention,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    act: Act,
}

impl EncoderLayer {
    fn new(cfg: &ClipConfig, act: Act, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        Ok(Self {
            ln1: candle_nn::layer_norm(d, cfg.layer_norm_eps, vb.pp("layer_norm1"))?,
            attn: SelfAttention::new(cfg, vb.pp("self_attn"))?,
            ln2: candle_nn::layer_norm(d, cfg.layer_norm_eps, vb.pp("layer_norm2"))?,
            fc1: crate::layers::linear(d, cfg.intermediate_size, vb.pp("mlp.fc1"))?,
            fc2: crate::layers::linear(cfg.intermediate_size, d, vb.pp("mlp.fc2"))?,
            act,
        })
    }

    fn forward(&self, xs: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let xs = (self.attn.forward(&self.ln1.forward(xs)?, mask)? + xs)?;
        let h = self
            .fc2
            .forward(&self.act.apply(&self.fc1.forward(&self.ln2.forward(&xs)?)?)?)?;
        h + xs
    }
}

/// What SDXL takes from one text encoder.
pub struct TextOutput {
    /// Penultimate hidden state [B, N, D] (no final LayerNorm).
    pub penultimate: Tensor,
    /// Last hidden state after the final LayerNorm [B, N, D].
    pub last: Tensor,
    /// The projected pooled embedding [B, P] (encoders with `text_projection` only).
    pub text_embeds: Option<Tensor>,
}

/// A CLIP text encoder, with or without the pooled projection.
pub struct ClipTextEncoder {
    token_embedding: Embedding,
    position_embedding: Embedding,
    layers: Vec<EncoderLayer>,
    final_norm: LayerNorm,
    projection: Option<Linear>,
    eos_token_id: u32,
    dtype: DType,
}

impl ClipTextEncoder {
    /// Loads `text_model.*` (and `text_projection` when `with_projection`).
    pub(crate) fn new(cfg: &ClipConfig, with_projection: bool, vb: VarBuilder) -> Result<Self> {
        cfg.validate().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let act = if cfg.hidden_act == "gelu" {
            Act::Gelu
        } else {
            Act::QuickGelu
        };
        // transformers ≥ 5 saves `CLIPTextModel` without the `text_model.` prefix.
        let tm = if vb.contains_tensor("text_model.embeddings.token_embedding.weight") {
            vb.pp("text_model")
        } else {
            vb.clone()
        };
        let emb = tm.pp("embeddings");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| EncoderLayer::new(cfg, act, tm.pp("encoder.layers").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let projection = match (with_projection, cfg.projection_dim) {
            (true, Some(p)) => Some(crate::layers::linear_no_bias(
                cfg.hidden_size,
                p,
                vb.pp("text_projection"),
            )?),
            (true, None) => candle_core::bail!("text_encoder_2 config lacks projection_dim"),
            _ => None,
        };
        Ok(Self {
            token_embedding: candle_nn::embedding(cfg.vocab_size, cfg.hidden_size, emb.pp("token_embedding"))?,
            position_embedding: candle_nn::embedding(
                cfg.max_position_embeddings,
                cfg.hidden_size,
                emb.pp("position_embedding"),
            )?,
            layers,
            final_norm: candle_nn::layer_norm(cfg.hidden_size, cfg.layer_norm_eps, tm.pp("final_layer_norm"))?,
            projection,
            eos_token_id: cfg.eos_token_id,
            dtype: vb.dtype(),
        })
    }

    /// Encodes token ids [B, N] (u32). Hidden states are returned in f32.
    pub fn forward(&self, ids: &Tensor) -> Result<TextOutput> {
        let (b, n) = ids.dims2()?;
        let dev = ids.device();
        let pos = Tensor::arange(0u32, n as u32, dev)?.unsqueeze(0)?;
        let mut xs = self
            .token_embedding
            .forward(ids)?
            .broadcast_add(&self.position_embedding.forward(&pos)?)?;
        let mask = causal_mask(n, dev)?.to_dtype(self.dtype)?;
        let mut penultimate = xs.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            xs = layer.forward(&xs, &mask)?;
            if i + 2 == self.layers.len() {
                penultimate = xs.clone();
            }
        }
        if self.layers.len() == 1 {
            penultimate = self
                .token_embedding
                .forward(ids)?
                .broadcast_add(&self.position_embedding.forward(&pos)?)?;
        }
        let last = self.final_norm.forward(&xs)?;
        let text_embeds = match &self.projection {
            Some(p) => Some(p.forward(&self.pooled(&last, ids, b)?)?.to_dtype(DType::F32)?),
            None => None,
        };
        Ok(TextOutput {
            penultimate: penultimate.to_dtype(DType::F32)?,
            last: last.to_dtype(DType::F32)?,
            text_embeds,
        })
    }

    /// The state at each row's EOS token: transformers' legacy rule (argmax of the
    /// ids) when `eos_token_id == 2`, else the first occurrence of `eos_token_id`.
    fn pooled(&self, last: &Tensor, ids: &Tensor, b: usize) -> Result<Tensor> {
        let rows = ids.to_dtype(DType::U32)?.to_vec2::<u32>()?;
        let mut picks = Vec::with_capacity(b);
        for (i, row) in rows.iter().enumerate() {
            let pos = if self.eos_token_id == 2 {
                argmax_first(row)
            } else {
                row.iter().position(|&t| t == self.eos_token_id).unwrap_or(0)
            };
            picks.push(last.get(i)?.get(pos)?.unsqueeze(0)?);
        }
        Tensor::cat(&picks, 0)
    }
}

/// Index of the first maximum (torch's argmax).
fn argmax_first(row: &[u32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Additive causal mask [1, 1, N, N]: 0 on and below the diagonal, −inf above.
fn causal_mask(n: usize, dev: &Device) -> Result<Tensor> {
    let v: Vec<f32> = (0..n * n)
        .map(|i| if i % n > i / n { f32::NEG_INFINITY } else { 0.0 })
        .collect();
    Tensor::from_vec(v, (1, 1, n, n), dev)
}
