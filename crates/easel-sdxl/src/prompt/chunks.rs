//! Why this exists: CLIP sees 77 tokens at a time. A1111 cuts a prompt into chunks of 75
//! tokens, each wrapped in BOS … EOS and padded to 77, and encodes them one by one
//! (`sd_hijack_clip.py::tokenize_line`). This ports that cut exactly: each weighted piece is
//! tokenized alone (no BOS/EOS), every token keeps its piece's weight, `BREAK` closes the
//! chunk, and when a chunk fills up within [`COMMA_BACKTRACK`] tokens after a comma the
//! tokens after that comma move to the next chunk (A1111's `comma_padding_backtrack`).

use super::parse::Piece;
use crate::tokenizer::ClipTokenizer;

/// A1111's default `comma_padding_backtrack`: how far back (in tokens) a full chunk looks
/// for a comma to break at, so phrases are not split across chunks.
pub const COMMA_BACKTRACK: usize = 20;

/// One 77-token chunk: ids and the weight of each position (1 for BOS, EOS and padding).
#[derive(Clone, Debug, PartialEq)]
pub struct Chunk {
    pub ids: Vec<u32>,
    pub weights: Vec<f64>,
}

/// The chunks of a prompt and A1111's token count (what its UI shows as "N/75").
#[derive(Clone, Debug, PartialEq)]
pub struct Chunks {
    pub chunks: Vec<Chunk>,
    pub token_count: usize,
}

/// A chunk being filled (without BOS/EOS).
#[derive(Default)]
struct Open {
    ids: Vec<u32>,
    weights: Vec<f64>,
}

struct Cutter<'a> {
    tok: &'a ClipTokenizer,
    body: usize,
    comma: Option<u32>,
    backtrack: usize,
    chunks: Vec<Chunk>,
    open: Open,
    last_comma: Option<usize>,
    token_count: usize,
}

/// Cuts `pieces` into chunks for `tok`, backtracking up to `backtrack` tokens to a comma.
pub fn cut(tok: &ClipTokenizer, pieces: &[Piece], backtrack: usize) -> Chunks {
    let comma = match tok.encode_body(",").as_slice() {
        [id] => Some(*id),
        _ => None,
    };
    let body = tok.max_len() - 2;
    let mut c = Cutter {
        tok,
        body,
        comma,
        backtrack,
        chunks: vec![],
        open: Open::default(),
        last_comma: None,
        token_count: 0,
    };
    for piece in pieces {
        match piece {
            Piece::Break => c.close(false),
            Piece::Text { text, weight } => c.push_text(text, *weight),
        }
    }
    if !c.open.ids.is_empty() || c.chunks.is_empty() {
        c.close(true);
    }
    Chunks {
        chunks: c.chunks,
        token_count: c.token_count,
    }
}

impl Cutter<'_> {
    fn push_text(&mut self, text: &str, weight: f64) {
        for id in self.tok.encode_body(text) {
            if Some(id) == self.comma {
                self.last_comma = Some(self.open.ids.len());
            } else if let Some(at) = self.backtrack_point() {
                self.move_after_comma(at);
            }
            if self.open.ids.len() == self.body {
                self.close(false);
            }
            self.open.ids.push(id);
            self.open.weights.push(weight);
        }
    }

    /// Where to break a full chunk: just after a comma at most `backtrack` tokens back.
    fn backtrack_point(&self) -> Option<usize> {
        let last = self.last_comma?;
        let full = self.open.ids.len() == self.body;
        (self.backtrack != 0 && full && self.open.ids.len() - last <= self.backtrack).then_some(last + 1)
    }

    fn move_after_comma(&mut self, at: usize) {
        let ids = self.open.ids.split_off(at);
        let weights = self.open.weights.split_off(at);
        self.close(false);
        self.open = Open { ids, weights };
    }

    /// Pads the open chunk to 75 with EOS, wraps it in BOS/EOS and starts a new one.
    fn close(&mut self, is_last: bool) {
        self.token_count += if is_last { self.open.ids.len() } else { self.body };
        let mut open = std::mem::take(&mut self.open);
        let pad = self.body.saturating_sub(open.ids.len());
        open.ids.extend(std::iter::repeat_n(self.tok.eos_id(), pad));
        open.weights.extend(std::iter::repeat_n(1.0, pad));
        let mut ids = vec![self.tok.bos_id()];
        ids.extend(open.ids);
        ids.push(self.tok.eos_id());
        let mut weights = vec![1.0];
        weights.extend(open.weights);
        weights.push(1.0);
        self.chunks.push(Chunk { ids, weights });
        self.last_comma = None;
    }
}

impl Chunk {
    /// The ids the encoder sees: after the first EOS, `pad` (A1111 does this for encoders
    /// whose pad token is not EOS, i.e. SDXL's OpenCLIP-G, which pads with `!` = 0).
    pub fn ids_padded_with(&self, eos: u32, pad: u32) -> Vec<u32> {
        let mut ids = self.ids.clone();
        if let Some(first) = ids.iter().position(|&t| t == eos) {
            for id in &mut ids[first + 1..] {
                *id = pad;
            }
        }
        ids
    }

    /// Whether any position is weighted other than 1.
    pub fn is_weighted(&self) -> bool {
        self.weights.iter().any(|&w| w != 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::parse::parse;

    fn tok() -> ClipTokenizer {
        ClipTokenizer::embedded("<|endoftext|>").unwrap()
    }

    #[test]
    fn a_short_prompt_is_one_chunk_like_the_plain_tokenizer() {
        let t = tok();
        let c = cut(&t, &parse("a photo of a cat"), COMMA_BACKTRACK);
        assert_eq!(c.chunks.len(), 1);
        assert_eq!(c.token_count, 5);
        assert_eq!(c.chunks[0].ids, t.encode_padded("a photo of a cat"));
    }

    #[test]
    fn long_prompts_take_chunks_of_75_and_break_forces_one() {
        let t = tok();
        let c = cut(&t, &parse(&"cat ".repeat(100)), 0);
        assert_eq!(c.chunks.len(), 2);
        assert_eq!(c.token_count, 100);
        assert!(c
            .chunks
            .iter()
            .all(|k| k.ids.len() == 77 && k.ids[0] == 49406 && k.ids[76] == 49407));
        let c = cut(&t, &parse("a BREAK b"), COMMA_BACKTRACK);
        assert_eq!(c.chunks.len(), 2);
        assert_eq!(c.token_count, 75 + 1);
    }

    #[test]
    fn a_full_chunk_breaks_after_a_recent_comma() {
        let t = tok();
        let text = format!("{}, {}", "cat ".repeat(70), "dog ".repeat(10));
        let c = cut(&t, &parse(&text), COMMA_BACKTRACK);
        // 70 cats and the comma stay; the dogs move to the second chunk.
        assert_eq!(c.chunks[0].ids[72], t.eos_id());
        assert_eq!(&c.chunks[1].ids[1..11], &[1929; 10]);
        assert_eq!(cut(&t, &parse(&text), 0).chunks[0].ids[72], 1929);
    }

    #[test]
    fn weights_follow_their_tokens_and_padding_is_neutral() {
        let t = tok();
        let c = cut(&t, &parse("a (cat:1.5)"), COMMA_BACKTRACK);
        assert_eq!(&c.chunks[0].weights[..4], &[1.0, 1.0, 1.5, 1.0]);
        assert!(c.chunks[0].is_weighted());
        let ids = c.chunks[0].ids_padded_with(t.eos_id(), 0);
        assert_eq!(&ids[2..5], &[2368, 49407, 0]);
    }
}
