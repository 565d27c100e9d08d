//! Parity with diffusers: every component of the bundled tiny SDXL, and complete
//! pipelines for every scheduler, against tensors diffusers recorded from the same
//! weights (scripts/make_tiny_sdxl.py). Tolerances: 1e-4 per component, 1e-3 per
//! pipeline, relative to the reference's largest magnitude (at least 1).

mod common;

use candle_core::{DType, Tensor};
use common::{assert_close, tiny, tiny_refs, Refs, LAYER_TOL, PIPELINE_TOL};
use easel_sdxl::noise::ReplayNoise;
use easel_sdxl::parts::UNetCond;
use easel_sdxl::pipeline::{GenerateRequest, InitImage};
use easel_sdxl::SdxlModel;

fn ids(refs: &Refs, name: &str) -> Tensor {
    refs.get(name).to_dtype(DType::U32).unwrap()
}

#[test]
fn text_encoders_give_diffusers_penultimate_states_and_pooled_embedding() {
    check_text_encoders(tiny(), tiny_refs());
}

fn check_text_encoders(m: &SdxlModel, r: &Refs) {
    let o1 = m.text_encoder().forward(&ids(r, "te.ids1")).unwrap();
    assert_close("te1.penultimate", &o1.penultimate, &r.get("te1.penultimate"), LAYER_TOL);
    assert_close("te1.last", &o1.last, &r.get("te1.last"), LAYER_TOL);
    let o2 = m.text_encoder_2().forward(&ids(r, "te.ids2")).unwrap();
    assert_close("te2.penultimate", &o2.penultimate, &r.get("te2.penultimate"), LAYER_TOL);
    assert_close(
        "te2.text_embeds",
        &o2.text_embeds.unwrap(),
        &r.get("te2.text_embeds"),
        LAYER_TOL,
    );
}

#[test]
fn prompt_encoding_concatenates_both_encoders_like_encode_prompt() {
    check_prompt_encoding(tiny(), tiny_refs());
}

fn check_prompt_encoding(m: &SdxlModel, r: &Refs) {
    let prompt = r.json["te_prompt"].as_str().unwrap();
    let (ctx, pooled) = m.encode_text(prompt).unwrap();
    assert_close("te.prompt_embeds", &ctx, &r.get("te.prompt_embeds"), LAYER_TOL);
    assert_close("te.pooled", &pooled, &r.get("te.pooled"), LAYER_TOL);
}

/// A prompt and its negative encoded as one batch of two give, row by row, what each
/// gives alone (and so diffusers' `encode_prompt` values).
#[test]
fn a_prompt_and_its_negative_encoded_together_equal_each_encoded_alone() {
    let (m, r) = (tiny(), tiny_refs());
    let prompt = r.json["te_prompt"].as_str().unwrap();
    let negative = "blurry, low quality";
    let [(nctx, npooled), (ctx, pooled)] = m.encode_text_pair(negative, prompt).unwrap();
    assert_close("pair.prompt_embeds", &ctx, &r.get("te.prompt_embeds"), LAYER_TOL);
    assert_close("pair.pooled", &pooled, &r.get("te.pooled"), LAYER_TOL);
    let (alone_ctx, alone_pooled) = m.encode_text(negative).unwrap();
    assert_close("pair.negative_embeds", &nctx, &alone_ctx, 1e-6);
    assert_close("pair.negative_pooled", &npooled, &alone_pooled, 1e-6);
}

fn unet_case(m: &SdxlModel, r: &Refs, prefix: &str) {
    let t = r.json["unet_forwards"][prefix]["timestep"].as_f64().unwrap();
    let ctx = r.get(&format!("{prefix}.encoder_hidden_states"));
    let text = r.get(&format!("{prefix}.text_embeds"));
    let ids = r.get(&format!("{prefix}.time_ids"));
    let cond = UNetCond {
        context: &ctx,
        text_embeds: Some(&text),
        time_ids: Some(&ids),
    };
    let out = m.unet().forward(&r.get(&format!("{prefix}.sample")), t, &cond).unwrap();
    assert_close(
        &format!("{prefix}.out"),
        &out,
        &r.get(&format!("{prefix}.out")),
        LAYER_TOL,
    );
}

#[test]
fn unet_forward_with_text_time_conditioning_matches_diffusers() {
    unet_case(tiny(), tiny_refs(), "unet");
}

#[test]
fn unet_handles_latent_sides_that_are_not_multiples_of_its_downsampling() {
    unet_case(tiny(), tiny_refs(), "unet_ns");
}

#[test]
fn vae_decode_matches_diffusers() {
    check_vae_decode(tiny(), tiny_refs());
}

fn check_vae_decode(m: &SdxlModel, r: &Refs) {
    let out = m.vae().decode(&r.get("vae.dec_in")).unwrap();
    assert_close("vae.dec_out", &out, &r.get("vae.dec_out"), LAYER_TOL);
}

#[test]
fn vae_encode_gives_diffusers_mean_and_logvar() {
    check_vae_encode(tiny(), tiny_refs());
}

fn check_vae_encode(m: &SdxlModel, r: &Refs) {
    let dist = m.vae().encode(&r.get("vae.enc_in")).unwrap();
    assert_close("vae.enc_mean", &dist.mean, &r.get("vae.enc_mean"), LAYER_TOL);
    assert_close("vae.enc_logvar", &dist.logvar, &r.get("vae.enc_logvar"), LAYER_TOL);
}

fn run_json<'a>(r: &'a Refs, name: &str) -> &'a serde_json::Value {
    r.json["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("run {name} recorded"))
}

