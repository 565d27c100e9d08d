//! Why this exists: the tokenizer's file formats (a diffusers `tokenizer/` folder, or the
//! open_clip vocabulary embedded in the binary) and their error messages, kept apart from
//! the tokenizing itself.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use serde_json::Value;

use super::bpe::{byte_chars_in_vocab_order, END_OF_WORD};
use crate::{Error, Result};

/// CLIP's special tokens.
pub(crate) const BOS: &str = "<|startoftext|>";
pub(crate) const EOS: &str = "<|endoftext|>";
/// Sequence length of both SDXL text encoders.
pub(crate) const DEFAULT_MAX_LEN: usize = 77;

/// The full CLIP vocabulary in open_clip's format (a header line, then merges).
static EMBEDDED_GZ: &[u8] = include_bytes!("../../assets/clip/bpe_simple_vocab_16e6.txt.gz");
/// How many merge lines open_clip reads from it.
const EMBEDDED_MERGES: usize = 49152 - 256 - 2;

/// A vocabulary and its ranked merges.
pub(crate) struct VocabFiles {
    pub vocab: HashMap<String, u32>,
    pub merges: Vec<(String, String)>,
}

/// A special token as a config file names it.
#[derive(Clone, Debug)]
struct TokenDef {
    content: String,
    normalized: bool,
}

/// What `tokenizer_config.json` / `special_tokens_map.json` say.
pub(crate) struct SpecialConfig {
    pub bos: String,
    pub eos: String,
    pub unk: String,
    pub pad: String,
    pub max_len: usize,
    /// (content, id if the config fixes one, matched after normalisation?).
    pub added: Vec<(String, Option<u32>, bool)>,
}

impl SpecialConfig {
    /// SDXL's tokenizer folders: bos matched after normalisation, eos and pad before.
    pub fn sdxl(pad: &str) -> Self {
        let added = [(BOS, true), (EOS, false), (pad, false)];
        Self {
            bos: BOS.into(),
            eos: EOS.into(),
            unk: EOS.into(),
            pad: pad.into(),
            max_len: DEFAULT_MAX_LEN,
            added: added.iter().map(|(c, n)| (c.to_string(), None, *n)).collect(),
        }
    }

    /// Reads the optional config files the way transformers 5 combines them:
    /// `added_tokens_decoder` (tokenizer_config.json) fixes ids and matching modes, then
    /// `added_tokens` of tokenizer.json; any other special token is matched after
    /// normalisation only when every definition of it says `"normalized": true`, a key in
    /// special_tokens_map.json winning over the same key in tokenizer_config.json.
    pub fn from_json(files: ConfigFiles<'_>) -> Result<Self> {
        let cfg = files.config.map(|(v, _)| v);
        let pick = |key: &str, default: &str| {
            let def = files.special_map.and_then(|m| m.get(key)).and_then(token_def);
            def.or_else(|| cfg.and_then(|c| c.get(key)).and_then(token_def))
                .unwrap_or(TokenDef {
                    content: default.into(),
                    normalized: false,
                })
        };
        let defs = [
            pick("bos_token", BOS),
            pick("eos_token", EOS),
            pick("unk_token", EOS),
            pick("pad_token", EOS),
        ];
        let mut added = match files.config {
            Some((v, path)) => added_tokens_decoder(v, path)?,
            None => Vec::new(),
        };
        if let Some((v, path)) = files.backend {
            for token in backend_added_tokens(v, path)? {
                if !added.iter().any(|(c, _, _)| *c == token.0) {
                    added.push(token);
                }
            }
        }
        for def in &defs {
            if added.iter().any(|(c, _, _)| *c == def.content) {
                continue;
            }
            let normalized = defs.iter().filter(|d| d.content == def.content).all(|d| d.normalized);
            added.push((def.content.clone(), None, normalized));
        }
        let max_len = match files.config {
            Some((v, path)) => max_len(v, path)?,
            None => DEFAULT_MAX_LEN,
        };
        let [bos, eos, unk, pad] = defs.map(|d| d.content);
        Ok(Self {
            bos,
            eos,
            unk,
            pad,
            max_len,
            added,
        })
    }
}

/// The optional JSON files of a tokenizer folder, each with its path for errors.
#[derive(Clone, Copy, Default)]
pub(crate) struct ConfigFiles<'a> {
    /// tokenizer_config.json
    pub config: Option<(&'a Value, &'a Path)>,
    /// special_tokens_map.json
    pub special_map: Option<&'a Value>,
    /// tokenizer.json (only its `added_tokens` are used)
    pub backend: Option<(&'a Value, &'a Path)>,
}

