//! Why this exists: a single-file checkpoint carries weights only — no config.json, no
//! tokenizer. Easel ships SDXL-base's configs (the values of
//! `stabilityai/stable-diffusion-xl-base-1.0`, written with diffusers' defaults filled in
//! by `scripts/make_checkpoint_refs.py`) so such a file loads with nothing fetched; the
//! tokenizers are the CLIP vocabulary embedded in the binary.

use crate::loader::EmbeddedSource;

/// SDXL-base's configs (no weights, no tokenizer files).
pub static SDXL_BASE: EmbeddedSource = EmbeddedSource::new(
    "Easel's SDXL-base configs",
    crate::loader::embed_assets!(
        "sdxl-base",
        [
            "model_index.json",
            "scheduler/scheduler_config.json",
            "text_encoder/config.json",
            "text_encoder_2/config.json",
            "unet/config.json",
            "vae/config.json",
        ]
    ),
);
