//! Single-file SDXL checkpoints: the tiny model as one original-layout file loads to the
//! same outputs as its folder and as diffusers' `from_single_file`; files that are not
//! SDXL checkpoints are named; `inspect` reads headers only.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use easel_sdxl::inspect::{inspect, Layout};
use easel_sdxl::noise::ReplayNoise;
use easel_sdxl::pipeline::{GenerateRequest, InitImage};
use easel_sdxl::{Error, LoadOptions, SdxlModel};

use crate::common::{assert_close, max_abs_diff, tiny, tiny_refs, Refs, LAYER_TOL, PIPELINE_TOL};
use crate::ldm::{digest, tiny_dir, write_single_file};
use crate::refs;

/// The derived single files (f32, f16, bf16), written once per test run.
fn files() -> &'static (tempfile::TempDir, [PathBuf; 3]) {
    static FILES: OnceLock<(tempfile::TempDir, [PathBuf; 3])> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let paths = [DType::F32, DType::F16, DType::BF16].map(|d| write_single_file(dir.path(), d));
        (dir, paths)
    })
}

fn file(dtype: DType) -> &'static Path {
    let i = [DType::F32, DType::F16, DType::BF16]
        .iter()
        .position(|d| *d == dtype)
        .unwrap();
    &files().1[i]
}

fn with_tiny_configs() -> LoadOptions {
    LoadOptions {
        config_dir: Some(tiny_dir()),
        ..Default::default()
    }
}

fn load(dtype: DType) -> SdxlModel {
    SdxlModel::load_path(file(dtype), &with_tiny_configs()).expect("the tiny single file loads")
}

fn single_f32() -> &'static SdxlModel {
    static MODEL: OnceLock<SdxlModel> = OnceLock::new();
    MODEL.get_or_init(|| load(DType::F32))
}

fn sf_refs() -> &'static Refs {
    refs("single_file_refs")
}

#[test]
fn the_derived_files_are_byte_for_byte_the_files_diffusers_loaded() {
    let js = &sf_refs().json;
    for (name, dtype) in [("f32", DType::F32), ("f16", DType::F16), ("bf16", DType::BF16)] {
        assert_eq!(
            digest(file(dtype)),
            js["digests"][name].as_str().unwrap(),
            "{name} single file"
        );
    }
    let keys = js["keys"].as_object().unwrap();
    assert!(keys.contains_key("model.diffusion_model.output_blocks.2.2.conv.weight"));
    assert!(keys.contains_key("conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight"));
}

