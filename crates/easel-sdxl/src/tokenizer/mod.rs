//! CLIP's byte-level BPE tokenizer, for both SDXL text encoders.
//!
//! Why this exists: the text encoders only see token ids, so a prompt must become exactly
//! the ids diffusers' SDXL pipelines get from `transformers.CLIPTokenizer` (transformers 5,
//! no ftfy) or the images drift. The reference ids come from `scripts/tokenizer_refs.py`
//! and are checked by `tests/tokenizer.rs`.
//!
//! Layout: [`text`] turns a prompt into words (special tokens, normalisation, CLIP's split
//! regex), [`bpe`] turns a word into ids, [`files`] reads vocabularies and configs. This
//! file ties them together and adds bos/eos, truncation and padding.

mod bpe;
mod files;
mod text;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use self::bpe::{byte_chars, Bpe};
use self::files::{bad_config, ConfigFiles, SpecialConfig, VocabFiles};
use self::text::{AddedToken, Piece, PreTokenizer};
use crate::loader::{shown_path, DirSource, ModelSource};
use crate::Result;

/// Words cached before the cache is emptied (it only saves time, never changes ids).
const CACHE_LIMIT: usize = 16_384;

/// A CLIP tokenizer: `encode_padded` gives what SDXL's text encoders take.
pub struct ClipTokenizer {
    bpe: Bpe,
    pre: PreTokenizer,
    byte_chars: [char; 256],
    bos: u32,
    eos: u32,
    pad: u32,
    max_len: usize,
    vocab_size: usize,
    cache: Mutex<HashMap<String, Vec<u32>>>,
}

impl std::fmt::Debug for ClipTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipTokenizer")
            .field("vocab_size", &self.vocab_size)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("pad", &self.pad)
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

impl ClipTokenizer {
    /// Loads the tokenizer in folder `sub` (`tokenizer`, `tokenizer_2`) of the diffusers
    /// folder `root`, as [`Self::from_source`] describes.
    pub fn from_dir(root: &Path, sub: &str) -> Result<Self> {
        Self::from_source(&DirSource::new(root), sub)
    }

    /// Loads `{sub}/vocab.json`, `{sub}/merges.txt` and, when present,
    /// `{sub}/special_tokens_map.json` / `{sub}/tokenizer_config.json` (pad token as a string
    /// or an object with `"content"`; `model_max_length`, default 77) from a model source.
    /// Of `{sub}/tokenizer.json`, when present, only `added_tokens` is read (which special
    /// tokens are matched before normalisation), as transformers does.
    pub(crate) fn from_source(src: &dyn ModelSource, sub: &str) -> Result<Self> {
        let rel = |name: &str| format!("{}/{name}", sub.trim_end_matches('/'));
        let vocab_rel = rel("vocab.json");
        let vocab_path = shown_path(src, &vocab_rel);
        let merges_rel = rel("merges.txt");
        let merges_path = shown_path(src, &merges_rel);
        let files = VocabFiles {
            vocab: files::parse_vocab(&src.read(&vocab_rel)?, &vocab_path)?,
            merges: files::parse_merges(&src.read(&merges_rel)?, &merges_path)?,
        };
        let config = read_json(src, &rel("tokenizer_config.json"))?;
        let special_map = read_json(src, &rel("special_tokens_map.json"))?;
        let backend = read_json(src, &rel("tokenizer.json"))?;
        let specials = SpecialConfig::from_json(ConfigFiles {
            config: with_path(&config),
            special_map: special_map.as_ref().map(|(v, _)| v),
            backend: with_path(&backend),
        })?;
        Self::build(files, specials, &vocab_path, &merges_path)
    }

    /// The full CLIP vocabulary embedded in the binary (49408 ids), with `pad_token`
    /// (`"<|endoftext|>"` for SDXL's first tokenizer, `"!"` for the second), max length 77.
    pub fn embedded(pad_token: &str) -> Result<Self> {
        let files = files::embedded_vocab()?;
        let path = Path::new("embedded CLIP vocabulary");
        Self::build(files, SpecialConfig::sdxl(pad_token), path, path)
    }

