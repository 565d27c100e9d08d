//! A1111 prompt weighting and long prompts against the script's independent
//! implementation of the same rules (transformers encoders): parsing, chunking with
//! BREAK and comma backtracking, weighted and mean-restored embeddings, and a pipeline
//! whose negative prompt has fewer chunks than its prompt.

use easel_sdxl::noise::ReplayNoise;
use easel_sdxl::pipeline::GenerateRequest;
use easel_sdxl::prompt::{chunks, parse, Piece, PromptMode, COMMA_BACKTRACK};

use crate::common::{assert_close, max_abs_diff, tiny, Refs, LAYER_TOL, PIPELINE_TOL};
use crate::refs;

fn prompt_refs() -> &'static Refs {
    refs("prompt_refs")
}

fn cases() -> &'static [serde_json::Value] {
    prompt_refs().json["cases"].as_array().unwrap()
}

fn pieces_of(case: &serde_json::Value) -> Vec<Piece> {
    let raw = case["pieces"].as_array().unwrap();
    raw.iter()
        .map(|p| match p[1].as_f64() {
            None => Piece::Break,
            Some(weight) => Piece::Text {
                text: p[0].as_str().unwrap().into(),
                weight,
            },
        })
        .collect()
}

/// serde_json's float parsing may be off by one ulp, so weights compare within 1e-12.
fn assert_same_pieces(got: &[Piece], want: &[Piece], name: &serde_json::Value) {
    assert_eq!(got.len(), want.len(), "{name}: {got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        match (g, w) {
            (Piece::Text { text: a, weight: x }, Piece::Text { text: b, weight: y }) => {
                assert!(a == b && (x - y).abs() < 1e-12, "{name}: {g:?} vs {w:?}")
            }
            _ => assert_eq!(g, w, "{name}"),
        }
    }
}

fn assert_same_weights(got: &[Vec<f64>], want: &[Vec<f64>], name: &serde_json::Value) {
    assert_eq!(got.len(), want.len(), "{name}");
    for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
        assert!((g - w).abs() < 1e-12, "{name}: weight {g} vs {w}");
    }
}

fn ids(v: &serde_json::Value) -> Vec<Vec<u32>> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn parsing_matches_the_reference_piece_for_piece_and_weight_for_weight() {
    for case in cases() {
        let text = case["text"].as_str().unwrap();
        assert_same_pieces(&parse(text), &pieces_of(case), &case["name"]);
    }
}

#[test]
fn chunks_hold_the_reference_ids_and_weights_for_both_tokenizers() {
    let m = tiny();
    for case in cases() {
        let pieces = parse(case["text"].as_str().unwrap());
        let c1 = chunks::cut(m.tokenizer(), &pieces, COMMA_BACKTRACK);
        let c2 = chunks::cut(m.tokenizer_2(), &pieces, COMMA_BACKTRACK);
        let name = &case["name"];
        assert_eq!(
            c1.chunks.iter().map(|c| c.ids.clone()).collect::<Vec<_>>(),
            ids(&case["ids1"]),
            "{name} ids1"
        );
        let padded: Vec<Vec<u32>> = c2
            .chunks
            .iter()
            .map(|c| c.ids_padded_with(m.tokenizer_2().eos_id(), m.tokenizer_2().pad_id()))
            .collect();
        let want2: Vec<Vec<u32>> = ids(&case["ids2"]);
        let want2: Vec<Vec<u32>> = want2
            .iter()
            .map(|c| {
                chunks::Chunk {
                    ids: c.clone(),
                    weights: vec![],
                }
                .ids_padded_with(m.tokenizer_2().eos_id(), m.tokenizer_2().pad_id())
            })
            .collect();
        assert_eq!(padded, want2, "{name} ids2");
        let w: Vec<Vec<f64>> = serde_json::from_value(case["weights1"].clone()).unwrap();
        assert_same_weights(
            &c1.chunks.iter().map(|c| c.weights.clone()).collect::<Vec<_>>(),
            &w,
            name,
        );
        assert_eq!(
            c1.token_count as u64,
            case["token_count"].as_u64().unwrap(),
            "{name} token count"
        );
    }
}

