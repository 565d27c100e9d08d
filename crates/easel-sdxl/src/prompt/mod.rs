//! Prompts written for AUTOMATIC1111: attention weights, `BREAK`, and prompts longer than
//! CLIP's 77 tokens. Off by default ([`PromptMode::Plain`] is diffusers' behaviour: no
//! syntax, truncation at 77 tokens), so plain prompts still match diffusers exactly.
//!
//! [`PromptMode::A1111`] implements A1111's "Original" emphasis, for each SDXL text encoder
//! separately (CLIP-L with its own tokenizer, OpenCLIP-G with its own):
//!
//! 1. Parse ([`parse`]): `(text)` ×1.1, `[text]` ÷1.1, `(text:1.3)` ×1.3, nested groups
//!    multiply, `\(` `\)` `\[` `\]` `\\` are literal, `BREAK` starts a new chunk.
//! 2. Cut ([`chunks`]): each piece is tokenized alone; tokens fill chunks of 75; a full
//!    chunk moves the tokens after a comma seen within the last 20 tokens to the next
//!    chunk; each chunk becomes BOS + 75 tokens (EOS-padded) + EOS, weight 1 at BOS, EOS
//!    and padding. For OpenCLIP-G every id after the first EOS becomes its pad id (0).
//! 3. Encode each chunk on its own: penultimate hidden state `z` [1, 77, D].
//! 4. Weight and restore the mean: `m = mean(z)`, `z ← z · w` (per token),
//!    `z ← z · (m / mean(z))` — the mean over the whole [1, 77, D] chunk of one prompt.
//! 5. Concatenate the chunks along the sequence axis ([1, 77·k, D]), then the two
//!    encoders along the feature axis. The pooled embedding is OpenCLIP-G's of chunk 0,
//!    unweighted (A1111 takes `pooled` from the first chunk).
//! 6. Prompt and negative prompt of different chunk counts: the shorter is extended with
//!    the encoding of the empty prompt, chunk by chunk (A1111's `pad_cond_uncond` option,
//!    also compel's convention); A1111's default instead runs the UNet twice. An absent
//!    negative prompt stays diffusers' zeros, shaped like the prompt.
//!
//! If the two tokenizers cut a prompt into different numbers of chunks (different
//! vocabularies), the shorter side is extended with empty-prompt chunks too.
//! [`crate::SdxlModel::prompt_report`] says what was parsed, for the worker's callbacks.

pub mod chunks;
mod encode;
pub mod parse;
mod truncation;

use std::str::FromStr;

pub use chunks::{Chunk, Chunks, COMMA_BACKTRACK};
pub use parse::{parse, Piece};
pub use truncation::{plain_truncation, PlainTruncation};

use crate::Error;

/// How prompt text becomes conditioning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptMode {
    /// diffusers: the text as is, truncated to 77 tokens.
    #[default]
    Plain,
    /// AUTOMATIC1111: attention weights, `BREAK`, chunks of 75 tokens.
    A1111,
}

impl FromStr for PromptMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "plain" | "diffusers" => Ok(PromptMode::Plain),
            "a1111" | "weighted" => Ok(PromptMode::A1111),
            "compel" => Err(Error::invalid(
                "prompt mode `compel` is not supported: compel's syntax (word++, (word)1.3, .and(), \
                 .blend()) is not read; use `a1111` for (word:1.3) weights, [word], BREAK and long \
                 prompts, or `plain`",
            )),
            other => Err(Error::invalid(format!(
                "unknown prompt mode `{other}`: use `plain` or `a1111`"
            ))),
        }
    }
}

/// What happened to a prompt: the parsed pieces and how it was cut.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PromptReport {
    pub mode: PromptMode,
    pub pieces: Vec<Piece>,
    /// 77-token chunks encoded (first encoder's tokenizer).
    pub chunks: usize,
    /// Tokens of the prompt (A1111's count, as its UI shows).
    pub token_count: usize,
    /// Whether any token has a weight other than 1.
    pub weighted: bool,
    /// Plain mode only: tokens beyond 75 were dropped (use A1111 mode for long prompts).
    pub truncated: bool,
    /// Plain mode only: how many tokens were dropped (0 in A1111 mode, which keeps all).
    pub dropped_tokens: usize,
}
