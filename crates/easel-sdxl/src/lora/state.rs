//! Why this exists: what a loaded model keeps so LoRAs can be applied and removed — the
//! recorded base tensors and the text encoders' configs — apart from the code that
//! applies them (`apply.rs`) and the re-exports of `mod.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::Tensor;

use super::base;
use super::file::Component;
use super::report::AppliedLora;
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

    pub(crate) fn modified(&self, component: Component) -> bool {
        self.modified[Self::slot(component)]
    }

    pub(crate) fn set_modified(&mut self, component: Component, on: bool) {
        self.modified[Self::slot(component)] = on;
    }
}
