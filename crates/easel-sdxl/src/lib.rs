//! Easel's SDXL engine: everything needed to turn a prompt into an image with an SDXL
//! checkpoint, and nothing about queues, storage or HTTP.
//!
//! The public surface, for the CLI, the worker and the tests:
//! - [`SdxlModel`] and [`LoadOptions`] ([`model`]): load a diffusers folder, a single-file
//!   checkpoint or the bundled tiny model; the model's whole API is listed in [`model`].
//! - [`pipeline`]: [`GenerateRequest`], [`InitImage`], progress and the result of a generation.
//! - [`prompt`]: prompt modes, A1111 weighting, chunking, and [`prompt::plain_truncation`].
//! - [`schedulers`], [`noise`], [`cancel`]: samplers, seeded/replayed noise, stopping a job.
//! - [`lora`]: LoRA files and what applying them did.
//! - [`tokenizer`]: the CLIP tokenizer (ids equal to `transformers.CLIPTokenizer`).
//! - [`parts`]: the model's components one by one (text encoders, UNet, VAE), for parity checks.
//! - [`checkpoint`]: the diffusers ↔ single-file key mapping.
//! - [`inspect`]: what a file or folder is; [`images`], [`metadata`]: RGB images and PNGs;
//!   [`device`]: device and dtype choice; [`bench`]: phase timings and peak memory.
//! - [`Error`] and [`Result`].
//!
//! Internal modules: `loader` (where files come from), `components` (how weights and
//! tokenizers are built from them), `config`, `weights`, `header`, `reader`, `clip`,
//! `unet`, `vae`, `layers`, `kernels` (Easel's own f32 CPU kernels), `tiny`.

pub mod bench;
pub mod cancel;
pub mod checkpoint;
pub(crate) mod clip;
mod components;
pub(crate) mod config;
pub mod device;
mod error;
pub(crate) mod header;
pub mod images;
pub mod inspect;
pub(crate) mod kernels;
pub(crate) mod layers;
pub(crate) mod loader;
pub mod lora;
pub mod metadata;
pub mod model;
pub mod noise;
pub mod parts;
pub mod pipeline;
pub mod prompt;
pub(crate) mod reader;
pub mod schedulers;
pub(crate) mod tiny;
pub mod tokenizer;
pub(crate) mod unet;
pub(crate) mod vae;
pub(crate) mod weights;

pub use error::{Error, Result};
/// Which CPU instruction set the kernels run (chosen at run time; `EASEL_CPU_ISA` overrides).
pub use kernels::isa;

pub use lora::{LoraFile, LoraReport};
pub use model::{LoadOptions, SdxlModel};
pub use pipeline::{GenerateRequest, Generated, InitImage};
pub use prompt::{PromptMode, PromptReport};
pub use weights::Variant;