#[test]
fn weighted_embeddings_match_the_reference_including_long_prompts() {
    let (m, r) = (tiny(), prompt_refs());
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let (ctx, pooled) = m.encode_text_a1111(case["text"].as_str().unwrap()).unwrap();
        assert_eq!(
            ctx.dim(1).unwrap(),
            77 * case["chunks"].as_u64().unwrap() as usize,
            "{name}"
        );
        assert_close(
            &format!("a1111.{name}.context"),
            &ctx,
            &r.get(&format!("a1111.{name}.context")),
            LAYER_TOL,
        );
        assert_close(
            &format!("a1111.{name}.pooled"),
            &pooled,
            &r.get(&format!("a1111.{name}.pooled")),
            LAYER_TOL,
        );
    }
}

#[test]
fn an_unweighted_short_prompt_is_encoded_exactly_as_plain_mode() {
    let m = tiny();
    let text = "a photo of an astronaut riding a horse, detailed";
    let (a, ap) = m.encode_text_a1111(text).unwrap();
    let (p, pp) = m.encode_text(text).unwrap();
    assert_eq!((max_abs_diff(&a, &p), max_abs_diff(&ap, &pp)), (0.0, 0.0));
}

#[test]
fn a_pipeline_in_a1111_mode_pads_the_shorter_negative_and_matches_diffusers() {
    let (m, r) = (tiny(), prompt_refs());
    let run = &r.json["run"];
    let mut req = GenerateRequest::new(run["prompt"].as_str().unwrap(), 64, 64);
    req.negative_prompt = run["negative_prompt"].as_str().map(str::to_string);
    req.steps = run["steps"].as_u64().unwrap() as usize;
    req.guidance = run["guidance_scale"].as_f64().unwrap();
    req.latents = Some(r.get("a1111_run.latents_in"));
    req.prompt_mode = PromptMode::A1111;
    let out = m.generate(&req, &mut ReplayNoise::new(vec![]), &mut |_| {}).unwrap();
    assert_close(
        "a1111_run.latents_out",
        &out.latents,
        &r.get("a1111_run.latents_out"),
        PIPELINE_TOL,
    );
}

#[test]
fn the_report_says_what_was_parsed_and_whether_weights_apply() {
    let m = tiny();
    let r = m.prompt_report("a (cat:1.3) BREAK on a mat", PromptMode::A1111);
    assert!(r.weighted);
    assert_eq!(r.chunks, 2);
    assert_eq!(
        r.pieces[1],
        Piece::Text {
            text: "cat".into(),
            weight: 1.3
        }
    );
    assert!(r.pieces.contains(&Piece::Break));
    let plain = m.prompt_report(&"cat ".repeat(100), PromptMode::Plain);
    assert!(plain.truncated && !plain.weighted && plain.chunks == 1);
    // Everything beyond the tokenizer's 77 (begin and end included) is dropped.
    let tokens = m.tokenizer().encode(&"cat ".repeat(100)).len();
    assert!(tokens > 77);
    assert_eq!(plain.dropped_tokens, tokens - m.tokenizer().max_len());
    assert_eq!(m.prompt_report("a cat", PromptMode::Plain).dropped_tokens, 0);
    assert!(!m.prompt_report("a cat", PromptMode::A1111).weighted);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["mode"], "a1111");
    assert_eq!(
        (json["pieces"][2]["text"].as_str(), json["pieces"][3]["kind"].as_str()),
        (Some(""), Some("break"))
    );
    assert_eq!("weighted".parse::<PromptMode>().unwrap(), PromptMode::A1111);
    assert!("loud".parse::<PromptMode>().unwrap_err().to_string().contains("plain"));
}
