//! LoRAs: low-rank weight updates chosen per job, applied to a loaded model without
//! reloading its weights and removed afterwards.
//!
//! Layout: [`file`] reads kohya and diffusers/PEFT LoRA files into layers, [`base`] keeps
//! the tensors each component was built from (recorded while loading, no copy), and
//! [`apply`] resolves layers against the model, merges them and rebuilds the components.
//! `state::LoraState` is what a loaded [`crate::SdxlModel`] keeps for this.

mod apply;
pub(crate) mod base;
mod file;
mod report;
pub(crate) mod state;

pub use file::{Component, LoraFile, LoraLayer, LoraLayout, ModuleName};
pub use report::{AppliedLora, LoraReport};
