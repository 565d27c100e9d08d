//! Why this exists: diffusers' `Transformer2DModel` and `BasicTransformerBlock`, the
//! cross-attention layers through which the text conditions the UNet.
//! Flow: GroupNorm → proj_in → N × (self-attn, cross-attn, GEGLU feed-forward, each
//! pre-LayerNorm with a residual) → proj_out → + input.

use candle_core::{Module, Result, Tensor};
use candle_nn::{LayerNorm, VarBuilder};

use crate::layers::Linear;

use super::attention::{from_tokens, to_tokens, Attention, AttentionSpec};
use super::{conv2d, group_norm, Conv2d, GroupNorm};

/// diffusers' LayerNorm epsilon inside transformer blocks.
const BLOCK_NORM_EPS: f64 = 1e-5;
/// diffusers' GroupNorm epsilon at the entry of `Transformer2DModel`.
const ENTRY_NORM_EPS: f64 = 1e-6;

/// Shape of one `Transformer2DModel`.
#[derive(Clone, Copy, Debug)]
pub struct TransformerSpec {
    pub channels: usize,
    pub heads: usize,
    pub layers: usize,
    pub context_dim: usize,
    pub groups: usize,
    pub linear_projection: bool,
}

/// `GEGLU`: `proj` to twice the inner width, `x · gelu(gate)`, then `net.2`.
struct FeedForward {
    proj: Linear,
    out: Linear,
}

impl FeedForward {
    fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        let inner = 4 * dim;
        Ok(Self {
            proj: crate::layers::linear(dim, 2 * inner, vb.pp("net.0.proj"))?,
            out: crate::layers::linear(inner, dim, vb.pp("net.2"))?,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let h = self.proj.forward(xs)?;
        let h = if crate::kernels::enabled() && crate::kernels::cpu_f32(&h) {
            crate::kernels::activation::geglu(&h)?
        } else {
            let chunks = h.chunk(2, candle_core::D::Minus1)?;
            (&chunks[0] * chunks[1].gelu_erf()?)?
        };
        self.out.forward(&h)
    }
}

/// One `BasicTransformerBlock`.
struct Block {
    norm1: LayerNorm,
    attn1: Attention,
    norm2: LayerNorm,
    attn2: Attention,
    norm3: LayerNorm,
    ff: FeedForward,
}

impl Block {
    fn new(dim: usize, heads: usize, context_dim: usize, vb: VarBuilder) -> Result<Self> {
        let spec = AttentionSpec {
            query_dim: dim,
            context_dim: None,
            heads,
            head_dim: dim / heads,
            qkv_bias: false,
        };
        let cross = AttentionSpec {
            context_dim: Some(context_dim),
            ..spec
        };
        let ln = |name: &str| candle_nn::layer_norm(dim, BLOCK_NORM_EPS, vb.pp(name));
        Ok(Self {
            norm1: ln("norm1")?,
            attn1: Attention::new(spec, vb.pp("attn1"))?,
            norm2: ln("norm2")?,
            attn2: Attention::new(cross, vb.pp("attn2"))?,
            norm3: ln("norm3")?,
            ff: FeedForward::new(dim, vb.pp("ff"))?,
        })
    }

    fn forward(&self, xs: &Tensor, context: &Tensor) -> Result<Tensor> {
        let xs = (self.attn1.forward(&self.norm1.forward(xs)?, None)? + xs)?;
        let xs = (self.attn2.forward(&self.norm2.forward(&xs)?, Some(context))? + &xs)?;
        self.ff.forward(&self.norm3.forward(&xs)?)? + xs
    }
}

/// Linear or 1×1-conv projection, as the config's `use_linear_projection` says.
enum Proj {
    Linear(Linear),
    Conv(Conv2d),
}

/// diffusers' `Transformer2DModel` (continuous input).
pub struct Transformer2D {
    norm: GroupNorm,
    proj_in: Proj,
    blocks: Vec<Block>,
    proj_out: Proj,
}

impl Transformer2D {
    pub fn new(spec: TransformerSpec, vb: VarBuilder) -> Result<Self> {
        let c = spec.channels;
        let proj = |name: &str| -> Result<Proj> {
            Ok(if spec.linear_projection {
                Proj::Linear(crate::layers::linear(c, c, vb.pp(name))?)
            } else {
                Proj::Conv(conv2d(c, c, 1, 1, 0, vb.pp(name))?)
            })
        };
        let blocks = (0..spec.layers)
            .map(|i| Block::new(c, spec.heads, spec.context_dim, vb.pp("transformer_blocks").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            norm: group_norm(spec.groups, c, ENTRY_NORM_EPS, vb.pp("norm"))?,
            proj_in: proj("proj_in")?,
            blocks,
            proj_out: proj("proj_out")?,
        })
    }

    /// `xs`: [B, C, H, W]; `context`: [B, 77, cross_attention_dim].
    pub fn forward(&self, xs: &Tensor, context: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = xs.dims4()?;
        let normed = self.norm.forward(xs)?;
        let mut tokens = match &self.proj_in {
            Proj::Linear(l) => l.forward(&to_tokens(&normed)?)?,
            Proj::Conv(c) => to_tokens(&c.forward(&normed)?)?,
        };
        for block in &self.blocks {
            tokens = block.forward(&tokens, context)?;
        }
        let out = match &self.proj_out {
            Proj::Linear(l) => from_tokens(&l.forward(&tokens)?, h, w)?,
            Proj::Conv(c) => c.forward(&from_tokens(&tokens, h, w)?)?,
        };
        out + xs
    }
}
