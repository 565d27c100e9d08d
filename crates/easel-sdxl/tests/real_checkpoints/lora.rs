//! LoRAs against diffusers' `load_lora_weights` + `fuse_lora(lora_scale=...)`: the kohya
//! and PEFT tiny LoRAs alone and together, and removal giving back the base model bit
//! for bit, without reloading anything.

use candle_core::Tensor;
use easel_sdxl::lora::{LoraFile, LoraLayout};
use easel_sdxl::noise::ReplayNoise;
use easel_sdxl::parts::UNetCond;
use easel_sdxl::pipeline::GenerateRequest;
use easel_sdxl::{LoadOptions, SdxlModel};

use crate::common::{assert_close, fixtures, max_abs_diff, Refs, LAYER_TOL, PIPELINE_TOL};
use crate::refs;

fn lora_refs() -> &'static Refs {
    refs("lora_refs")
}

fn open(name: &str) -> LoraFile {
    LoraFile::open(&fixtures().join(name)).unwrap()
}

fn fresh() -> SdxlModel {
    SdxlModel::load_tiny(&LoadOptions::default()).unwrap()
}

/// (prompt embeddings, pooled, UNet output, final latents) of a model on the script's inputs.
fn outputs(m: &SdxlModel) -> [Tensor; 4] {
    let r = lora_refs();
    let prompt = r.json["prompt"].as_str().unwrap();
    let (ctx, pooled) = m.encode_text(prompt).unwrap();
    let (ctx_in, text, ids) = (
        r.get("unet_in.encoder_hidden_states"),
        r.get("unet_in.text_embeds"),
        r.get("unet_in.time_ids"),
    );
    let cond = UNetCond {
        context: &ctx_in,
        text_embeds: Some(&text),
        time_ids: Some(&ids),
    };
    let t = r.json["unet_timestep"].as_f64().unwrap();
    let unet = m.unet().forward(&r.get("unet_in.sample"), t, &cond).unwrap();
    let mut req = GenerateRequest::new(prompt, 64, 64);
    req.negative_prompt = r.json["negative_prompt"].as_str().map(str::to_string);
    req.steps = 3;
    req.latents = Some(r.get("base.run.latents_in"));
    let latents = m
        .generate(&req, &mut ReplayNoise::new(vec![]), &mut |_| {})
        .unwrap()
        .latents;
    [ctx, pooled, unet, latents]
}

fn check(m: &SdxlModel, prefix: &str) {
    let r = lora_refs();
    let [ctx, pooled, unet, latents] = outputs(m);
    assert_close(
        &format!("{prefix}.prompt_embeds"),
        &ctx,
        &r.get(&format!("{prefix}.prompt_embeds")),
        LAYER_TOL,
    );
    assert_close(
        &format!("{prefix}.pooled"),
        &pooled,
        &r.get(&format!("{prefix}.pooled")),
        LAYER_TOL,
    );
    assert_close(
        &format!("{prefix}.unet_out"),
        &unet,
        &r.get(&format!("{prefix}.unet_out")),
        LAYER_TOL,
    );
    assert_close(
        &format!("{prefix}.run.latents_out"),
        &latents,
        &r.get(&format!("{prefix}.run.latents_out")),
        PIPELINE_TOL,
    );
}

#[test]
fn a_kohya_lora_with_original_unet_names_matches_diffusers_fuse_lora() {
    let lora = open("lora_kohya.safetensors");
    assert_eq!(lora.layout, LoraLayout::Kohya);
    let mut m = fresh();
    let report = m.set_loras(&[(&lora, 0.8)]).unwrap();
    assert_eq!((report.loras[0].layers, report.loras[0].unmatched.len()), (19, 0));
    assert_eq!(report.merged_weights, 19);
    check(&m, "lora_kohya");
}

#[test]
fn a_peft_lora_with_alphas_in_its_metadata_matches_diffusers_fuse_lora() {
    let lora = open("lora_peft.safetensors");
    assert_eq!(lora.layout, LoraLayout::Peft);
    assert!(
        lora.layers.iter().all(|l| l.alpha.is_some()),
        "alphas come from lora_adapter_metadata"
    );
    let mut m = fresh();
    m.set_loras(&[(&lora, 0.6)]).unwrap();
    check(&m, "lora_peft");
}

#[test]
fn two_loras_at_once_add_their_updates() {
    let (k, p) = (open("lora_kohya.safetensors"), open("lora_peft.safetensors"));
    let mut m = fresh();
    let report = m.set_loras(&[(&k, 0.8), (&p, 0.6)]).unwrap();
    assert_eq!(report.merged_weights, 21);
    check(&m, "lora_both");
}

#[test]
fn removing_loras_restores_the_base_outputs_exactly() {
    let lora = open("lora_kohya.safetensors");
    let mut m = fresh();
    let before = outputs(&m);
    check(&m, "base");
    m.set_loras(&[(&lora, 0.8)]).unwrap();
    assert_eq!(m.active_loras().len(), 1);
    assert!(
        max_abs_diff(&outputs(&m)[2], &before[2]) > 1e-3,
        "the LoRA changes the UNet"
    );
    m.clear_loras().unwrap();
    assert!(m.active_loras().is_empty());
    for (a, b) in outputs(&m).iter().zip(&before) {
        assert_eq!(max_abs_diff(a, b), 0.0);
    }
}

#[test]
fn with_loras_removes_them_even_when_the_job_fails() {
    let lora = open("lora_peft.safetensors");
    let mut m = fresh();
    let before = outputs(&m)[2].clone();
    let failed: easel_sdxl::Result<()> =
        m.with_loras(&[(&lora, 1.0)], |_| Err(easel_sdxl::Error::invalid("job failed")));
    assert!(failed.is_err());
    assert_eq!(max_abs_diff(&outputs(&m)[2], &before), 0.0);
    let layers = m
        .with_loras(&[(&lora, 1.0)], |m| Ok(m.active_loras()[0].layers))
        .unwrap();
    assert_eq!(layers, 17);
}

#[test]
fn files_that_are_not_loras_or_fit_no_layer_are_refused() {
    let e = LoraFile::open(&crate::ldm::tiny_dir().join("vae/diffusion_pytorch_model.safetensors")).unwrap_err();
    assert!(
        e.to_string().contains("not a LoRA") && e.to_string().contains("VAE"),
        "{e}"
    );
    let mut lora = open("lora_kohya.safetensors");
    for l in &mut lora.layers {
        l.module = easel_sdxl::lora::ModuleName::Flat(format!("sd15_{}", l.name));
    }
    let e = fresh().set_loras(&[(&lora, 1.0)]).unwrap_err();
    assert!(e.to_string().contains("matches no layer"), "{e}");
}
