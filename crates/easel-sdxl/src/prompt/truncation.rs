//! Why this exists: in plain mode (diffusers' behaviour) a prompt longer than the text
//! encoders' 77 tokens is cut without a word. [`PlainTruncation`] says how many tokens a
//! plain-mode prompt loses, from a loaded model's tokenizer or — before any model loads,
//! so the CLI can warn at once — from the CLIP vocabulary embedded in the engine (SDXL's
//! tokenizers all share it).

use crate::tokenizer::ClipTokenizer;
use crate::Result;

/// How a prompt fares in plain mode; counts include the begin and end tokens, as the
/// text encoders see them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PlainTruncation {
    /// Tokens of the whole prompt.
    pub tokens: usize,
    /// Tokens the text encoders get (at most the tokenizer's maximum, 77).
    pub kept: usize,
    /// Tokens cut off the end of the prompt: `tokens - kept`.
    pub dropped: usize,
}

impl PlainTruncation {
    /// `text` tokenized by `tok` (a loaded model's first tokenizer).
    pub fn of(tok: &ClipTokenizer, text: &str) -> Self {
        let tokens = tok.encode(text).len();
        let kept = tokens.min(tok.max_len());
        Self {
            tokens,
            kept,
            dropped: tokens - kept,
        }
    }
}

/// How `text` fares in plain mode with SDXL's CLIP tokenizer (the embedded vocabulary, 77
/// tokens), without loading a model.
pub fn plain_truncation(text: &str) -> Result<PlainTruncation> {
    Ok(PlainTruncation::of(&ClipTokenizer::embedded("<|endoftext|>")?, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_prompt_keeps_every_token() {
        let t = plain_truncation("a lighthouse at dusk").unwrap();
        assert_eq!(
            t,
            PlainTruncation {
                tokens: 6,
                kept: 6,
                dropped: 0
            }
        );
    }

    #[test]
    fn a_long_prompt_drops_what_is_beyond_77_tokens() {
        // "word" is one token: 91 of them plus begin and end make 93.
        let text = vec!["word"; 91].join(" ");
        let t = plain_truncation(&text).unwrap();
        assert_eq!(
            t,
            PlainTruncation {
                tokens: 93,
                kept: 77,
                dropped: 16
            }
        );
    }

    #[test]
    fn exactly_77_tokens_drop_nothing() {
        let t = plain_truncation(&vec!["word"; 75].join(" ")).unwrap();
        assert_eq!((t.tokens, t.dropped), (77, 0));
    }
}
