//! Bad input gets a clear error, never a panic: missing and corrupt weight files,
//! unsupported configs, impossible sizes, zero steps, strength out of range,
//! unreadable init images. Each message must name the problem and what to do.

mod common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use easel_sdxl::noise::SeededNoise;
use easel_sdxl::pipeline::{GenerateRequest, InitImage};
use easel_sdxl::{Error, LoadOptions, SdxlModel};

fn tiny_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/tiny-sdxl")
}

/// A writable copy of the tiny model folder.
fn copy_tiny() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&tiny_dir(), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

fn load_err(dir: &Path) -> Error {
    match SdxlModel::load_dir(dir, &LoadOptions::default()) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e,
    }
}

#[test]
fn a_missing_model_folder_says_to_pass_a_diffusers_folder() {
    let e = load_err(Path::new("/nonexistent/sdxl"));
    let msg = e.to_string();
    assert!(matches!(e, Error::MissingFile { .. }), "{msg}");
    assert!(
        msg.contains("/nonexistent/sdxl") && msg.contains("diffusers model folder"),
        "{msg}"
    );
}

#[test]
fn missing_unet_weights_name_the_files_looked_for() {
    let dir = copy_tiny();
    std::fs::remove_file(dir.path().join("unet/diffusion_pytorch_model.safetensors")).unwrap();
    let msg = load_err(dir.path()).to_string();
    assert!(
        msg.contains("unet") && msg.contains("diffusion_pytorch_model.safetensors"),
        "{msg}"
    );
}

#[test]
fn pytorch_pickle_weights_are_refused_with_a_conversion_hint() {
    let dir = copy_tiny();
    let unet = dir.path().join("unet");
    std::fs::rename(
        unet.join("diffusion_pytorch_model.safetensors"),
        unet.join("diffusion_pytorch_model.bin"),
    )
    .unwrap();
    let msg = load_err(dir.path()).to_string();
    assert!(msg.contains("safetensors only") && msg.contains("convert"), "{msg}");
}

#[test]
fn a_truncated_weights_file_is_reported_with_its_path() {
    let dir = copy_tiny();
    let f = dir.path().join("vae/diffusion_pytorch_model.safetensors");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_err(dir.path());
    let msg = e.to_string();
    assert!(matches!(e, Error::Weights { .. }), "{msg}");
    assert!(
        msg.contains("vae/diffusion_pytorch_model.safetensors") && msg.contains("download it again"),
        "{msg}"
    );
}

#[test]
fn a_garbage_weights_file_is_reported_not_panicked_on() {
    let dir = copy_tiny();
    std::fs::write(
        dir.path().join("text_encoder/model.safetensors"),
        b"this is not a safetensors file",
    )
    .unwrap();
    let msg = load_err(dir.path()).to_string();
    assert!(msg.contains("text_encoder/model.safetensors"), "{msg}");
}

