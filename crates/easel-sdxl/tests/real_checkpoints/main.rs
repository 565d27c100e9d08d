//! Real checkpoints, proven against diffusers on the bundled tiny model (references from
//! `scripts/make_checkpoint_refs.py`): single-file checkpoints in f32/f16/bf16, what a
//! file is (`inspect`), A1111 prompt weighting and long prompts, and LoRAs applied and
//! removed — with txt2img and img2img sharing one loaded model. One test binary.

#[path = "../common/mod.rs"]
mod common;
mod ldm;
mod lora;
mod prompts;
mod single_file;

use std::sync::OnceLock;

use common::Refs;

/// A fixture's references, loaded once.
pub fn refs(stem: &'static str) -> &'static Refs {
    static CACHE: OnceLock<std::sync::Mutex<std::collections::HashMap<&'static str, &'static Refs>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut guard = cache.lock().unwrap();
    guard.entry(stem).or_insert_with(|| {
        let dir = common::fixtures();
        let r = common::load_refs(
            &dir.join(format!("{stem}.safetensors")),
            &dir.join(format!("{stem}.json")),
        );
        Box::leak(Box::new(r))
    })
}