    /// Bos + BPE ids + eos, neither truncated nor padded.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = vec![self.bos];
        ids.extend(self.encode_body(text));
        ids.push(self.eos);
        ids
    }

    /// As `tokenizer(text, padding="max_length", max_length=77, truncation=True).input_ids`:
    /// exactly [`Self::max_len`] ids, the last kept id always eos.
    pub fn encode_padded(&self, text: &str) -> Vec<u32> {
        let mut ids = self.encode(text);
        if ids.len() > self.max_len {
            ids.truncate(self.max_len - 1);
            ids.push(self.eos);
        }
        ids.resize(self.max_len, self.pad);
        ids
    }

    /// BPE ids without bos/eos (for splitting long prompts into chunks).
    pub fn encode_body(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        self.pre.split(text, &mut |piece| match piece {
            Piece::Added(id) => ids.push(id),
            Piece::Word(word) => ids.extend(self.encode_word(word)),
        });
        ids
    }

    /// The id that starts every sequence (`<|startoftext|>`).
    pub fn bos_id(&self) -> u32 {
        self.bos
    }

    /// The id that ends every sequence (`<|endoftext|>`).
    pub fn eos_id(&self) -> u32 {
        self.eos
    }

    /// The id that fills a sequence up to [`Self::max_len`].
    pub fn pad_id(&self) -> u32 {
        self.pad
    }

    /// The text encoder's sequence length (77 for SDXL).
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Number of distinct tokens (49408 for CLIP).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    fn build(files: VocabFiles, cfg: SpecialConfig, vocab_path: &Path, merges_path: &Path) -> Result<Self> {
        let VocabFiles { vocab, merges } = files;
        let added = resolve_added(&cfg, &vocab);
        let id_of = |token: &str, role: &str| {
            added.iter().find(|t| t.content == token).map(|t| t.id).ok_or_else(|| {
                bad_config(
                    vocab_path,
                    format!("the {role} token {token:?} is not in the vocabulary"),
                )
            })
        };
        let (bos, eos, pad) = (
            id_of(&cfg.bos, "bos")?,
            id_of(&cfg.eos, "eos")?,
            id_of(&cfg.pad, "pad")?,
        );
        let unk = added.iter().find(|t| t.content == cfg.unk).map(|t| t.id);
        let vocab_size = vocab.len() + added.iter().filter(|t| !vocab.contains_key(&t.content)).count();
        let bpe = Bpe::new(vocab, &merges, unk).map_err(|e| {
            bad_config(
                merges_path,
                format!("merge {} (line {} after the header): {}", e.rank, e.rank + 1, e.msg),
            )
        })?;
        Ok(Self {
            bpe,
            pre: PreTokenizer::new(&added),
            byte_chars: byte_chars(),
            bos,
            eos,
            pad,
            max_len: cfg.max_len,
            vocab_size,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// BPE ids of one word (UTF-8 bytes mapped to CLIP's byte symbols), cached.
    fn encode_word(&self, word: &str) -> Vec<u32> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ids) = cache.get(word) {
            return ids.clone();
        }
        let symbols: String = word.bytes().map(|b| self.byte_chars[usize::from(b)]).collect();
        let ids = self.bpe.encode_word(&symbols);
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(word.to_string(), ids.clone());
        ids
    }
}

/// The added tokens with their ids: a fixed id from `added_tokens_decoder`, else the
/// vocabulary's; tokens in neither are left out (the caller reports the ones it needs).
fn resolve_added(cfg: &SpecialConfig, vocab: &HashMap<String, u32>) -> Vec<AddedToken> {
    cfg.added
        .iter()
        .filter_map(|(content, id, normalized)| {
            let id = id.or_else(|| vocab.get(content).copied())?;
            Some(AddedToken {
                content: content.clone(),
                id,
                normalized: *normalized,
            })
        })
        .collect()
}

/// A read JSON file as [`ConfigFiles`] holds it.
fn with_path(file: &Option<(serde_json::Value, PathBuf)>) -> Option<(&serde_json::Value, &Path)> {
    file.as_ref().map(|(v, p)| (v, p.as_path()))
}