/// A token given as `"text"` or `{"content": "text", "normalized": bool, ..}`.
fn token_def(v: &Value) -> Option<TokenDef> {
    match v {
        Value::String(s) => Some(TokenDef {
            content: s.clone(),
            normalized: false,
        }),
        Value::Object(o) => Some(TokenDef {
            content: o.get("content")?.as_str()?.to_string(),
            normalized: o.get("normalized").and_then(Value::as_bool).unwrap_or(false),
        }),
        _ => None,
    }
}

fn added_tokens_decoder(config: &Value, path: &Path) -> Result<Vec<(String, Option<u32>, bool)>> {
    let Some(map) = config.get("added_tokens_decoder").and_then(Value::as_object) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(map.len());
    for (id, entry) in map {
        let bad = |what: &str| bad_config(path, format!("added_tokens_decoder entry {id:?}: {what}"));
        let id: u32 = id.parse().map_err(|_| bad("the key is not a token id"))?;
        let def = token_def(entry).ok_or_else(|| bad("expected an object with a \"content\" string"))?;
        out.push((def.content, Some(id), def.normalized));
    }
    out.sort_by_key(|(_, id, _)| *id);
    Ok(out)
}

/// `added_tokens` of a tokenizer.json: `[{"id": 0, "content": "!", "normalized": false}, ..]`.
fn backend_added_tokens(json: &Value, path: &Path) -> Result<Vec<(String, Option<u32>, bool)>> {
    let Some(list) = json.get("added_tokens").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    let parse = |entry: &Value| {
        let id = entry.get("id")?.as_u64().and_then(|id| u32::try_from(id).ok())?;
        let def = token_def(entry)?;
        Some((def.content, Some(id), def.normalized))
    };
    list.iter()
        .map(|entry| {
            parse(entry).ok_or_else(|| {
                bad_config(
                    path,
                    format!("added_tokens entry {entry} needs an \"id\" and a \"content\""),
                )
            })
        })
        .collect()
}

/// `model_max_length`: absent, or transformers' "no limit" sentinel (1e30), means 77.
fn max_len(config: &Value, path: &Path) -> Result<usize> {
    let Some(v) = config.get("model_max_length").filter(|v| !v.is_null()) else {
        return Ok(DEFAULT_MAX_LEN);
    };
    match v.as_f64() {
        Some(x) if x >= 1e18 => Ok(DEFAULT_MAX_LEN),
        Some(x) if x.fract() == 0.0 && (2.0..=65536.0).contains(&x) => Ok(x as usize),
        _ => Err(bad_config(
            path,
            format!("model_max_length {v} is not a length between 2 and 65536"),
        )),
    }
}

/// Parses `vocab.json`: an object of token → id.
pub(crate) fn parse_vocab(bytes: &[u8], path: &Path) -> Result<HashMap<String, u32>> {
    let vocab: HashMap<String, u32> = serde_json::from_slice(bytes)
        .map_err(|e| bad_config(path, format!("expected a JSON object of token → id: {e}")))?;
    if vocab.is_empty() {
        return Err(bad_config(path, "the vocabulary is empty".into()));
    }
    Ok(vocab)
}

/// Parses `merges.txt`: `#version` header (optional), then one `left right` pair a line.
pub(crate) fn parse_merges(bytes: &[u8], path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::str::from_utf8(bytes).map_err(|e| bad_config(path, format!("not UTF-8: {e}")))?;
    let mut merges = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("#version") || line.trim().is_empty() {
            continue;
        }
        match line.split(' ').collect::<Vec<_>>()[..] {
            [a, b] if !a.is_empty() && !b.is_empty() => merges.push((a.to_string(), b.to_string())),
            _ => {
                return Err(bad_config(
                    path,
                    format!("line {}: expected two symbols, got {line:?}", n + 1),
                ))
            }
        }
    }
    Ok(merges)
}

/// The embedded vocabulary, rebuilt the way open_clip and `CLIPTokenizer` lay it out:
/// 256 byte symbols, the same with `</w>`, one token per merge, then bos and eos.
pub(crate) fn embedded_vocab() -> Result<VocabFiles> {
    let path = Path::new("assets/clip/bpe_simple_vocab_16e6.txt.gz (embedded)");
    let mut text = String::new();
    flate2::read::GzDecoder::new(EMBEDDED_GZ)
        .read_to_string(&mut text)
        .map_err(|e| bad_config(path, format!("cannot decompress: {e}")))?;
    let lines: Vec<&str> = text.split('\n').skip(1).take(EMBEDDED_MERGES).collect();
    let merges = parse_merges(lines.join("\n").as_bytes(), path)?;
    let bytes = byte_chars_in_vocab_order();
    let mut tokens: Vec<String> = bytes.iter().map(|c| c.to_string()).collect();
    tokens.extend(bytes.iter().map(|c| format!("{c}{END_OF_WORD}")));
    tokens.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
    tokens.extend([BOS.to_string(), EOS.to_string()]);
    let vocab = tokens.into_iter().zip(0u32..).collect();
    Ok(VocabFiles { vocab, merges })
}

