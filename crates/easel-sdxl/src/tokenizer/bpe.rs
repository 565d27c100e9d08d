//! Why this exists: the byte-level BPE model on its own (vocabulary, ranked merges and the
//! merge loop), apart from text cleanup and file formats, so it can be tested in isolation.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Suffix that marks the last symbol of a word in CLIP's vocabulary.
pub(crate) const END_OF_WORD: &str = "</w>";

/// GPT-2's reversible byte → printable char table (`bytes_to_unicode`): printable Latin-1
/// bytes map to themselves, the rest to U+0100 onwards, in this order.
pub(crate) fn byte_chars() -> [char; 256] {
    let mut printable: Vec<u8> = (b'!'..=b'~').chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    let mut chars: Vec<char> = printable.iter().map(|&b| char::from(b)).collect();
    let mut next = 256u32;
    for b in 0..=255u8 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(char::from_u32(next).unwrap_or('\u{FFFD}'));
            next += 1;
        }
    }
    let mut table = ['\0'; 256];
    for (b, c) in printable.iter().zip(chars) {
        table[usize::from(*b)] = c;
    }
    table
}

/// The order in which [`byte_chars`] lists the 256 symbols (vocab ids 0..256 of CLIP).
pub(crate) fn byte_chars_in_vocab_order() -> Vec<char> {
    let table = byte_chars();
    let mut bytes: Vec<u8> = (b'!'..=b'~').chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    bytes.extend((0..=255u8).filter(|b| !bytes.contains(b)).collect::<Vec<_>>());
    bytes.into_iter().map(|b| table[usize::from(b)]).collect()
}

/// A BPE model: symbol vocabulary plus merges ranked by priority.
pub(crate) struct Bpe {
    vocab: HashMap<String, u32>,
    /// (left id, right id) → (rank, merged id).
    merges: HashMap<(u32, u32), (u32, u32)>,
    unk: Option<u32>,
}

/// Why a merge list cannot be used; the loader turns it into a message naming the file.
#[derive(Debug)]
pub(crate) struct BadMerge {
    pub rank: usize,
    pub msg: String,
}

impl Bpe {
    /// Builds the model; every merge's parts and result must be in `vocab`.
    pub fn new(vocab: HashMap<String, u32>, merges: &[(String, String)], unk: Option<u32>) -> Result<Self, BadMerge> {
        let mut table = HashMap::with_capacity(merges.len());
        for (rank, (a, b)) in merges.iter().enumerate() {
            let id = |s: &str| {
                vocab.get(s).copied().ok_or_else(|| BadMerge {
                    rank,
                    msg: format!("{s:?} is not in the vocabulary"),
                })
            };
            let merged = id(&format!("{a}{b}"))?;
            let rank32 = u32::try_from(rank).unwrap_or(u32::MAX);
            table.entry((id(a)?, id(b)?)).or_insert((rank32, merged));
        }
        Ok(Self {
            vocab,
            merges: table,
            unk,
        })
    }

    /// Ids for one pre-token, already mapped through [`byte_chars`]; its last symbol carries
    /// [`END_OF_WORD`]. Symbols missing from the vocabulary become the unknown token (or are
    /// dropped when there is none), as `tokenizers`' BPE does.
    pub fn encode_word(&self, word: &str) -> Vec<u32> {
        let mut symbols = self.initial_symbols(word);
        self.merge_all(&mut symbols);
        symbols.iter().filter(|s| s.alive).map(|s| s.id).collect()
    }

    fn initial_symbols(&self, word: &str) -> Vec<Symbol> {
        let mut ids = Vec::with_capacity(word.len());
        let mut buf = String::new();
        let mut chars = word.chars().peekable();
        while let Some(c) = chars.next() {
            buf.clear();
            buf.push(c);
            if chars.peek().is_none() {
                buf.push_str(END_OF_WORD);
            }
            if let Some(id) = self.vocab.get(&buf).copied().or(self.unk) {
                ids.push(id);
            }
        }
        let n = ids.len();
        ids.into_iter()
            .enumerate()
            .map(|(i, id)| Symbol {
                id,
                prev: i.checked_sub(1),
                next: (i + 1 < n).then_some(i + 1),
                alive: true,
            })
            .collect()
    }

