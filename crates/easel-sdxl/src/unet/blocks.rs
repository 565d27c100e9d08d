//! Why this exists: the UNet's down, mid and up blocks (diffusers' `DownBlock2D`,
//! `CrossAttnDownBlock2D`, `UNetMidBlock2DCrossAttn`, `UpBlock2D`,
//! `CrossAttnUpBlock2D`): ResNets interleaved with optional transformers, then a
//! resampler. Down blocks emit one skip tensor per layer (and one after downsampling);
//! up blocks consume them last-first.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use crate::layers::resnet::{ResnetBlock, ResnetSpec};
use crate::layers::sampling::{Downsample, Upsample};
use crate::layers::transformer::{Transformer2D, TransformerSpec};

/// What every block of one UNet shares.
#[derive(Clone, Copy, Debug)]
pub struct Common {
    pub temb: usize,
    pub groups: usize,
    pub eps: f64,
    pub context_dim: usize,
    pub linear_projection: bool,
}

/// The transformer of one level: heads and depth, or `None` for plain blocks.
#[derive(Clone, Copy, Debug)]
pub struct Attn {
    pub heads: usize,
    pub layers: usize,
}

impl Common {
    fn resnet(&self, cin: usize, cout: usize, scale: f64) -> ResnetSpec {
        ResnetSpec {
            in_channels: cin,
            out_channels: cout,
            temb_channels: Some(self.temb),
            groups: self.groups,
            eps: self.eps,
            output_scale: scale,
        }
    }

    fn transformer(&self, channels: usize, attn: Attn) -> TransformerSpec {
        TransformerSpec {
            channels,
            heads: attn.heads,
            layers: attn.layers,
            context_dim: self.context_dim,
            groups: self.groups,
            linear_projection: self.linear_projection,
        }
    }
}

/// One down block.
pub struct DownBlock {
    resnets: Vec<ResnetBlock>,
    attentions: Vec<Transformer2D>,
    downsample: Option<Downsample>,
}

/// Shape of one down block.
#[derive(Clone, Copy, Debug)]
pub struct DownSpec {
    pub cin: usize,
    pub cout: usize,
    pub layers: usize,
    pub attn: Option<Attn>,
    pub downsample: bool,
    pub downsample_padding: usize,
}

impl DownBlock {
    pub fn new(spec: DownSpec, c: &Common, vb: VarBuilder) -> Result<Self> {
        let mut resnets = Vec::with_capacity(spec.layers);
        let mut attentions = Vec::new();
        for i in 0..spec.layers {
            let cin = if i == 0 { spec.cin } else { spec.cout };
            resnets.push(ResnetBlock::new(c.resnet(cin, spec.cout, 1.0), vb.pp("resnets").pp(i))?);
            if let Some(a) = spec.attn {
                attentions.push(Transformer2D::new(
                    c.transformer(spec.cout, a),
                    vb.pp("attentions").pp(i),
                )?);
            }
        }
        let downsample = if spec.downsample {
            Some(Downsample::new(
                spec.cout,
                spec.downsample_padding,
                vb.pp("downsamplers").pp(0),
            )?)
        } else {
            None
        };
        Ok(Self {
            resnets,
            attentions,
            downsample,
        })
    }

    /// Returns the output and pushes the skip tensors onto `skips`.
    pub fn forward(&self, xs: &Tensor, temb: &Tensor, ctx: &Tensor, skips: &mut Vec<Tensor>) -> Result<Tensor> {
        let mut xs = xs.clone();
        for (i, resnet) in self.resnets.iter().enumerate() {
            xs = resnet.forward(&xs, Some(temb))?;
            if let Some(attn) = self.attentions.get(i) {
                xs = attn.forward(&xs, ctx)?;
            }
            skips.push(xs.clone());
        }
        if let Some(down) = &self.downsample {
            xs = down.forward(&xs)?;
            skips.push(xs.clone());
        }
        Ok(xs)
    }
}

