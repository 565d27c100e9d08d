//! Why this exists: everything `transformers.CLIPTokenizer` does to a prompt before BPE,
//! kept apart from the BPE model. The steps, as transformers 5 (the `tokenizers` backend,
//! no ftfy) runs them:
//! 1. added tokens whose `normalized` flag is false are cut out of the raw text;
//! 2. each remaining piece is normalised: Unicode NFC, every whitespace run → one space,
//!    lowercase (per character, so a final capital sigma becomes `σ`, not `ς`);
//! 3. added tokens with `normalized` true are cut out of the normalised pieces;
//! 4. what is left is split by CLIP's regex, and a piece that spells a special token
//!    (`<|endoftext|>`) is split again as GPT-2's byte-level regex does (`<|`, word, `|>`).

use std::sync::LazyLock;

use regex::Regex;
use unicode_normalization_alignments::UnicodeNormalization;

/// CLIP's pre-tokenisation pattern (whitespace between matches is dropped).
const CLIP_PATTERN: &str = r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+";

// Both patterns are constants, compiled by every test that tokenizes anything.
static CLIP_REGEX: LazyLock<Regex> = LazyLock::new(|| Regex::new(CLIP_PATTERN).expect("CLIP pattern compiles"));
static WHITESPACE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\s+").expect("whitespace pattern compiles"));

/// A token cut out of the text whole (special tokens and any other added tokens).
#[derive(Clone, Debug)]
pub(crate) struct AddedToken {
    pub content: String,
    pub id: u32,
    /// Matched against the normalised text (true) or the raw text (false).
    pub normalized: bool,
}

/// A piece of the prompt after splitting: an added token's id, or a word for BPE.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    Added(u32),
    Word(&'a str),
}

/// The text side of the tokenizer: the added tokens to cut out, by matching mode.
pub(crate) struct PreTokenizer {
    raw: Vec<AddedToken>,
    normalized: Vec<AddedToken>,
}

impl PreTokenizer {
    pub fn new(added: &[AddedToken]) -> Self {
        let (normalized, raw) = added
            .iter()
            .filter(|t| !t.content.is_empty())
            .cloned()
            .partition(|t| t.normalized);
        Self { raw, normalized }
    }

    /// Runs steps 1–4 on `text`, calling `out` for each piece in order.
    pub fn split(&self, text: &str, out: &mut dyn FnMut(Piece<'_>)) {
        for raw_piece in split_added(text, &self.raw) {
            let segment = match raw_piece {
                Piece::Added(id) => {
                    out(Piece::Added(id));
                    continue;
                }
                Piece::Word(segment) => segment,
            };
            let normal = self.normalize(segment);
            for piece in split_added(&normal, &self.normalized) {
                match piece {
                    Piece::Added(id) => out(Piece::Added(id)),
                    Piece::Word(rest) => self.words(rest, out),
                }
            }
        }
    }

    /// NFC, whitespace runs → " ", per-character lowercase.
    pub fn normalize(&self, text: &str) -> String {
        let nfc: String = text.nfc().map(|(c, _)| c).collect();
        let spaced = WHITESPACE.replace_all(&nfc, " ");
        spaced.chars().flat_map(char::to_lowercase).collect()
    }

    fn words<'a>(&self, text: &'a str, out: &mut dyn FnMut(Piece<'a>)) {
        for m in CLIP_REGEX.find_iter(text) {
            let word = m.as_str();
            match special_parts(word) {
                Some(parts) => parts.into_iter().for_each(|p| out(Piece::Word(p))),
                None => out(Piece::Word(word)),
            }
        }
    }
}

/// `<|endoftext|>` → `<|`, `endoftext`, `|>` (GPT-2's regex inside the byte-level step;
/// every other CLIP piece passes through it unchanged).
fn special_parts(word: &str) -> Option<[&str; 3]> {
    let inner = word.strip_prefix("<|")?.strip_suffix("|>")?;
    (inner == "startoftext" || inner == "endoftext").then(|| [&word[..2], inner, &word[word.len() - 2..]])
}

/// Cuts `tokens` out of `text`: leftmost match first, the longest token at that place.
fn split_added<'a>(text: &'a str, tokens: &[AddedToken]) -> Vec<Piece<'a>> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut at = 0;
    while at < text.len() {
        let rest = &text[at..];
        let found = tokens
            .iter()
            .filter(|t| rest.starts_with(t.content.as_str()))
            .max_by_key(|t| t.content.len());
        match found {
            Some(token) => {
                if start < at {
                    pieces.push(Piece::Word(&text[start..at]));
                }
                pieces.push(Piece::Added(token.id));
                at += token.content.len();
                start = at;
            }
            None => at += rest.chars().next().map_or(1, char::len_utf8),
        }
    }
    if start < text.len() {
        pieces.push(Piece::Word(&text[start..]));
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn added(content: &str, id: u32, normalized: bool) -> AddedToken {
        AddedToken {
            content: content.into(),
            id,
            normalized,
        }
    }

    fn pieces(pre: &PreTokenizer, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        pre.split(text, &mut |p| {
            out.push(match p {
                Piece::Added(id) => format!("#{id}"),
                Piece::Word(w) => w.to_string(),
            })
        });
        out
    }

    #[test]
    fn normalises_like_the_tokenizers_backend() {
        let pre = PreTokenizer::new(&[]);
        assert_eq!(pre.normalize("Cafe\u{301}\t\n X"), "café x");
        assert_eq!(pre.normalize("ΟΔΟΣ"), "οδοσ");
        assert_eq!(pre.normalize("İ"), "i\u{307}");
        assert_eq!(pre.normalize("a\u{a0}\u{3000}b\u{200b}c"), "a b\u{200b}c");
    }

    #[test]
    fn splits_words_contractions_digits_and_punctuation() {
        let pre = PreTokenizer::new(&[]);
        let got = pieces(&pre, "DON'T stop 1024x768!! ''s 猫犬");
        let want = [
            "don", "'t", "stop", "1", "0", "2", "4", "x", "7", "6", "8", "!!", "''", "s", "猫犬",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn special_tokens_respect_their_normalized_flag() {
        let pre = PreTokenizer::new(&[
            added("<|startoftext|>", 1, true),
            added("<|endoftext|>", 2, false),
            added("!", 0, false),
        ]);
        assert_eq!(pieces(&pre, "a<|endoftext|>b!"), ["a", "#2", "b", "#0"]);
        assert_eq!(pieces(&pre, "<|StartOfText|>"), ["#1"]);
        assert_eq!(pieces(&pre, "<|ENDOFTEXT|>"), ["<|", "endoftext", "|>"]);
        assert_eq!(pieces(&pre, "x<|endoftext|>>"), ["x", "#2", ">"]);
    }

    #[test]
    fn longest_added_token_wins_at_the_leftmost_place() {
        let toks = [added("ab", 1, false), added("abc", 2, false), added("bcd", 3, false)];
        let got = split_added("xabcd", &toks);
        assert_eq!(got, vec![Piece::Word("x"), Piece::Added(2), Piece::Word("d")]);
        assert_eq!(split_added("", &toks), vec![]);
    }
}
