//! LoRAs: low-rank weight updates chosen per job, applied to a loaded model without
//! reloading its weights and removed afterwards.
//!
//! Layout: [`file`] reads kohya and diffusers/PEFT LoRA files into layers, [`base`] keeps
//! the tensors each component was built from (recorded while loading, no copy), and
//! [`apply`] resolves layers against the model, merges them and rebuilds the components.
//! [`LoraState`] is what a loaded [`crate::SdxlModel`] keeps for this.

pub mod apply;
pub mod base;
pub mod file;

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::Tensor;

pub use apply::{AppliedLora, LoraReport};
pub use file::{Component, LoraFile, LoraLayer, LoraLayout};

use crate::config::ClipConfig;

/// What a loaded model keeps so LoRAs can be applied and removed: the base tensors of the
/// UNet and both text encoders (shared with the live components) and the encoders' configs.
pub struct LoraState {
    unet: Arc<HashMap<String, Tensor>>,
    te1: Arc<HashMap<String, Tensor>>,
    te2: Arc<HashMap<String, Tensor>>,
    pub(crate) te1_config: ClipConfig,
    pub(crate) te2_config: ClipConfig,
    pub(crate) active: Vec<AppliedLora>,
    modified: [bool; 3],
}

impl LoraState {
    /// The state of a freshly loaded model, from what loading recorded.
    pub(crate) fn new(recorded: [base::Recorded; 3], te1_config: ClipConfig, te2_config: ClipConfig) -> Self {
        let [unet, te1, te2] = recorded.map(|r| Arc::new(r.tensors()));
        Self {
            unet,
            te1,
            te2,
            te1_config,
            te2_config,
            active: vec![],
            modified: [false; 3],
        }
    }

    /// The base tensors of `component`.
    pub(crate) fn tensors(&self, component: Component) -> &Arc<HashMap<String, Tensor>> {
        match component {
            Component::Unet => &self.unet,
            Component::TextEncoder => &self.te1,
            Component::TextEncoder2 => &self.te2,
        }
    }

    fn slot(component: Component) -> usize {
        match component {
            Component::Unet => 0,
            Component::TextEncoder => 1,
            Component::TextEncoder2 => 2,
        }
    }

    fn modified(&self, component: Component) -> bool {
        self.modified[Self::slot(component)]
    }

    fn set_modified(&mut self, component: Component, on: bool) {
        self.modified[Self::slot(component)] = on;
    }
}
