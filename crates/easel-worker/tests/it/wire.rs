//! The callback bodies, pinned byte for byte: the edge function reads these key names, so any
//! change here must be a deliberate change to the contract.

use easel_worker::contract::wire::{self, Asset, AssetMetadata, Img2ImgMetadata};
use easel_worker::contract::{parse, ErrorKind, JobError, JobSpec};

fn spec(extra: &str) -> JobSpec {
    let raw = format!(
        r#"{{"id":"J","type":"sdxl_image_fast","prompt":"a lighthouse","user_id":"U","config":{{"seed":1234}}{extra}}}"#
    );
    JobSpec::from_envelope(&parse(&raw).unwrap(), None).unwrap()
}

fn asset(spec: &JobSpec, img2img: Option<Img2ImgMetadata>) -> Asset {
    Asset {
        kind: "image",
        url: wire::image_key(&spec.user_id, &spec.id, 0),
        thumbnail_url: Some(wire::thumbnail_key(&spec.user_id, &spec.id, 0)),
        metadata: AssetMetadata {
            width: spec.width,
            height: spec.height,
            format: "png",
            batch_size: spec.num_images,
            steps: spec.steps,
            guidance_scale: spec.guidance,
            seed: spec.seed,
            file_size_bytes: 123456,
            asset_index: 0,
            negative_prompt_used: spec.negative_prompt.is_some(),
            img2img,
        },
    }
}

#[test]
fn the_success_body_is_the_contracts() {
    let s = spec("");
    let body = wire::to_json(&wire::completed(&s, vec![asset(&s, None)], 3.2, false));
    let expected = r#"{"job_id":"J","status":"completed","assets":[{"type":"image","url":"U/J/0.png","thumbnail_url":"U/J/0.thumb.webp","metadata":{"width":1024,"height":1024,"format":"png","batch_size":1,"steps":15,"guidance_scale":6.0,"seed":1234,"file_size_bytes":123456,"asset_index":0,"negative_prompt_used":true}}],"error_message":null,"metadata":{"seed":1234,"generation_time":3.2,"num_images":1,"job_type":"sdxl_image_fast","original_prompt":"a lighthouse","final_prompt":"a lighthouse","compel_enabled":false,"compel_weights":null,"compel_success":false,"enhancement_strategy":"none","final_prompt_type":"string"}}"#;
    assert_eq!(body, expected);
}

#[test]
fn an_img2img_asset_reports_the_values_actually_used() {
    let s = spec(r#","metadata":{"reference_image_url":"https://x/r.png","exact_copy_mode":true}"#);
    let r = s.reference.clone().unwrap();
    let i2i = Img2ImgMetadata {
        denoise_strength: r.strength,
        pipeline: "img2img",
        resize_policy: wire::RESIZE_POLICY,
        effective_steps: r.effective_steps,
        exact_copy_mode: r.exact_copy,
    };
    let body: serde_json::Value = serde_json::from_str(&wire::to_json(&wire::completed(
        &s,
        vec![asset(&s, Some(i2i))],
        1.0,
        false,
    )))
    .unwrap();
    let m = &body["assets"][0]["metadata"];
    assert_eq!(m["pipeline"], "img2img");
    assert_eq!(m["resize_policy"], "center_crop");
    assert_eq!(m["denoise_strength"], 0.066667);
    assert_eq!(m["effective_steps"], 1);
    assert_eq!(m["exact_copy_mode"], true);
}

#[test]
fn compel_is_reported_as_a_text_fallback() {
    let s = spec(r#","compel_enabled":true,"compel_weights":"(sunset:1.1)""#);
    let body: serde_json::Value =
        serde_json::from_str(&wire::to_json(&wire::completed(&s, vec![], 1.0, false))).unwrap();
    let m = &body["metadata"];
    assert_eq!(m["final_prompt"], "a lighthouse (sunset:1.1)");
    assert_eq!(
        (m["compel_enabled"].clone(), m["compel_weights"].clone()),
        (true.into(), "(sunset:1.1)".into())
    );
    assert_eq!(
        (m["compel_success"].clone(), m["enhancement_strategy"].clone()),
        (false.into(), "fallback".into())
    );
}

#[test]
fn the_failure_body_is_the_contracts() {
    let e = JobError::new(
        ErrorKind::Validation,
        "config.num_images is 7; it must be between 1 and 6",
    );
    let body = wire::to_json(&wire::failed("J", Some("sdxl_image_fast".into()), &e, 1700000000.5));
    let expected = r#"{"job_id":"J","status":"failed","assets":[],"error_message":"config.num_images is 7; it must be between 1 and 6","metadata":{"error_type":"validation_error","job_type":"sdxl_image_fast","timestamp":1700000000.5}}"#;
    assert_eq!(body, expected);
    let body = wire::to_json(&wire::failed("J", None, &e, 1.0));
    assert!(body.contains(r#""job_type":null"#), "{body}");
}

#[test]
fn compel_weights_report_whether_the_engine_applied_them() {
    let s = spec(r#","compel_enabled":true,"compel_weights":"(sunset:1.2)""#);
    let meta = |weighted| -> serde_json::Value {
        let body = wire::to_json(&wire::completed(&s, vec![asset(&s, None)], 1.0, weighted));
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["metadata"].clone()
    };
    let applied = meta(true);
    assert_eq!(applied["final_prompt"], "a lighthouse (sunset:1.2)");
    assert_eq!(applied["compel_weights"], "(sunset:1.2)");
    assert_eq!(applied["compel_success"], true);
    assert_eq!(applied["enhancement_strategy"], "a1111_weighting");
    assert_eq!(meta(false)["enhancement_strategy"], "fallback");
}
