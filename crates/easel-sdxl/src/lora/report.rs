//! Why this exists: what applying LoRAs did, as the caller sees it (and as the model
//! remembers it while they are active), kept apart from the code that applies them.

/// What applying LoRAs did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LoraReport {
    pub loras: Vec<AppliedLora>,
    /// Weights replaced by merged copies.
    pub merged_weights: usize,
    /// Memory of those copies while the LoRAs are active, in bytes.
    pub extra_bytes: u64,
}

/// One applied LoRA.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AppliedLora {
    pub path: String,
    pub scale: f64,
    pub layers: usize,
    /// Layers of the file that match no layer of this model (reported, not fatal).
    pub unmatched: Vec<String>,
}
