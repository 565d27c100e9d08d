//! Token ids against `transformers.CLIPTokenizer`: tests/fixtures/clip_tokens.json is made
//! by scripts/tokenizer_refs.py from the same embedded vocabulary, for SDXL's two tokenizer
//! folders (pad `<|endoftext|>` and pad `!`) and a few other config layouts.

use std::io::Read;
use std::path::{Path, PathBuf};

use easel_sdxl::tokenizer::ClipTokenizer;
use easel_sdxl::Error;
use serde_json::Value;

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

fn fixture() -> Value {
    let path = Path::new(MANIFEST).join("tests/fixtures/clip_tokens.json");
    serde_json::from_slice(&std::fs::read(&path).expect("read clip_tokens.json")).expect("parse clip_tokens.json")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("id list")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// Checks every fixture case whose ids are stored under `*_{key}`.
fn check_cases(tok: &ClipTokenizer, key: &str) {
    let fx = fixture();
    let cases = fx["cases"].as_array().expect("cases");
    assert!(cases.len() >= 40);
    for case in cases {
        let text = case["text"].as_str().expect("text");
        assert_eq!(
            tok.encode(text),
            ids(&case[format!("ids_{key}")]),
            "encode({text:?}) for pad {key}"
        );
        assert_eq!(
            tok.encode_padded(text),
            ids(&case[format!("padded_{key}")]),
            "encode_padded({text:?}) for pad {key}"
        );
        let body = tok.encode_body(text);
        assert_eq!(body[..], tok.encode(text)[1..body.len() + 1]);
    }
}

#[test]
fn embedded_matches_transformers_for_sdxl_tokenizer_1() {
    let tok = ClipTokenizer::embedded("<|endoftext|>").unwrap();
    assert_eq!((tok.pad_id(), tok.max_len(), tok.vocab_size()), (49407, 77, 49408));
    check_cases(&tok, "eot");
}

#[test]
fn embedded_matches_transformers_for_sdxl_tokenizer_2() {
    let tok = ClipTokenizer::embedded("!").unwrap();
    assert_eq!((tok.bos_id(), tok.eos_id(), tok.pad_id()), (49406, 49407, 0));
    check_cases(&tok, "bang");
}

/// A temporary tokenizer folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("easel-tokenizer-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tok")).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, contents: &[u8]) {
        std::fs::write(self.0.join("tok").join(name), contents).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// vocab.json and merges.txt as the reference script writes them from the embedded gz.
fn vocab_files() -> (String, String) {
    let gz = std::fs::read(Path::new(MANIFEST).join("assets/clip/bpe_simple_vocab_16e6.txt.gz")).unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut text).unwrap();
    let merges: Vec<&str> = text.split('\n').skip(1).take(49152 - 256 - 2).collect();
    let mut bytes: Vec<u32> = (33..=126).chain(161..=172).chain(174..=255).collect();
    let mut chars: Vec<char> = bytes.iter().map(|&b| char::from_u32(b).unwrap()).collect();
    let mut next = 256;
    for b in 0..256 {
        if !bytes.contains(&b) {
            bytes.push(b);
            chars.push(char::from_u32(next).unwrap());
            next += 1;
        }
    }
    let mut vocab: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
    vocab.extend(chars.iter().map(|c| format!("{c}</w>")));
    vocab.extend(merges.iter().map(|m| m.replace(' ', "")));
    vocab.extend(["<|startoftext|>".to_string(), "<|endoftext|>".to_string()]);
    let map: serde_json::Map<String, Value> = vocab
        .into_iter()
        .enumerate()
        .map(|(i, t)| (t, Value::from(i)))
        .collect();
    (
        Value::Object(map).to_string(),
        format!("#version: 0.2\n{}\n", merges.join("\n")),
    )
}

/// A folder with the full vocabulary and the config files of fixture layout `layout`.
fn folder(layout: &str) -> TempDir {
    let dir = TempDir::new(layout);
    let (vocab, merges) = vocab_files();
    dir.write("vocab.json", vocab.as_bytes());
    dir.write("merges.txt", merges.as_bytes());
    let fx = fixture();
    let files = fx["layouts"][layout]
        .as_object()
        .unwrap_or_else(|| panic!("layout {layout}"));
    for (name, contents) in files {
        dir.write(name, contents.as_str().unwrap().as_bytes());
    }
    dir
}

#[test]
fn folder_with_sdxl_configs_matches_transformers() {
    for (layout, key) in [("sdxl_eot", "eot"), ("sdxl_bang", "bang")] {
        let dir = folder(layout);
        let tok = ClipTokenizer::from_dir(&dir.0, "tok").unwrap();
        assert_eq!((tok.max_len(), tok.vocab_size()), (77, 49408));
        check_cases(&tok, key);
    }
}