/// Reads an optional JSON file; present but unreadable or malformed is an error.
fn read_json(src: &dyn ModelSource, rel: &str) -> Result<Option<(serde_json::Value, PathBuf)>> {
    if !src.exists(rel) {
        return Ok(None);
    }
    let path = shown_path(src, rel);
    let value =
        serde_json::from_slice(&src.read(rel)?).map_err(|e| bad_config(&path, format!("not valid JSON: {e}")))?;
    Ok(Some((value, path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(pad: &str) -> ClipTokenizer {
        ClipTokenizer::embedded(pad).unwrap()
    }

    #[test]
    fn embedded_ids_match_clip() {
        let t = tok("<|endoftext|>");
        assert_eq!(
            (t.bos_id(), t.eos_id(), t.pad_id(), t.max_len(), t.vocab_size()),
            (49406, 49407, 49407, 77, 49408)
        );
        assert_eq!(t.encode("a photo of a cat"), [49406, 320, 1125, 539, 320, 2368, 49407]);
        assert_eq!(t.encode(""), [49406, 49407]);
        assert_eq!(tok("!").pad_id(), 0);
    }

    #[test]
    fn bang_pad_is_an_added_token_for_the_second_tokenizer() {
        assert_eq!(tok("<|endoftext|>").encode_body("hi!"), [1883, 256]);
        assert_eq!(tok("!").encode_body("hi!"), [1883, 0]);
    }

    #[test]
    fn padding_and_truncation_keep_eos() {
        let t = tok("!");
        let short = t.encode_padded("a cat");
        assert_eq!(short.len(), 77);
        assert_eq!(&short[..4], &[49406, 320, 2368, 49407]);
        assert!(short[4..].iter().all(|&id| id == 0));
        let long = t.encode_padded(&"cat ".repeat(200));
        assert_eq!(long.len(), 77);
        assert_eq!((long[0], long[75], long[76]), (49406, 2368, 49407));
    }

    #[test]
    fn never_panics_on_odd_text() {
        let t = tok("!");
        let odd = [
            "\u{0}\u{1}\u{7f}\u{85}\u{feff}\u{fffd}\u{10ffff}\u{e000}",
            "👨\u{200d}👩\u{200d}👧 🏳\u{fe0f}\u{200d}🌈",
            "e\u{301}\u{302}\u{303}\u{304}\u{305}\u{306}",
            "\u{130}\u{3a3}\u{1e9e}\u{fb01}",
            "<|<|endoftext|<|startoftext|>|>|>",
            "'''''s't're",
            "\t\n\r\u{b}\u{c}\u{2028}\u{2029}",
        ];
        for s in odd {
            let ids = t.encode(s);
            assert!(ids.iter().all(|&id| (id as usize) < t.vocab_size()), "{s:?}");
        }
        let word: String = "ǅ\u{301}é漢🐱".repeat(2000);
        let ids = t.encode_padded(&word);
        assert_eq!(ids.len(), 77);
        assert!(t.encode(&word).len() > 77);
    }

    #[test]
    fn never_panics_on_random_mixtures() {
        let t = tok("!");
        let pool: Vec<char> =
            "aZ09 !'s<|>\t\n\u{0}\u{85}\u{a0}\u{200d}\u{301}\u{fe0f}é漢カ한Жσ🐱👍🏽\u{10ffff}\u{e000}ßİ"
                .chars()
                .collect();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..2000 {
            let len = (state >> 59) as usize;
            let text: String = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    pool[(state % pool.len() as u64) as usize]
                })
                .collect();
            let ids = t.encode_padded(&text);
            assert_eq!(ids.len(), 77);
            assert!(
                t.encode(&text).iter().all(|&id| (id as usize) < t.vocab_size()),
                "{text:?}"
            );
        }
    }

    #[test]
    fn cache_does_not_change_results() {
        let t = tok("<|endoftext|>");
        let first = t.encode("masterpiece, best quality, masterpiece");
        assert_eq!(t.encode("masterpiece, best quality, masterpiece"), first);
        for i in 0..(CACHE_LIMIT + 10) {
            t.encode_word(&format!("w{i}"));
        }
        assert_eq!(t.encode("masterpiece, best quality, masterpiece"), first);
    }
}
