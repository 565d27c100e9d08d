//! Why this exists: multi-head scaled dot-product attention and diffusers' `Attention`
//! module (`to_q`, `to_k`, `to_v`, `to_out.0`). Queries are processed in chunks so the
//! score matrix of large images (the VAE's mid block at 1024² has 16,384 tokens) never
//! has to exist at once.

use std::sync::Mutex;

use candle_core::{DType, Module, Result, Tensor, TensorId};
use candle_nn::VarBuilder;

use crate::layers::Linear;

/// Largest number of score elements (per batch × head slab) materialised at once.
const MAX_SCORE_ELEMS: usize = 1 << 24;

/// `softmax(q kᵀ · scale) v` for q: [B, H, N, D], k/v: [B, H, M, D]; an optional additive
/// `mask` broadcastable to [B, H, N, M]. Softmax runs in f32 for half-precision inputs.
pub fn sdpa(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64, mask: Option<&Tensor>) -> Result<Tensor> {
    let (b, h, n, _) = q.dims4()?;
    let m = k.dim(2)?;
    let rows = (MAX_SCORE_ELEMS / (b * h * m).max(1)).clamp(1, n.max(1));
    let kt = k.t()?.contiguous()?;
    if rows >= n {
        return attend(q, &kt, v, scale, mask);
    }
    let mut outs = Vec::with_capacity(n.div_ceil(rows));
    for start in (0..n).step_by(rows) {
        let len = rows.min(n - start);
        let qc = q.narrow(2, start, len)?;
        let mc = match mask {
            Some(mk) if mk.dim(2)? == n => Some(mk.narrow(2, start, len)?),
            other => other.cloned(),
        };
        outs.push(attend(&qc, &kt, v, scale, mc.as_ref())?);
    }
    Tensor::cat(&outs, 2)
}

fn attend(q: &Tensor, kt: &Tensor, v: &Tensor, scale: f64, mask: Option<&Tensor>) -> Result<Tensor> {
    let dtype = q.dtype();
    let scores = (q.contiguous()?.matmul(kt)? * scale)?;
    let scores = match mask {
        Some(mk) => scores.broadcast_add(mk)?,
        None => scores,
    };
    let probs = if dtype == DType::F32 {
        candle_nn::ops::softmax_last_dim(&scores)?
    } else {
        candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(dtype)?
    };
    probs.matmul(&v.contiguous()?)
}

/// Splits [B, N, H·D] into [B, H, N, D].
pub fn split_heads(xs: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, n, c) = xs.dims3()?;
    xs.reshape((b, n, heads, c / heads))?.transpose(1, 2)
}

/// Merges [B, H, N, D] into [B, N, H·D].
pub fn merge_heads(xs: &Tensor) -> Result<Tensor> {
    let (b, h, n, d) = xs.dims4()?;
    xs.transpose(1, 2)?.reshape((b, n, h * d))
}

/// diffusers' `Attention` as used by SDXL: self- or cross-attention over tokens.
pub struct Attention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
    scale: f64,
    /// Cross-attention keys and values of the last context seen. The text context is the
    /// same tensor at every denoising step, so its projections are computed once per
    /// generation instead of once per step.
    context_kv: Mutex<Option<(TensorId, Tensor, Tensor)>>,
}

/// Shape of one attention layer.
#[derive(Clone, Copy, Debug)]
pub struct AttentionSpec {
    pub query_dim: usize,
    /// Width of the context (`cross_attention_dim`), `None` for self-attention.
    pub context_dim: Option<usize>,
    pub heads: usize,
    pub head_dim: usize,
    /// Whether q/k/v have biases (the VAE's do, the UNet's do not).
    pub qkv_bias: bool,
}

impl Attention {
    pub fn new(spec: AttentionSpec, vb: VarBuilder) -> Result<Self> {
        let inner = spec.heads * spec.head_dim;
        let ctx = spec.context_dim.unwrap_or(spec.query_dim);
        let lin = |i, o, name: &str| crate::layers::linear_b(i, o, spec.qkv_bias, vb.pp(name));
        Ok(Self {
            to_q: lin(spec.query_dim, inner, "to_q")?,
            to_k: lin(ctx, inner, "to_k")?,
            to_v: lin(ctx, inner, "to_v")?,
            to_out: crate::layers::linear(inner, spec.query_dim, vb.pp("to_out").pp("0"))?,
            heads: spec.heads,
            scale: 1.0 / (spec.head_dim as f64).sqrt(),
            context_kv: Mutex::new(None),
        })
    }

    /// Keys and values of a context, from the cache when it is the same tensor as last time.
    fn context_kv(&self, ctx: &Tensor) -> Result<(Tensor, Tensor)> {
        let mut cache = self.context_kv.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((id, k, v)) = cache.as_ref() {
            if *id == ctx.id() {
                return Ok((k.clone(), v.clone()));
            }
        }
        let (k, v) = (self.to_k.forward(ctx)?, self.to_v.forward(ctx)?);
        *cache = Some((ctx.id(), k.clone(), v.clone()));
        Ok((k, v))
    }

    /// `xs`: [B, N, C]; `context`: [B, M, C'] or `None` for self-attention.
    pub fn forward(&self, xs: &Tensor, context: Option<&Tensor>) -> Result<Tensor> {
        let q = self.to_q.forward(xs)?;
        let (k, v) = match context {
            Some(ctx) => self.context_kv(ctx)?,
            None => (self.to_k.forward(xs)?, self.to_v.forward(xs)?),
        };
        let out = if crate::kernels::enabled() && crate::kernels::cpu_f32(&q) {
            crate::kernels::attention::attention(&q, &k, &v, self.heads, self.scale)?
        } else {
            let split = |t: &Tensor| split_heads(t, self.heads);
            merge_heads(&sdpa(&split(&q)?, &split(&k)?, &split(&v)?, self.scale, None)?)?
        };
        self.to_out.forward(&out)
    }
}

/// Reshapes [B, C, H, W] to tokens [B, H·W, C].
pub fn to_tokens(xs: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = xs.dims4()?;
    xs.permute((0, 2, 3, 1))?.reshape((b, h * w, c))
}

/// Reshapes tokens [B, H·W, C] back to [B, C, H, W].
pub fn from_tokens(xs: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let (b, _, c) = xs.dims3()?;
    xs.reshape((b, h, w, c))?.permute((0, 3, 1, 2))?.contiguous()
}
