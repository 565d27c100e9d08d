//! Why this exists: turning a prompt into SDXL conditioning by A1111's rules (see the
//! module docs of [`crate::prompt`]), and the entry point the pipeline calls for either
//! prompt mode. Each chunk goes through both text encoders on its own; weighting and the
//! mean restoration happen per encoder and chunk; chunks are joined along the sequence.

use candle_core::Tensor;

use super::chunks::{cut, Chunk, Chunks, COMMA_BACKTRACK};
use super::parse::{parse, Piece};
use super::truncation::PlainTruncation;
use super::{PromptMode, PromptReport};
use crate::clip::ClipTextEncoder;
use crate::model::SdxlModel;
use crate::pipeline::PromptEmbeds;
use crate::tokenizer::ClipTokenizer;
use crate::{Error, Result};

impl SdxlModel {
    /// Conditioning for a request in `mode`, in the order [uncond, cond] when `guided`.
    pub fn encode_prompt_with(
        &self,
        mode: PromptMode,
        prompt: &str,
        negative: Option<&str>,
        guided: bool,
        batch: usize,
    ) -> Result<PromptEmbeds> {
        let encode = |text: &str| match mode {
            PromptMode::Plain => self.encode_text(text),
            PromptMode::A1111 => self.encode_text_a1111(text),
        };
        let repeat = |c: &Tensor, p: &Tensor| -> Result<(Tensor, Tensor)> {
            Ok((c.repeat((batch, 1, 1))?, p.repeat((batch, 1))?))
        };
        let zeros = guided && negative.is_none() && self.pipeline_config.force_zeros_for_empty_prompt;
        if guided && !zeros && mode == PromptMode::Plain {
            // Both texts have one 77-token chunk: one batched pass of each encoder.
            let [(nctx, npooled), (ctx, pooled)] = self.encode_text_pair(negative.unwrap_or(""), prompt)?;
            let ((c, p), (nc, np)) = (repeat(&ctx, &pooled)?, repeat(&nctx, &npooled)?);
            return Ok(PromptEmbeds {
                context: Tensor::cat(&[nc, c], 0)?,
                pooled: Tensor::cat(&[np, p], 0)?,
            });
        }
        let (ctx, pooled) = encode(prompt)?;
        if !guided {
            let (context, pooled) = repeat(&ctx, &pooled)?;
            return Ok(PromptEmbeds { context, pooled });
        }
        let (nctx, npooled) = match negative {
            None if zeros => (ctx.zeros_like()?, pooled.zeros_like()?),
            other => encode(other.unwrap_or(""))?,
        };
        let (ctx, nctx) = self.same_length(ctx, nctx)?;
        let ((c, p), (nc, np)) = (repeat(&ctx, &pooled)?, repeat(&nctx, &npooled)?);
        Ok(PromptEmbeds {
            context: Tensor::cat(&[nc, c], 0)?,
            pooled: Tensor::cat(&[np, p], 0)?,
        })
    }

    /// One prompt by A1111's rules: ([1, 77·k, D1+D2], pooled [1, P]).
    pub fn encode_text_a1111(&self, text: &str) -> Result<(Tensor, Tensor)> {
        let pieces = parse(text);
        let mut c1 = cut(&self.tokenizer, &pieces, COMMA_BACKTRACK);
        let mut c2 = cut(&self.tokenizer_2, &pieces, COMMA_BACKTRACK);
        let n = c1.chunks.len().max(c2.chunks.len());
        pad_chunks(&mut c1, &self.tokenizer, n);
        pad_chunks(&mut c2, &self.tokenizer_2, n);
        let (z1, _) = self.encode_chunks(&self.text_encoder, &self.tokenizer, &c1.chunks)?;
        let (z2, pooled) = self.encode_chunks(&self.text_encoder_2, &self.tokenizer_2, &c2.chunks)?;
        let pooled = pooled.ok_or_else(|| Error::Unsupported("text_encoder_2 has no projection".into()))?;
        Ok((Tensor::cat(&[z1, z2], 2)?, pooled))
    }