#[test]
fn other_config_layouts_match_transformers() {
    let fx = fixture();
    let variants = fx["variants"].as_array().unwrap();
    let mut layouts: Vec<&str> = variants.iter().map(|v| v["layout"].as_str().unwrap()).collect();
    layouts.dedup();
    assert!(layouts.len() >= 3);
    for layout in layouts {
        let dir = folder(layout);
        let tok = ClipTokenizer::from_dir(&dir.0, "tok/").unwrap();
        assert_eq!(tok.max_len(), 77, "{layout}");
        for v in variants.iter().filter(|v| v["layout"] == layout) {
            let text = v["text"].as_str().unwrap();
            assert_eq!(tok.encode(text), ids(&v["ids"]), "{layout}: {text:?}");
            let pad = v["pad"].as_str().unwrap();
            assert_eq!(tok.pad_id(), if pad == "!" { 0 } else { 49407 }, "{layout}");
        }
    }
}

fn load_err(dir: &TempDir) -> String {
    let err = ClipTokenizer::from_dir(&dir.0, "tok").unwrap_err();
    assert!(
        matches!(err, Error::MissingFile { .. } | Error::Config { .. }),
        "{err:?}"
    );
    err.to_string()
}

#[test]
fn bad_folders_give_errors_naming_the_file() {
    let dir = TempDir::new("bad");
    assert!(load_err(&dir).contains("vocab.json"));
    dir.write(
        "vocab.json",
        br#"{"a": 0, "b": 1, "b</w>": 2, "ab</w>": 3, "<|startoftext|>": 4, "<|endoftext|>": 5}"#,
    );
    assert!(load_err(&dir).contains("merges.txt"));
    dir.write("merges.txt", b"#version: 0.2\na b</w>\na b c\n");
    let err = load_err(&dir);
    assert!(err.contains("merges.txt") && err.contains("line 3"), "{err}");
    dir.write("merges.txt", b"#version: 0.2\na b</w>\n");
    assert!(ClipTokenizer::from_dir(&dir.0, "tok").is_ok());
    dir.write("merges.txt", b"#version: 0.2\na b\n");
    let err = load_err(&dir);
    assert!(err.contains("merges.txt") && err.contains("\"ab\""), "{err}");
    dir.write("merges.txt", b"#version: 0.2\na b</w>\n");
    dir.write("tokenizer_config.json", br#"{"pad_token": "!"}"#);
    let err = load_err(&dir);
    assert!(err.contains("vocab.json") && err.contains("pad"), "{err}");
    dir.write("tokenizer_config.json", b"{not json");
    assert!(load_err(&dir).contains("tokenizer_config.json"));
    dir.write(
        "tokenizer_config.json",
        br#"{"pad_token": {"content": "<|endoftext|>"}, "model_max_length": 8}"#,
    );
    dir.write("special_tokens_map.json", b"[]");
    let tok = ClipTokenizer::from_dir(&dir.0, "tok").unwrap();
    assert_eq!((tok.pad_id(), tok.max_len(), tok.vocab_size()), (5, 8, 6));
    // "x" is in no vocabulary: it becomes the unknown token (eos), as in transformers.
    assert_eq!(tok.encode_padded("ab xab"), [4, 3, 5, 3, 5, 5, 5, 5]);
}

/// The bundled tiny model's tokenizers (truncated vocabulary) against the ids its
/// reference script recorded, when the model and references are present.
#[test]
fn tiny_model_tokenizers_match_references() {
    let root = Path::new(MANIFEST).join("assets/tiny-sdxl");
    let refs = Path::new(MANIFEST).join("tests/fixtures/tiny_refs.safetensors");
    let prompts = Path::new(MANIFEST).join("tests/fixtures/tiny_refs.json");
    if !(root.join("tokenizer/vocab.json").is_file() && refs.is_file() && prompts.is_file()) {
        eprintln!("skipped: the tiny model or its references are not there yet");
        return;
    }
    // Python's json writes -Infinity/NaN in the scheduler configs there: not JSON to serde.
    let text = std::fs::read_to_string(&prompts).unwrap();
    let text = text
        .replace("-Infinity", "null")
        .replace("Infinity", "null")
        .replace("NaN", "null");
    let prompts: Value = serde_json::from_str(&text).expect("parse tiny_refs.json");
    let prompts = prompts["token_prompts"].as_array().expect("token_prompts");
    let tensors = candle_core::safetensors::load(&refs, &candle_core::Device::Cpu).unwrap();
    for (sub, key) in [("tokenizer", "tok1"), ("tokenizer_2", "tok2")] {
        let tok = ClipTokenizer::from_dir(&root, sub).unwrap();
        for (i, prompt) in prompts.iter().enumerate() {
            let text = prompt.as_str().expect("prompt");
            let want: Vec<i64> = tensors[&format!("{key}.{i}")].to_vec1().unwrap();
            let got: Vec<i64> = tok.encode_padded(text).into_iter().map(i64::from).collect();
            assert_eq!(got, want, "{sub}: {text:?}");
        }
    }
}