/// An [`Error::Config`] for `path`.
pub(crate) fn bad_config(path: &Path, msg: String) -> Error {
    Error::Config {
        path: path.to_path_buf(),
        msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p() -> &'static Path {
        Path::new("x/tokenizer_config.json")
    }

    fn files<'a>(config: Option<&'a Value>, special_map: Option<&'a Value>) -> ConfigFiles<'a> {
        ConfigFiles {
            config: config.map(|c| (c, p())),
            special_map,
            backend: None,
        }
    }

    #[test]
    fn embedded_vocab_has_clip_layout() {
        let files = embedded_vocab().unwrap();
        assert_eq!(files.vocab.len(), 49408);
        assert_eq!(files.merges.len(), 48894);
        assert_eq!(files.vocab["!"], 0);
        assert_eq!(files.vocab["!</w>"], 256);
        assert_eq!(files.vocab["in"], 512);
        assert_eq!(files.vocab[BOS], 49406);
        assert_eq!(files.vocab[EOS], 49407);
    }

    #[test]
    fn merges_reject_malformed_lines() {
        let ok = parse_merges(b"#version: 0.2\na b\n\nc d\n", p()).unwrap();
        assert_eq!(ok, vec![("a".into(), "b".into()), ("c".into(), "d".into())]);
        let err = parse_merges(b"#version: 0.2\na b c\n", p()).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("tokenizer_config.json"), "{err}");
        assert!(parse_vocab(b"[1, 2]", p()).is_err());
        assert!(parse_vocab(b"{}", p()).is_err());
    }

    #[test]
    fn config_flags_follow_transformers() {
        let obj = |c: &str, n: bool| json!({"content": c, "normalized": n});
        let legacy = json!({"bos_token": obj(BOS, true), "eos_token": obj(EOS, true), "pad_token": EOS});
        let cfg = SpecialConfig::from_json(files(Some(&legacy), None)).unwrap();
        let flag = |cfg: &SpecialConfig, c: &str| cfg.added.iter().find(|t| t.0 == c).unwrap().2;
        assert!(flag(&cfg, BOS) && !flag(&cfg, EOS));
        let map = json!({"pad_token": obj(EOS, true), "unk_token": obj(EOS, true)});
        let cfg = SpecialConfig::from_json(files(Some(&legacy), Some(&map))).unwrap();
        assert!(flag(&cfg, EOS));
        let modern = json!({"pad_token": "!", "model_max_length": 1e30,
            "added_tokens_decoder": {"0": {"content": "!", "normalized": false}, "49407": obj(EOS, false)}});
        let cfg = SpecialConfig::from_json(files(Some(&modern), None)).unwrap();
        assert_eq!(cfg.pad, "!");
        assert_eq!(cfg.max_len, 77);
        assert_eq!(cfg.added[0], ("!".to_string(), Some(0), false));
        assert!(!flag(&cfg, EOS));
        let backend = json!({"added_tokens": [{"id": 49407, "content": EOS, "normalized": true}]});
        let both = ConfigFiles {
            backend: Some((&backend, p())),
            ..files(Some(&legacy), None)
        };
        assert!(flag(&SpecialConfig::from_json(both).unwrap(), EOS));
        let both = ConfigFiles {
            backend: Some((&backend, p())),
            ..files(Some(&modern), None)
        };
        assert!(!flag(&SpecialConfig::from_json(both).unwrap(), EOS));
        let broken = json!({"added_tokens": [{"content": EOS}]});
        assert!(SpecialConfig::from_json(ConfigFiles {
            backend: Some((&broken, p())),
            ..files(None, None)
        })
        .is_err());
    }

    #[test]
    fn config_errors_name_the_problem() {
        for bad in [
            json!({"model_max_length": 0}),
            json!({"model_max_length": "77"}),
            json!({"added_tokens_decoder": {"x": {"content": "a"}}}),
        ] {
            let err = SpecialConfig::from_json(files(Some(&bad), None))
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains("tokenizer_config.json"), "{err}");
        }
        let pad_obj = json!({"pad_token": {"content": "!"}, "model_max_length": 128});
        let cfg = SpecialConfig::from_json(files(Some(&pad_obj), None)).unwrap();
        assert_eq!((cfg.pad.as_str(), cfg.max_len), ("!", 128));
    }
}
