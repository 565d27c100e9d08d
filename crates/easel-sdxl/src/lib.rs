//! Easel's SDXL engine: everything needed to turn a prompt into an image with an SDXL
//! checkpoint, and nothing about queues, storage or HTTP.
//!
//! Table of contents:
//! - [`tokenizer`]: CLIP BPE tokenizer, token ids equal to `transformers.CLIPTokenizer`.
//! - [`clip`]: the two CLIP text encoders (penultimate states, pooled projection).
//! - [`unet`]: the SDXL UNet with `text_time` added conditioning.
//! - [`vae`]: the autoencoder (decode and encode).
//! - [`schedulers`]: Euler, Euler Ancestral, DPM++ 2M (Karras), DDIM with float timesteps.
//! - [`noise`]: seeded and replayed noise.
//! - [`config`]: the `config.json` files of a diffusers folder.
//! - [`loader`]: where model files come from (a folder, or compiled in).
//! - [`weights`]: finding and opening safetensors files (plain, fp16 variant, sharded).
//! - [`header`]: what a safetensors file holds, from its header alone.
//! - [`reader`]: tensors read from safetensors files without a memory map.
//! - [`checkpoint`]: single-file SDXL checkpoints (original key layout) as a model source.
//! - [`inspect`]: what a file or folder is (layout, components, dtype, parameters).
//! - [`prompt`]: A1111 prompt weighting, `BREAK` and long prompts in 75-token chunks.
//! - [`lora`]: kohya and diffusers LoRAs, applied per job and removed without reloading.
//! - [`model`]: a loaded SDXL model (all components, one set of weights).
//! - [`tiny`]: the bundled tiny model.
//! - [`layers`]: building blocks shared by the UNet and the VAE.
//! - [`kernels`]: Easel's own f32 CPU kernels (convolution, GroupNorm, attention).
//! - [`pipeline`]: text-to-image and image-to-image with classifier-free guidance.
//! - [`cancel`]: the flag that stops a generation within one step.
//! - [`images`]: conversions between tensors and RGB images.
//! - [`metadata`]: PNG encoding with A1111-style generation parameters.
//! - [`device`]: device and dtype selection.
//! - [`bench`]: phase timings and peak memory for `easel bench`.

pub mod bench;
pub mod cancel;
pub mod checkpoint;
pub mod clip;
mod components;
pub mod config;
pub mod device;
mod error;
pub mod header;
pub mod images;
pub mod inspect;
pub mod kernels;
pub mod layers;
pub mod loader;
pub mod lora;
pub mod metadata;
pub mod model;
pub mod noise;
pub mod pipeline;
pub mod prompt;
pub mod reader;
pub mod schedulers;
pub mod tiny;
pub mod tokenizer;
pub mod unet;
pub mod vae;
pub mod weights;

pub use error::{Error, Result};

pub use lora::{LoraFile, LoraReport};
pub use model::{LoadOptions, SdxlModel};
pub use pipeline::{GenerateRequest, Generated, InitImage};
pub use prompt::{PromptMode, PromptReport};
