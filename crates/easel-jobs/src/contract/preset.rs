//! Why this exists: the two job types and their presets, exactly as the Python worker's
//! `job_configs` (both 1024×1024), and the default negative prompt verbatim. A job's `config`
//! object is shallow-merged over its preset.
//!
//! The only deviation is explicit and logged: a generator whose native size is not SDXL's
//! (the bundled tiny model, 64×64) may ask for its own default size, because the tiny model
//! at 1024×1024 takes minutes per job on a small CPU. A job that sets `width`/`height` still
//! gets exactly that size.

use serde_json::{json, Map, Value};

/// The negative prompt the Python worker always uses, verbatim.
pub const DEFAULT_NEGATIVE_PROMPT: &str =
    "blurry, low quality, distorted, deformed, bad anatomy, watermark, signature, text, logo, extra limbs, missing limbs";

/// The presets' image side (SDXL's native resolution).
pub const PRESET_SIDE: u32 = 1024;

/// A job type this worker runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobType {
    SdxlImageFast,
    SdxlImageHigh,
}

impl JobType {
    /// Every job type, for `describe`.
    pub const ALL: [JobType; 2] = [JobType::SdxlImageFast, JobType::SdxlImageHigh];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobType::SdxlImageFast => "sdxl_image_fast",
            JobType::SdxlImageHigh => "sdxl_image_high",
        }
    }

    /// Reads a wire name.
    pub fn from_wire(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// (steps, guidance) of the preset.
    fn steps_guidance(self) -> (u32, f64) {
        match self {
            JobType::SdxlImageFast => (15, 6.0),
            JobType::SdxlImageHigh => (25, 7.5),
        }
    }

    /// The preset as a config object; `side` replaces 1024 when the generator asks for it.
    pub fn preset(self, side: Option<u32>) -> Map<String, Value> {
        let (steps, guidance) = self.steps_guidance();
        let side = side.unwrap_or(PRESET_SIDE);
        let v = json!({
            "num_inference_steps": steps,
            "guidance_scale": guidance,
            "width": side,
            "height": side,
            "num_images": 1,
        });
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}

/// Shallow-merges `config` over `preset`; `null` values inside `config` leave the preset's.
pub fn merge(mut preset: Map<String, Value>, config: Option<&Map<String, Value>>) -> Map<String, Value> {
    for (k, v) in config.into_iter().flatten() {
        if !v.is_null() {
            preset.insert(k.clone(), v.clone());
        }
    }
    preset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_the_python_worker() {
        let fast = JobType::SdxlImageFast.preset(None);
        assert_eq!(fast["num_inference_steps"], 15);
        assert_eq!(fast["guidance_scale"], 6.0);
        assert_eq!(
            (fast["width"].clone(), fast["height"].clone()),
            (json!(1024), json!(1024))
        );
        let high = JobType::SdxlImageHigh.preset(None);
        assert_eq!(
            (high["num_inference_steps"].clone(), high["guidance_scale"].clone()),
            (json!(25), json!(7.5))
        );
    }

    #[test]
    fn config_is_shallow_merged_and_null_keeps_the_preset() {
        let cfg = json!({"num_inference_steps": 4, "width": null, "extra": {"a": 1}});
        let merged = merge(JobType::SdxlImageFast.preset(None), cfg.as_object());
        assert_eq!(merged["num_inference_steps"], 4);
        assert_eq!(merged["width"], 1024);
        assert_eq!(merged["extra"], json!({"a": 1}));
    }
}