#[test]
fn weights_that_do_not_match_the_config_say_so() {
    let dir = copy_tiny();
    let cfg_path = dir.path().join("unet/config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["block_out_channels"] = serde_json::json!([32, 64, 128]);
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let msg = load_err(dir.path()).to_string();
    assert!(msg.contains("do not match this config.json"), "{msg}");
}

#[test]
fn unsupported_unet_options_are_rejected_by_name() {
    let dir = copy_tiny();
    let cfg_path = dir.path().join("unet/config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["class_embed_type"] = serde_json::json!("projection");
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let e = load_err(dir.path());
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
    assert!(e.to_string().contains("class_embed_type"), "{e}");
}

#[test]
fn a_malformed_config_names_the_file() {
    let dir = copy_tiny();
    std::fs::write(dir.path().join("vae/config.json"), b"{ not json").unwrap();
    let e = load_err(dir.path());
    assert!(matches!(e, Error::Config { .. }), "{e}");
    assert!(e.to_string().contains("vae/config.json"), "{e}");
}

#[test]
fn fp16_variant_files_load_when_the_full_precision_ones_are_absent() {
    let dir = copy_tiny();
    for (sub, stem) in [("unet", "diffusion_pytorch_model"), ("text_encoder_2", "model")] {
        let plain = dir.path().join(format!("{sub}/{stem}.safetensors"));
        let tensors = candle_core::safetensors::load(&plain, &Device::Cpu).unwrap();
        let half: std::collections::HashMap<String, Tensor> = tensors
            .into_iter()
            .map(|(k, v)| (k, v.to_dtype(DType::F16).unwrap()))
            .collect();
        candle_core::safetensors::save(&half, dir.path().join(format!("{sub}/{stem}.fp16.safetensors"))).unwrap();
        std::fs::remove_file(plain).unwrap();
    }
    let model = SdxlModel::load_dir(dir.path(), &LoadOptions::default()).unwrap();
    let (ctx, _) = model.encode_text("a cat").unwrap();
    let (want, _) = common::tiny().encode_text("a cat").unwrap();
    // Same weights rounded to f16: close, not equal.
    let err = common::max_abs_diff(&ctx, &want);
    assert!(err < 5e-2, "fp16-variant encoder drifted by {err}");
}

fn request(width: usize, height: usize) -> GenerateRequest {
    let mut r = GenerateRequest::new("a cat", width, height);
    r.steps = 2;
    r
}

fn invalid(req: &GenerateRequest) -> String {
    let m = common::tiny();
    match m.generate(req, &mut SeededNoise::new(0, req.num_images), &mut |_| {}) {
        Ok(_) => panic!("request should be refused"),
        Err(e @ Error::InvalidRequest(_)) => e.to_string(),
        Err(e) => panic!("expected an invalid-request error, got {e}"),
    }
}

#[test]
fn sizes_that_are_not_multiples_of_eight_are_refused_with_a_suggestion() {
    let msg = invalid(&request(60, 64));
    assert!(
        msg.contains("width 60") && msg.contains("multiple of 8") && msg.contains("try 56"),
        "{msg}"
    );
    assert!(invalid(&request(64, 0)).contains("height 0"));
}

#[test]
fn zero_steps_are_refused() {
    let mut r = request(64, 64);
    r.steps = 0;
    assert!(invalid(&r).contains("steps must be between 1"));
}

#[test]
fn batches_beyond_six_are_refused() {
    let mut r = request(64, 64);
    r.num_images = 7;
    assert!(invalid(&r).contains("num_images must be between 1 and 6"));
}

#[test]
fn strength_outside_zero_to_one_is_refused() {
    let pixels = Tensor::zeros((1, 3, 64, 64), DType::F32, &Device::Cpu).unwrap();
    for s in [0.0, -0.2, 1.5, f64::NAN] {
        let mut r = request(64, 64);
        r.init_image = Some(InitImage {
            pixels: pixels.clone(),
            strength: s,
        });
        assert!(invalid(&r).contains("strength must be in (0, 1]"), "strength {s}");
    }
}

#[test]
fn a_strength_too_small_to_run_any_step_says_what_to_raise() {
    let pixels = Tensor::zeros((1, 3, 64, 64), DType::F32, &Device::Cpu).unwrap();
    let mut r = request(64, 64);
    r.init_image = Some(InitImage { pixels, strength: 0.1 });
    assert!(invalid(&r).contains("raise the strength or the steps"));
}

#[test]
fn latents_of_the_wrong_shape_are_refused() {
    let mut r = request(64, 64);
    r.latents = Some(Tensor::zeros((1, 4, 4, 4), DType::F32, &Device::Cpu).unwrap());
    assert!(invalid(&r).contains("latents have shape"));
}

#[test]
fn an_unreadable_init_image_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("broken.png");
    std::fs::write(&p, b"not an image").unwrap();
    let e = easel_sdxl::images::load_rgb(&p).unwrap_err();
    assert!(matches!(e, Error::Image { .. }));
    assert!(e.to_string().contains("broken.png"), "{e}");
    assert!(easel_sdxl::images::load_rgb(&dir.path().join("absent.png")).is_err());
}
