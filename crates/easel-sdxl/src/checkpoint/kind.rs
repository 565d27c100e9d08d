//! Why this exists: people pass Easel whatever `.safetensors` file they have — an SDXL
//! checkpoint, but also SD 1.5 / SD 2.x checkpoints, LoRAs, standalone VAEs, a diffusers
//! component. Each gets told what the file is, from its tensor names alone (the header),
//! before any weight is read: that is the error message for a wrong `--model`, and the
//! `layout` line of `easel models inspect`.

use super::keymap::{CLIP_G_PREFIX, CLIP_L_PREFIX, UNET_PREFIX, VAE_PREFIX};
use crate::header::Header;

/// What a single safetensors file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// An SDXL checkpoint in the original layout: UNet, VAE, CLIP-L and OpenCLIP-G.
    SdxlCheckpoint,
    /// The SDXL refiner (OpenCLIP-G only, 2560-wide added conditioning).
    SdxlRefiner,
    /// Stable Diffusion 1.x (one CLIP-L text encoder, 768-wide context).
    Sd1Checkpoint,
    /// Stable Diffusion 2.x (OpenCLIP-H text encoder, 1024-wide context).
    Sd2Checkpoint,
    /// An original-layout UNet without its text encoders.
    LdmUnet,
    /// A kohya-layout LoRA (`lora_unet_*`, `lora_te*_*`).
    KohyaLora,
    /// A diffusers/PEFT-layout LoRA (`*.lora_A.weight`).
    PeftLora,
    /// A LyCORIS / DoRA file (LoHa, LoKr, ...), which Easel does not merge.
    LycorisLora,
    /// A VAE alone.
    Vae,
    /// One diffusers UNet (`diffusion_pytorch_model.safetensors` of `unet/`).
    DiffusersUnet,
    /// One transformers CLIP text encoder.
    ClipTextEncoder,
    /// Anything else.
    Unknown,
}

impl FileKind {
    /// Classifies a file by its tensor names.
    pub fn classify(h: &Header) -> Self {
        let has = |p: &str| h.has_prefix(p);
        let any = |frag: &str| h.tensors.keys().any(|k| k.contains(frag));
        if any("hada_w") || any("lokr_w") || any("dora_scale") {
            FileKind::LycorisLora
        } else if any(".lora_down.weight") {
            FileKind::KohyaLora
        } else if any(".lora_A.weight") || any(".lora.down.weight") {
            FileKind::PeftLora
        } else if has(UNET_PREFIX) {
            Self::ldm_checkpoint(h)
        } else if has(VAE_PREFIX) || has("encoder.down.0.block.") || has("encoder.down_blocks.0.resnets.") {
            FileKind::Vae
        } else if has("down_blocks.0.resnets.0.") && has("conv_in.") {
            FileKind::DiffusersUnet
        } else if has("text_model.encoder.layers.") || has("encoder.layers.0.self_attn.") {
            FileKind::ClipTextEncoder
        } else {
            FileKind::Unknown
        }
    }

    fn ldm_checkpoint(h: &Header) -> Self {
        if h.has_prefix(CLIP_G_PREFIX) && h.has_prefix(CLIP_L_PREFIX) {
            FileKind::SdxlCheckpoint
        } else if h.has_prefix("conditioner.embedders.0.model.") {
            FileKind::SdxlRefiner
        } else if h.has_prefix("cond_stage_model.transformer.") {
            FileKind::Sd1Checkpoint
        } else if h.has_prefix("cond_stage_model.model.") {
            FileKind::Sd2Checkpoint
        } else {
            FileKind::LdmUnet
        }
    }

    /// A phrase for messages: "an SD 1.x checkpoint (...)".
    pub fn describe(self) -> &'static str {
        match self {
            FileKind::SdxlCheckpoint => "an SDXL checkpoint (UNet, VAE and both text encoders, original key layout)",
            FileKind::SdxlRefiner => "an SDXL refiner checkpoint (OpenCLIP-G only, aesthetic-score conditioning)",
            FileKind::Sd1Checkpoint => "a Stable Diffusion 1.x checkpoint (one CLIP-L text encoder, 768-wide context)",
            FileKind::Sd2Checkpoint => "a Stable Diffusion 2.x checkpoint (OpenCLIP-H text encoder, 1024-wide context)",
            FileKind::LdmUnet => "a UNet in the original key layout without text encoders",
            FileKind::KohyaLora => "a LoRA (kohya layout)",
            FileKind::PeftLora => "a LoRA (diffusers/PEFT layout)",
            FileKind::LycorisLora => "a LyCORIS/DoRA network (LoHa, LoKr or DoRA)",
            FileKind::Vae => "a VAE alone",
            FileKind::DiffusersUnet => "one diffusers UNet (a unet/ file of a diffusers folder)",
            FileKind::ClipTextEncoder => "one CLIP text encoder (a text_encoder/ file of a diffusers folder)",
            FileKind::Unknown => "a safetensors file of no known Stable Diffusion layout",
        }
    }

    /// What to do instead when this file was passed as a model.
    pub fn advice(self) -> &'static str {
        match self {
            FileKind::SdxlCheckpoint => "",
            FileKind::KohyaLora | FileKind::PeftLora => "pass it with --lora, and an SDXL checkpoint with --model",
            FileKind::DiffusersUnet | FileKind::ClipTextEncoder => "pass the whole diffusers folder with --model",
            FileKind::Vae | FileKind::LdmUnet => "pass a complete SDXL checkpoint with --model",
            _ => "Easel runs SDXL base-architecture checkpoints only",
        }
    }
}