/// One Euler run recorded by the script (`sf_f32`, `sf_f16`, ...).
fn check_run(m: &SdxlModel, r: &Refs, prefix: &str, tol: f32) -> Tensor {
    let run = r.json["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["prefix"] == prefix)
        .unwrap();
    let mut req = GenerateRequest::new(run["prompt"].as_str().unwrap(), 64, 64);
    req.negative_prompt = run["negative_prompt"].as_str().map(str::to_string);
    req.steps = run["steps"].as_u64().unwrap() as usize;
    req.guidance = run["guidance_scale"].as_f64().unwrap();
    req.latents = Some(r.get(&format!("{prefix}.latents_in")));
    let out = m.generate(&req, &mut ReplayNoise::new(vec![]), &mut |_| {}).unwrap();
    assert_close(
        &format!("{prefix}.latents_out"),
        &out.latents,
        &r.get(&format!("{prefix}.latents_out")),
        tol,
    );
    if r.has(&format!("{prefix}.image")) {
        assert_close(
            &format!("{prefix}.image"),
            &out.images,
            &r.get(&format!("{prefix}.image")),
            tol,
        );
    }
    out.latents
}

#[test]
fn an_f32_single_file_gives_the_folders_outputs_exactly_and_diffusers_within_tolerance() {
    let (m, r) = (single_f32(), sf_refs());
    let prompt = r.json["prompt"].as_str().unwrap();
    let (ctx, pooled) = m.encode_text(prompt).unwrap();
    let (fctx, fpooled) = tiny().encode_text(prompt).unwrap();
    assert_eq!(max_abs_diff(&ctx, &fctx), 0.0, "same weights, same numbers");
    assert_eq!(max_abs_diff(&pooled, &fpooled), 0.0);
    let negative = r.json["negative_prompt"].as_str();
    let emb = m.encode_prompt(prompt, negative, true, 1).unwrap();
    assert_close(
        "sf_f32.prompt_embeds",
        &emb.context.narrow(0, 1, 1).unwrap(),
        &r.get("sf_f32.prompt_embeds"),
        LAYER_TOL,
    );
    assert_close(
        "sf_f32.pooled",
        &emb.pooled.narrow(0, 1, 1).unwrap(),
        &r.get("sf_f32.pooled"),
        LAYER_TOL,
    );
    let latents = check_run(m, r, "sf_f32", PIPELINE_TOL);
    let folder = check_run(tiny(), r, "sf_f32", PIPELINE_TOL);
    assert_eq!(max_abs_diff(&latents, &folder), 0.0);
}

#[test]
fn f16_and_bf16_single_files_load_into_f32_like_diffusers() {
    for (name, dtype) in [("sf_f16", DType::F16), ("sf_bf16", DType::BF16)] {
        check_run(&load(dtype), sf_refs(), name, PIPELINE_TOL);
    }
}

#[test]
fn txt2img_and_img2img_share_one_loaded_single_file() {
    let m = single_f32();
    check_run(m, sf_refs(), "sf_f32", PIPELINE_TOL);
    let r = tiny_refs();
    let run = r.json["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "img2img")
        .unwrap();
    let img = easel_sdxl::images::load_rgb(&crate::common::fixtures().join("init.png")).unwrap();
    let mut req = GenerateRequest::new(run["prompt"].as_str().unwrap(), 64, 64);
    req.negative_prompt = run["negative_prompt"].as_str().map(str::to_string);
    req.steps = run["steps"].as_u64().unwrap() as usize;
    req.guidance = run["guidance_scale"].as_f64().unwrap();
    let pixels = easel_sdxl::images::to_tensor(&img, m.device()).unwrap();
    req.init_image = Some(InitImage {
        pixels,
        strength: run["strength"].as_f64().unwrap(),
    });
    let count = run["noise_count"].as_u64().unwrap() as usize;
    let mut noise = ReplayNoise::new((0..count).map(|k| r.get(&format!("img2img.noise{k}"))).collect());
    let out = m.generate(&req, &mut noise, &mut |_| {}).unwrap();
    assert_close(
        "img2img.latents_out",
        &out.latents,
        &r.get("img2img.latents_out"),
        PIPELINE_TOL,
    );
}

fn load_err(path: &Path, opts: &LoadOptions) -> String {
    match SdxlModel::load_path(path, opts) {
        Ok(_) => panic!("{} should not load", path.display()),
        Err(e) => e.to_string(),
    }
}

/// A safetensors file holding zero-filled tensors of the given names and shapes.
fn fake_file(dir: &Path, name: &str, tensors: &[(&str, &[usize])]) -> PathBuf {
    let map: std::collections::HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, s)| (k.to_string(), Tensor::zeros(*s, DType::F16, &Device::Cpu).unwrap()))
        .collect();
    let path = dir.join(name);
    candle_core::safetensors::save(&map, &path).unwrap();
    path
}

#[test]
fn files_that_are_not_sdxl_checkpoints_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: [(PathBuf, &str); 5] = [
        (
            fake_file(
                d,
                "sd15.safetensors",
                &[
                    ("model.diffusion_model.input_blocks.0.0.weight", &[320, 4, 3, 3]),
                    (
                        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
                        &[8, 768],
                    ),
                    ("first_stage_model.encoder.conv_in.weight", &[128, 3, 3, 3]),
                ],
            ),
            "Stable Diffusion 1.x",
        ),
        (
            fake_file(
                d,
                "sd2.safetensors",
                &[
                    ("model.diffusion_model.input_blocks.0.0.weight", &[320, 4, 3, 3]),
                    ("cond_stage_model.model.token_embedding.weight", &[8, 1024]),
                ],
            ),
            "Stable Diffusion 2.x",
        ),
        (
            crate::common::fixtures().join("lora_kohya.safetensors"),
            "a LoRA (kohya layout)",
        ),
        (
            fake_file(
                d,
                "vae.safetensors",
                &[("encoder.down.0.block.0.conv1.weight", &[8, 8, 3, 3])],
            ),
            "a VAE alone",
        ),
        (
            tiny_dir().join("unet/diffusion_pytorch_model.safetensors"),
            "pass the whole diffusers folder",
        ),
    ];
    for (path, want) in cases {
        let msg = load_err(&path, &LoadOptions::default());
        assert!(
            msg.contains(want) && msg.contains("not an SDXL checkpoint"),
            "{}: {msg}",
            path.display()
        );
    }
}

