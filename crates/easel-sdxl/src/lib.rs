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
//! - [`loader`]: weight loading from a diffusers folder or the bundled tiny model.
//! - [`pipeline`]: text-to-image and image-to-image with classifier-free guidance.
//! - [`images`]: conversions between tensors and RGB images.
//! - [`device`]: device and dtype selection.

pub mod clip;
pub mod config;
pub mod device;
mod error;
pub mod images;
pub mod layers;
pub mod loader;
pub mod noise;
pub mod pipeline;
pub mod schedulers;
pub mod tokenizer;
pub mod unet;
pub mod vae;

pub use error::{Error, Result};
