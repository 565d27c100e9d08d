//! Why this exists: the bundled tiny SDXL (SDXL-base topology at tiny widths, random
//! weights) compiled into the binary, so `easel generate` works on a fresh clone with
//! no download. Its images are abstract. Regenerate with `scripts/make_tiny_sdxl.py`.

use crate::loader::EmbeddedSource;

/// The tiny model's files.
pub static TINY_SDXL: EmbeddedSource = EmbeddedSource::new(
    "the bundled tiny SDXL",
    crate::loader::embed_assets!(
        "tiny-sdxl",
        [
            "model_index.json",
            "scheduler/scheduler_config.json",
            "text_encoder/config.json",
            "text_encoder/model.safetensors",
            "text_encoder_2/config.json",
            "text_encoder_2/model.safetensors",
            "tokenizer/merges.txt",
            "tokenizer/tokenizer_config.json",
            "tokenizer/vocab.json",
            "tokenizer_2/merges.txt",
            "tokenizer_2/tokenizer_config.json",
            "tokenizer_2/vocab.json",
            "unet/config.json",
            "unet/diffusion_pytorch_model.safetensors",
            "vae/config.json",
            "vae/diffusion_pytorch_model.safetensors",
        ]
    ),
);