    fn pair_at(&self, symbols: &[Symbol], left: usize) -> Option<Candidate> {
        let right = symbols[left].next?;
        let &(rank, merged) = self.merges.get(&(symbols[left].id, symbols[right].id))?;
        Some(Reverse((rank, left, merged)))
    }

    /// Applies merges lowest rank first, leftmost first among equal ranks (what both the
    /// original CLIP loop and `tokenizers` amount to), in O(n log n).
    fn merge_all(&self, symbols: &mut [Symbol]) {
        let mut heap: BinaryHeap<Candidate> = (0..symbols.len()).filter_map(|i| self.pair_at(symbols, i)).collect();
        while let Some(Reverse((rank, left, merged))) = heap.pop() {
            let still_valid = symbols[left].alive
                && self
                    .pair_at(symbols, left)
                    .is_some_and(|Reverse((r, _, m))| r == rank && m == merged);
            if !still_valid {
                continue;
            }
            let Some(right) = symbols[left].next else { continue };
            let after = symbols[right].next;
            symbols[right].alive = false;
            symbols[left].id = merged;
            symbols[left].next = after;
            if let Some(a) = after {
                symbols[a].prev = Some(left);
            }
            let before = symbols[left].prev;
            heap.extend(before.and_then(|b| self.pair_at(symbols, b)));
            heap.extend(self.pair_at(symbols, left));
        }
    }
}

/// A merge waiting in the queue: (rank, left symbol index, merged id), smallest first.
type Candidate = Reverse<(u32, usize, u32)>;

/// One symbol of a word being merged, in a doubly linked list over a vector.
struct Symbol {
    id: u32,
    prev: Option<usize>,
    next: Option<usize>,
    alive: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Bpe {
        let tokens = [
            "a", "b", "c", "a</w>", "b</w>", "c</w>", "ab", "ab</w>", "abc</w>", "aa", "aa</w>",
        ];
        let vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as u32))
            .collect();
        let merges = [("a", "b"), ("ab", "c</w>"), ("a", "b</w>"), ("a", "a"), ("a", "a</w>")];
        let merges: Vec<_> = merges.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        Bpe::new(vocab, &merges, Some(2)).unwrap()
    }

    #[test]
    fn byte_table_is_a_bijection_with_clip_order() {
        let table = byte_chars();
        let mut seen: Vec<char> = table.to_vec();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 256);
        assert_eq!(table[usize::from(b'A')], 'A');
        assert_eq!(table[usize::from(b' ')], '\u{120}');
        assert_eq!(table[0], '\u{100}');
        let order = byte_chars_in_vocab_order();
        assert_eq!(order[0], '!');
        assert_eq!(order[188 + 32], table[usize::from(b' ')]);
        assert_eq!(order[255], table[0xAD]);
    }

    #[test]
    fn merges_follow_rank_order() {
        let bpe = toy();
        assert_eq!(bpe.encode_word("abc"), vec![8]);
        assert_eq!(bpe.encode_word("ab"), vec![7]);
        assert_eq!(bpe.encode_word("aaa"), vec![9, 3]);
        assert_eq!(bpe.encode_word("aaaa"), vec![9, 10]);
        assert_eq!(bpe.encode_word("abab"), vec![6, 7]);
    }

    #[test]
    fn unknown_symbols_become_unk_or_vanish() {
        let bpe = toy();
        assert_eq!(bpe.encode_word("axb"), vec![0, 2, 4]);
        let no_unk = Bpe { unk: None, ..toy() };
        assert_eq!(no_unk.encode_word("axb"), vec![7], "x dropped, then a + b</w> merge");
        assert!(no_unk.encode_word("").is_empty());
    }

    #[test]
    fn merge_parts_must_be_in_vocab() {
        let vocab = [("a".to_string(), 0)].into_iter().collect();
        let err = Bpe::new(vocab, &[("a".into(), "z".into())], None).err().unwrap();
        assert_eq!(err.rank, 0);
        assert!(err.msg.contains("\"az\""), "{}", err.msg);
    }
}
