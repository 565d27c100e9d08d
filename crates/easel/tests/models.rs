//! `easel models inspect` and the real-checkpoint flags of `easel generate` as a user runs
//! them: what a folder or LoRA is (text and JSON), a LoRA and A1111 prompt weighting
//! changing the image, and a non-SDXL file passed as `--model` refused by name.

mod common;

use std::process::Output;

use common::easel;
use std::path::{Path, PathBuf};

fn sdxl_crate() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../easel-sdxl")
}

fn stdout_of(o: Output) -> String {
    assert!(
        o.status.success(),
        "easel failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn inspect_describes_a_folder_and_a_lora_in_text_and_json() {
    let folder = sdxl_crate().join("assets/tiny-sdxl");
    let text = stdout_of(easel(&["models", "inspect", folder.to_str().unwrap()]));
    assert!(
        text.contains("diffusers folder") && text.contains("1,392,115") && text.contains("text_encoder_2"),
        "{text}"
    );
    let lora = sdxl_crate().join("tests/fixtures/lora_kohya.safetensors");
    let json = stdout_of(easel(&["models", "inspect", lora.to_str().unwrap(), "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (v["layout"].as_str(), v["kind"].as_str()),
        (Some("lora"), Some("kohya_lora"))
    );
    assert_eq!(v["lora"]["layers"], 19);
    assert_eq!(v["metadata"]["ss_network_dim"], "4");
    let text = stdout_of(easel(&["models", "inspect", lora.to_str().unwrap()]));
    assert!(
        text.contains("metadata    3 keys")
            && text
                .lines()
                .any(|l| l.trim() == "ss_network_module            networks.lora"),
        "{text}"
    );
    let missing = easel(&["models", "inspect", "/nonexistent/x.safetensors"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("pass a diffusers model folder"));
}

#[test]
fn inspect_fails_on_what_is_not_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("cat.png");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n not a model").unwrap();
    for (path, expected) in [
        (dir.path(), "is not a model: the folder has no model_index.json"),
        (png.as_path(), "not a safetensors file"),
    ] {
        for json in [false, true] {
            let mut args = vec!["models", "inspect", path.to_str().unwrap()];
            if json {
                args.push("--json");
            }
            let o = easel(&args);
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(
                !o.status.success(),
                "{args:?} should fail; stdout: {}",
                String::from_utf8_lossy(&o.stdout)
            );
            assert!(stderr.contains(expected), "{args:?}: stderr was {stderr}");
        }
    }
}

fn generate(out: &Path, extra: &[&str]) -> Vec<u8> {
    let mut args = vec![
        "generate",
        "a (red:1.4) lighthouse",
        "--steps",
        "2",
        "--seed",
        "7",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let printed = stdout_of(easel(&args));
    let png = PathBuf::from(printed.lines().next().unwrap());
    image::open(png).unwrap().to_rgb8().into_raw()
}

#[test]
fn a_lora_and_a1111_weighting_change_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let base = generate(&dir.path().join("base"), &[]);
    let lora = sdxl_crate().join("tests/fixtures/lora_peft.safetensors");
    let spec = format!("{}:0.9", lora.display());
    let with_lora = generate(&dir.path().join("lora"), &["--lora", &spec]);
    let weighted = generate(&dir.path().join("a1111"), &["--prompt-mode", "a1111"]);
    assert_ne!(base, with_lora);
    assert_ne!(base, weighted);
}

#[test]
fn a_lora_passed_as_the_model_is_named_as_a_lora() {
    let lora = sdxl_crate().join("tests/fixtures/lora_kohya.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let o = easel(&[
        "generate",
        "x",
        "--model",
        lora.to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("LoRA") && err.contains("not an SDXL checkpoint") && err.contains("--lora"),
        "{err}"
    );
}