fn request(run: &serde_json::Value) -> GenerateRequest {
    let mut req = GenerateRequest::new(
        run["prompt"].as_str().unwrap(),
        run["width"].as_u64().unwrap() as usize,
        run["height"].as_u64().unwrap() as usize,
    );
    req.negative_prompt = run["negative_prompt"].as_str().map(str::to_string);
    req.steps = run["steps"].as_u64().unwrap() as usize;
    req.guidance = run["guidance_scale"].as_f64().unwrap();
    req.num_images = run["num_images_per_prompt"].as_u64().unwrap() as usize;
    req.scheduler = run["scheduler"].as_str().unwrap().parse().unwrap();
    req
}

fn recorded_noise(r: &Refs, prefix: &str, count: usize) -> ReplayNoise {
    ReplayNoise::new((0..count).map(|k| r.get(&format!("{prefix}.noise{k}"))).collect())
}

/// Runs a recorded text-to-image pipeline and compares final latents and image.
fn pipeline_case(name: &str) {
    check_pipeline(tiny(), tiny_refs(), name);
}

fn check_pipeline(m: &SdxlModel, r: &Refs, name: &str) {
    let run = run_json(r, name);
    let prefix = run["prefix"].as_str().unwrap();
    let mut req = request(run);
    req.latents = Some(r.get(&format!("{prefix}.latents_in")));
    let mut noise = recorded_noise(r, prefix, run["noise_count"].as_u64().unwrap() as usize);
    let out = m.generate(&req, &mut noise, &mut |_| {}).unwrap();
    assert_eq!(noise.remaining(), 0, "{name}: every recorded draw is used");
    assert_close(
        &format!("{prefix}.latents_out"),
        &out.latents,
        &r.get(&format!("{prefix}.latents_out")),
        PIPELINE_TOL,
    );
    assert_close(
        &format!("{prefix}.image"),
        &out.images,
        &r.get(&format!("{prefix}.image")),
        PIPELINE_TOL,
    );
}

#[test]
fn euler_pipeline_matches_diffusers() {
    pipeline_case("euler");
}

#[test]
fn euler_ancestral_pipeline_matches_diffusers_with_its_noise_replayed() {
    pipeline_case("euler_a");
}

#[test]
fn dpmpp_2m_pipeline_matches_diffusers() {
    pipeline_case("dpmpp_2m");
}

#[test]
fn dpmpp_2m_karras_pipeline_matches_diffusers() {
    pipeline_case("dpmpp_2m_karras");
}

#[test]
fn ddim_pipeline_without_negative_prompt_uses_zeroed_negative_conditioning() {
    pipeline_case("ddim");
}

#[test]
fn an_empty_negative_prompt_is_encoded_not_zeroed() {
    pipeline_case("euler_negempty");
}

#[test]
fn non_square_sizes_match_diffusers() {
    pipeline_case("euler_ns");
}

#[test]
fn batches_repeat_the_conditioning_per_image_like_diffusers() {
    pipeline_case("euler_batch2");
}

#[test]
fn guidance_of_one_runs_without_classifier_free_guidance() {
    pipeline_case("euler_nocfg");
}

#[test]
fn image_to_image_matches_diffusers_from_the_same_png() {
    let (m, r) = (tiny(), tiny_refs());
    let run = run_json(r, "img2img");
    let img = easel_sdxl::images::load_rgb(&common::fixtures().join("init.png")).unwrap();
    let pixels = easel_sdxl::images::to_tensor(&img, m.device()).unwrap();
    let fed = ((pixels.clone() + 1.0).unwrap() / 2.0).unwrap();
    assert_close("img2img.init", &fed, &r.get("img2img.init"), 1e-6);
    let mut req = request(run);
    req.init_image = Some(InitImage {
        pixels,
        strength: run["strength"].as_f64().unwrap(),
    });
    let mut noise = recorded_noise(r, "img2img", run["noise_count"].as_u64().unwrap() as usize);
    let mut steps = 0;
    let out = m.generate(&req, &mut noise, &mut |_| steps += 1).unwrap();
    assert_eq!(
        steps,
        run["unet_calls"].as_u64().unwrap() as usize,
        "steps run = int(steps × strength)"
    );
    assert_close(
        "img2img.latents_out",
        &out.latents,
        &r.get("img2img.latents_out"),
        PIPELINE_TOL,
    );
    assert_close("img2img.image", &out.images, &r.get("img2img.image"), PIPELINE_TOL);
}

/// The same checks on an SDXL-base-shaped model with random weights (full widths,
/// 2.6 B UNet parameters) at 64×64, made by `scripts/make_tiny_sdxl.py --full-size DIR`.
/// Needs about 24 GB of memory in f32; run it with
/// `EASEL_FULL_MODEL=DIR cargo test --release -p easel-sdxl --test parity -- --ignored`.
#[test]
#[ignore = "needs EASEL_FULL_MODEL: a full-size random SDXL made by scripts/make_tiny_sdxl.py --full-size"]
fn sdxl_base_shaped_random_model_matches_diffusers() {
    let dir = std::path::PathBuf::from(
        std::env::var("EASEL_FULL_MODEL").expect("set EASEL_FULL_MODEL to the --full-size folder"),
    );
    let m = SdxlModel::load_dir(&dir.join("model"), &easel_sdxl::LoadOptions::default()).unwrap();
    let r = common::load_refs(&dir.join("refs.safetensors"), &dir.join("refs.json"));
    check_text_encoders(&m, &r);
    check_prompt_encoding(&m, &r);
    unet_case(&m, &r, "unet");
    check_vae_decode(&m, &r);
    check_vae_encode(&m, &r);
    check_pipeline(&m, &r, "euler");
}