    /// What `text` becomes in `mode`, without running the encoders.
    pub fn prompt_report(&self, text: &str, mode: PromptMode) -> PromptReport {
        let body = self.tokenizer.max_len().saturating_sub(2);
        match mode {
            PromptMode::Plain => {
                let n = self.tokenizer.encode_body(text).len();
                let cut = PlainTruncation::of(&self.tokenizer, text);
                PromptReport {
                    mode,
                    pieces: vec![Piece::Text {
                        text: text.into(),
                        weight: 1.0,
                    }],
                    chunks: 1,
                    token_count: n.min(body),
                    weighted: false,
                    truncated: cut.dropped > 0,
                    dropped_tokens: cut.dropped,
                }
            }
            PromptMode::A1111 => {
                let pieces = parse(text);
                let c = cut(&self.tokenizer, &pieces, COMMA_BACKTRACK);
                let weighted = c.chunks.iter().any(Chunk::is_weighted);
                PromptReport {
                    mode,
                    pieces,
                    chunks: c.chunks.len(),
                    token_count: c.token_count,
                    weighted,
                    truncated: false,
                    dropped_tokens: 0,
                }
            }
        }
    }

    /// Encodes and weights each chunk: ([1, 77·k, D], the first chunk's pooled embedding).
    fn encode_chunks(
        &self,
        enc: &ClipTextEncoder,
        tok: &ClipTokenizer,
        chunks: &[Chunk],
    ) -> Result<(Tensor, Option<Tensor>)> {
        let mut parts = Vec::with_capacity(chunks.len());
        let mut pooled = None;
        for chunk in chunks {
            let ids = Tensor::new(chunk.ids_padded_with(tok.eos_id(), tok.pad_id()), &self.device)?.unsqueeze(0)?;
            let out = enc.forward(&ids)?;
            parts.push(emphasize(&out.penultimate, &chunk.weights)?);
            if pooled.is_none() {
                pooled = out.text_embeds;
            }
        }
        Ok((Tensor::cat(&parts, 1)?, pooled))
    }

    /// Extends the shorter of two contexts with empty-prompt chunks.
    fn same_length(&self, a: Tensor, b: Tensor) -> Result<(Tensor, Tensor)> {
        let (la, lb) = (a.dim(1)?, b.dim(1)?);
        if la == lb {
            return Ok((a, b));
        }
        let (empty, _) = self.encode_text_a1111("")?;
        let extend = |t: Tensor, by: usize| -> Result<Tensor> {
            let reps = by / empty.dim(1)?;
            Ok(Tensor::cat(&[t, empty.repeat((1, reps, 1))?], 1)?)
        };
        if la < lb {
            Ok((extend(a, lb - la)?, b))
        } else {
            Ok((a, extend(b, la - lb)?))
        }
    }
}

/// Appends empty-prompt chunks until there are `n`.
fn pad_chunks(c: &mut Chunks, tok: &ClipTokenizer, n: usize) {
    while c.chunks.len() < n {
        let empty = cut(
            tok,
            &[Piece::Text {
                text: String::new(),
                weight: 1.0,
            }],
            COMMA_BACKTRACK,
        );
        c.chunks.extend(empty.chunks);
    }
}

/// A1111's "Original" emphasis: `z · w`, rescaled so the chunk's mean is unchanged.
fn emphasize(z: &Tensor, weights: &[f64]) -> Result<Tensor> {
    let original = z.mean_all()?;
    let w: Vec<f32> = weights.iter().map(|&w| w as f32).collect();
    let w = Tensor::from_vec(w, (1, weights.len(), 1), z.device())?.to_dtype(z.dtype())?;
    let z = z.broadcast_mul(&w)?;
    let ratio = (original / z.mean_all()?)?;
    Ok(z.broadcast_mul(&ratio)?)
}