/// `UNetMidBlock2DCrossAttn`: resnet, then (transformer, resnet) pairs.
pub struct MidBlock {
    first: ResnetBlock,
    pairs: Vec<(Transformer2D, ResnetBlock)>,
}

impl MidBlock {
    pub fn new(channels: usize, attn: Attn, scale: f64, c: &Common, vb: VarBuilder) -> Result<Self> {
        let spec = c.resnet(channels, channels, scale);
        let first = ResnetBlock::new(spec, vb.pp("resnets").pp(0))?;
        let t = Transformer2D::new(c.transformer(channels, attn), vb.pp("attentions").pp(0))?;
        let r = ResnetBlock::new(spec, vb.pp("resnets").pp(1))?;
        Ok(Self {
            first,
            pairs: vec![(t, r)],
        })
    }

    pub fn forward(&self, xs: &Tensor, temb: &Tensor, ctx: &Tensor) -> Result<Tensor> {
        let mut xs = self.first.forward(xs, Some(temb))?;
        for (attn, resnet) in &self.pairs {
            xs = resnet.forward(&attn.forward(&xs, ctx)?, Some(temb))?;
        }
        Ok(xs)
    }
}

/// One up block.
pub struct UpBlock {
    resnets: Vec<ResnetBlock>,
    attentions: Vec<Transformer2D>,
    upsample: Option<Upsample>,
}

/// Shape of one up block (diffusers' naming: `prev` is the incoming width, `skip_in`
/// the width of the deepest skip it receives).
#[derive(Clone, Copy, Debug)]
pub struct UpSpec {
    pub skip_in: usize,
    pub prev: usize,
    pub cout: usize,
    pub layers: usize,
    pub attn: Option<Attn>,
    pub upsample: bool,
}

impl UpBlock {
    pub fn new(spec: UpSpec, c: &Common, vb: VarBuilder) -> Result<Self> {
        let mut resnets = Vec::with_capacity(spec.layers);
        let mut attentions = Vec::new();
        for i in 0..spec.layers {
            let skip = if i == spec.layers - 1 { spec.skip_in } else { spec.cout };
            let cin = if i == 0 { spec.prev } else { spec.cout };
            resnets.push(ResnetBlock::new(
                c.resnet(cin + skip, spec.cout, 1.0),
                vb.pp("resnets").pp(i),
            )?);
            if let Some(a) = spec.attn {
                attentions.push(Transformer2D::new(
                    c.transformer(spec.cout, a),
                    vb.pp("attentions").pp(i),
                )?);
            }
        }
        let upsample = if spec.upsample {
            Some(Upsample::new(spec.cout, vb.pp("upsamplers").pp(0))?)
        } else {
            None
        };
        Ok(Self {
            resnets,
            attentions,
            upsample,
        })
    }

    /// How many skip tensors this block consumes.
    pub fn skips_needed(&self) -> usize {
        self.resnets.len()
    }

    /// Consumes skips from the end of `skips`; upsamples to `size` when given.
    pub fn forward(
        &self,
        xs: &Tensor,
        skips: &mut Vec<Tensor>,
        temb: &Tensor,
        ctx: &Tensor,
        size: Option<(usize, usize)>,
    ) -> Result<Tensor> {
        let mut xs = xs.clone();
        for (i, resnet) in self.resnets.iter().enumerate() {
            let skip = skips
                .pop()
                .ok_or_else(|| candle_core::Error::Msg("unet: skip connections exhausted".into()))?;
            xs = resnet.forward(&Tensor::cat(&[&xs, &skip], 1)?, Some(temb))?;
            if let Some(attn) = self.attentions.get(i) {
                xs = attn.forward(&xs, ctx)?;
            }
        }
        match &self.upsample {
            Some(up) => up.forward(&xs, size),
            None => Ok(xs),
        }
    }
}