#[test]
fn a_truncated_single_file_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(file(DType::F16)).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
    let msg = load_err(&cut, &with_tiny_configs());
    assert!(msg.contains("truncated") && msg.contains("download it again"), "{msg}");
}

#[test]
fn a_checkpoint_of_other_widths_lists_the_differences_and_suggests_config() {
    let msg = load_err(file(DType::F16), &LoadOptions::default());
    assert!(
        msg.contains("UNet width 16 (config: 320)") && msg.contains("CLIP-L layers 3 (config: 12)"),
        "{msg}"
    );
    assert!(msg.contains("--config DIR"), "{msg}");
}

#[test]
fn a_missing_path_names_both_accepted_layouts() {
    let msg = load_err(Path::new("/nonexistent/model.safetensors"), &LoadOptions::default());
    assert!(
        msg.contains("diffusers model folder") && msg.contains("single-file"),
        "{msg}"
    );
}

#[test]
fn inspect_reads_layout_components_dtype_and_parameters_from_headers() {
    let folder = inspect(&tiny_dir()).unwrap();
    assert_eq!(folder.layout, Layout::DiffusersFolder);
    assert_eq!(folder.components.len(), 4);
    assert_eq!(folder.dtype, "F32");
    let counts = &tiny_refs().json["param_counts"];
    assert_eq!(folder.parameters, counts["total"].as_u64().unwrap());
    let single = inspect(file(DType::F16)).unwrap();
    assert_eq!((single.layout, single.dtype.as_str()), (Layout::SingleFile, "F16"));
    // The same weights plus OpenCLIP's unused `logit_scale` scalar; int64 buffers are not counted.
    assert_eq!(single.parameters, folder.parameters + 1);
    let unet = single.components.iter().find(|c| c.name == "unet").unwrap();
    assert_eq!(unet.parameters, counts["unet"].as_u64().unwrap());
    let arch = single.architecture.unwrap();
    assert_eq!(
        (arch.unet_width, arch.context_dim, arch.clip_g_layers),
        (Some(16), Some(96), Some(3))
    );
    let lora = inspect(&crate::common::fixtures().join("lora_peft.safetensors")).unwrap();
    assert_eq!(lora.layout, Layout::Lora);
    assert_eq!(lora.lora.unwrap().layers, 17);
    let json = serde_json::to_value(inspect(file(DType::F32)).unwrap()).unwrap();
    assert_eq!(json["kind"], "sdxl_checkpoint");
    assert!(matches!(
        inspect(Path::new("/nonexistent")),
        Err(Error::MissingFile { .. })
    ));
}

#[test]
fn inspect_shows_a_files_metadata_and_refuses_what_is_not_a_model() {
    let kohya = inspect(&crate::common::fixtures().join("lora_kohya.safetensors")).unwrap();
    assert_eq!(kohya.metadata.get("ss_network_dim").map(String::as_str), Some("4"));
    assert_eq!(
        kohya.metadata.get("ss_network_module").map(String::as_str),
        Some("networks.lora")
    );
    let json = serde_json::to_value(&kohya).unwrap();
    assert_eq!(json["metadata"]["ss_network_alpha"], "2.0");
    assert!(inspect(&tiny_dir()).unwrap().metadata.is_empty());

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cat.png"), b"\x89PNG\r\n\x1a\n not a model").unwrap();
    let e = inspect(dir.path()).unwrap_err();
    assert!(matches!(e, Error::NotAModel { .. }), "{e:?}");
    assert!(e.to_string().contains("no model_index.json"), "{e}");
    let e = inspect(&dir.path().join("cat.png")).unwrap_err();
    assert!(e.to_string().contains("not a safetensors file"), "{e}");

    // One component is enough to be an (incomplete) diffusers folder.
    std::fs::create_dir(dir.path().join("unet")).unwrap();
    let partial = inspect(dir.path()).unwrap();
    assert_eq!(partial.layout, Layout::DiffusersFolder);
    assert!(partial.description.contains("incomplete"), "{}", partial.description);
}
