//! Why this exists: A1111's attention syntax, parsed exactly as
//! `modules/prompt_parser.py::parse_prompt_attention` does, so a prompt written for A1111
//! (or for the Python worker's compel path) weights the same words by the same amounts.
//!
//! Rules (A1111's, in order of the regex alternatives): `\(` `\)` `\[` `\]` `\\` are literal
//! characters, a lone `\` is dropped; `(` and `[` open a group; `:1.3)` closes the innermost
//! `(` group multiplying it by 1.3; `)` closes it by 1.1 and `]` the innermost `[` group by
//! 1/1.1; unmatched closers are literal text; groups still open at the end are closed as if
//! by `)` / `]`; `BREAK` (a whole word, upper case) splits the text and forces a new chunk.
//! Neighbouring fragments of equal weight are merged. Deviation: a weight that is not a
//! number (`(a:1.2.3)`) makes A1111 raise; here it is kept as literal text.

use regex::Regex;
use std::sync::OnceLock;

/// A1111's multiplier for `(...)`.
pub const ROUND_MULTIPLIER: f64 = 1.1;

/// One parsed piece of a prompt.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Piece {
    /// Text with its attention weight.
    Text { text: String, weight: f64 },
    /// `BREAK`: the next text starts a new 75-token chunk.
    Break,
}

/// A piece while parsing; `weight` is `None` for BREAK (A1111 marks it with -1).
#[derive(Clone, Debug)]
struct Raw {
    text: String,
    weight: Option<f64>,
}

fn attention_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"\\\(|\\\)|\\\[|\\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|\]|[^\\()\[\]:]+|:")
            .unwrap_or_else(|e| unreachable!("the attention regex is valid: {e}"))
    })
}

fn break_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\s*\bBREAK\b\s*").unwrap_or_else(|e| unreachable!("the BREAK regex is valid: {e}")))
}

/// Parses A1111 attention syntax into weighted pieces (never empty: `""` gives one piece).
pub fn parse(text: &str) -> Vec<Piece> {
    let mut res: Vec<Raw> = Vec::new();
    let mut round: Vec<usize> = Vec::new();
    let mut square: Vec<usize> = Vec::new();
    for m in attention_re().captures_iter(text) {
        let tok = m.get(0).map_or("", |g| g.as_str());
        let weight = m.get(1).and_then(|g| g.as_str().parse::<f64>().ok());
        if let Some(lit) = tok.strip_prefix('\\') {
            res.push(Raw {
                text: lit.into(),
                weight: Some(1.0),
            });
        } else if tok == "(" {
            round.push(res.len());
        } else if tok == "[" {
            square.push(res.len());
        } else if let (Some(w), Some(start)) = (weight, round.last().copied()) {
            round.pop();
            multiply(&mut res, start, w);
        } else if let (")", Some(start)) = (tok, round.last().copied()) {
            round.pop();
            multiply(&mut res, start, ROUND_MULTIPLIER);
        } else if let ("]", Some(start)) = (tok, square.last().copied()) {
            square.pop();
            multiply(&mut res, start, 1.0 / ROUND_MULTIPLIER);
        } else {
            push_text(&mut res, tok);
        }
    }
    for start in round {
        multiply(&mut res, start, ROUND_MULTIPLIER);
    }
    for start in square {
        multiply(&mut res, start, 1.0 / ROUND_MULTIPLIER);
    }
    if res.is_empty() {
        res.push(Raw {
            text: String::new(),
            weight: Some(1.0),
        });
    }
    merge_equal(res).into_iter().map(finish).collect()
}

/// Multiplies the weights of `res[start..]` (A1111 multiplies BREAK's -1 too).
fn multiply(res: &mut [Raw], start: usize, by: f64) {
    for r in &mut res[start..] {
        r.weight = Some(r.weight.unwrap_or(-1.0) * by);
    }
}

/// Plain text, split at `BREAK`.
fn push_text(res: &mut Vec<Raw>, text: &str) {
    for (i, part) in break_re().split(text).enumerate() {
        if i > 0 {
            res.push(Raw {
                text: "BREAK".into(),
                weight: None,
            });
        }
        res.push(Raw {
            text: part.into(),
            weight: Some(1.0),
        });
    }
}

/// A1111 merges neighbours whose weights are equal (BREAK markers included).
fn merge_equal(mut res: Vec<Raw>) -> Vec<Raw> {
    let mut i = 0;
    while i + 1 < res.len() {
        if marker(&res[i]) == marker(&res[i + 1]) {
            let next = res.remove(i + 1);
            res[i].text.push_str(&next.text);
        } else {
            i += 1;
        }
    }
    res
}

/// The weight as A1111 stores it (-1 for a BREAK marker).
fn marker(r: &Raw) -> f64 {
    r.weight.unwrap_or(-1.0)
}

/// A BREAK is a marker only while its text is exactly `BREAK` with weight -1 (as A1111 checks).
fn finish(r: Raw) -> Piece {
    let w = marker(&r);
    if r.text == "BREAK" && w == -1.0 {
        Piece::Break
    } else {
        Piece::Text {
            text: r.text,
            weight: w,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str, weight: f64) -> Piece {
        Piece::Text {
            text: text.into(),
            weight,
        }
    }

    #[test]
    fn a1111_docstring_examples() {
        assert_eq!(parse("normal text"), [t("normal text", 1.0)]);
        assert_eq!(
            parse("an (important) word"),
            [t("an ", 1.0), t("important", 1.1), t(" word", 1.0)]
        );
        assert_eq!(parse("(unbalanced"), [t("unbalanced", 1.1)]);
        assert_eq!(parse("\\(literal\\]"), [t("(literal]", 1.0)]);
        assert_eq!(parse("(unnecessary)(parens)"), [t("unnecessaryparens", 1.1)]);
        assert_eq!(
            parse("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky)))."),
            [
                t("a ", 1.0),
                t("house", 1.5730000000000004),
                t(" ", 1.1),
                t("on", 1.0),
                t(" a ", 1.1),
                t("hill", 0.55),
                t(", sun, ", 1.1),
                t("sky", 1.4641000000000006),
                t(".", 1.1),
            ]
        );
    }

    #[test]
    fn break_splits_and_unmatched_closers_are_text() {
        assert_eq!(parse("a BREAK b"), [t("a", 1.0), Piece::Break, t("b", 1.0)]);
        assert_eq!(parse("a) b]"), [t("a) b]", 1.0)]);
        assert_eq!(parse(""), [t("", 1.0)]);
        assert_eq!(parse("[a:1.5]"), [t("a:1.5", 1.0 / 1.1)]);
    }
}
