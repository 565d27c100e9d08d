//! Why this exists: the parity tests check each component of a loaded model against
//! diffusers on its own (text encoder states, one UNet forward, VAE decode and encode),
//! which generation never needs. This module names those component types; a model hands
//! them out through [`crate::SdxlModel::text_encoder`], [`crate::SdxlModel::unet`] and
//! [`crate::SdxlModel::vae`]. Their constructors stay inside the engine.

pub use crate::clip::{ClipTextEncoder, TextOutput};
pub use crate::unet::{UNet, UNetCond};
pub use crate::vae::{LatentDist, Vae};
