//! Why this exists: a diffusers `scheduler/scheduler_config.json` decides the noise
//! table, the timestep spacing and what the UNet predicts. This is its parsed form,
//! one struct for every sampler (as diffusers' `from_config` does, each sampler reads
//! the keys it knows). A key the file omits (or writes as `null`) takes the default of the
//! diffusers class of the sampler it is used with, as `from_config` does
//! ([`SchedulerConfig::for_kind`]): a DDIM sampler on a config without `clip_sample` clips,
//! as `DDIMScheduler` does. Unknown keys are ignored. [`Default`] (no file at all) is
//! SDXL-base's whole config.

use std::path::Path;

use serde::Deserialize;

use super::kind::SchedulerKind;
use crate::{Error, Result};

/// A diffusers scheduler config. [`Default`] is SDXL-base's
/// (`stabilityai/stable-diffusion-xl-base-1.0/scheduler/scheduler_config.json`).
#[derive(Clone, Debug, Deserialize)]
#[serde(from = "RawSchedulerConfig")]
pub struct SchedulerConfig {
    /// Training steps of the noise schedule (1000).
    pub num_train_timesteps: usize,
    /// First beta (0.00085).
    pub beta_start: f64,
    /// Last beta (0.012).
    pub beta_end: f64,
    /// `linear`, `scaled_linear` (SDXL) or `squaredcos_cap_v2`.
    pub beta_schedule: String,
    /// Explicit betas, overriding `beta_schedule`.
    pub trained_betas: Option<Vec<f64>>,
    /// What the UNet predicts: `epsilon` (SDXL), `v_prediction` or `sample`.
    pub prediction_type: String,
    /// `leading` (SDXL), `trailing` or `linspace`.
    pub timestep_spacing: String,
    /// Added to `leading` timesteps (1 for SDXL).
    pub steps_offset: usize,
    /// Euler's sigma interpolation; only `linear` is supported.
    pub interpolation_type: String,
    /// Karras sigmas for Euler (DPM++ takes Karras from the sampler kind instead).
    pub use_karras_sigmas: bool,
    /// Karras ramp bounds; default to the schedule's own smallest / largest sigma.
    pub sigma_min: Option<f64>,
    /// See `sigma_min`.
    pub sigma_max: Option<f64>,
    /// Last sigma of Euler / DPM++: `zero` or `sigma_min`.
    pub final_sigmas_type: String,
    /// Rescale betas to zero terminal SNR (arXiv 2305.08891).
    pub rescale_betas_zero_snr: bool,
    /// Euler's `discrete` or `continuous` (EDM) timesteps; only `discrete` is supported
    /// with `v_prediction`.
    pub timestep_type: String,
    /// DDIM: clamp predicted clean latents to `±clip_sample_range`.
    pub clip_sample: bool,
    /// See `clip_sample`.
    pub clip_sample_range: f64,
    /// DDIM: the alpha past the last step is 1 (else `alphas_cumprod[0]`).
    pub set_alpha_to_one: bool,
    /// Dynamic thresholding (DDIM / DPM++); not supported.
    pub thresholding: bool,
    /// Thresholding bound; unused without `thresholding`.
    pub sample_max_value: f64,
    /// PNDM's key; kept so SDXL's config round-trips.
    pub skip_prk_steps: bool,
    /// DPM++: first-order final steps when there are fewer than 15.
    pub lower_order_final: bool,
    /// DPM++: always a first-order final step.
    pub euler_at_final: bool,
    /// DPM++: ends the schedule where lambda(t) drops below this (None = -inf).
    pub lambda_min_clipped: Option<f64>,
    /// DPM++: `learned` variance models are not supported.
    pub variance_type: Option<String>,
    /// Exponential / beta sigma schedules; not supported.
    pub use_exponential_sigmas: bool,
    /// See `use_exponential_sigmas`.
    pub use_beta_sigmas: bool,
    /// DPM++ Lu lambdas; not supported.
    pub use_lu_lambdas: bool,
    /// The keys (of those whose class defaults differ between samplers) that the file did
    /// not write; [`SchedulerConfig::for_kind`] gives them the sampler class's default.
    pub(crate) omitted: Vec<&'static str>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        // SDXL-base's config, every key counted as written.
        let mut c: Self = RawSchedulerConfig::default().into();
        c.omitted.clear();
        c
    }
}

impl SchedulerConfig {
    /// This config as `kind`'s diffusers class reads it: keys the file omitted take that
    /// class's defaults (`EulerDiscreteScheduler`, `EulerAncestralDiscreteScheduler`,
    /// `DPMSolverMultistepScheduler`, `DDIMScheduler`). Keys not listed here have the same
    /// default in every class, so the SDXL fallback already is theirs.
    pub fn for_kind(&self, kind: SchedulerKind) -> Self {
        let ddim = kind == SchedulerKind::Ddim;
        let mut c = self.clone();
        for key in &self.omitted {
            match *key {
                "beta_start" => c.beta_start = 0.0001,
                "beta_end" => c.beta_end = 0.02,
                "beta_schedule" => c.beta_schedule = "linear".into(),
                "timestep_spacing" => c.timestep_spacing = if ddim { "leading" } else { "linspace" }.into(),
                "steps_offset" => c.steps_offset = 0,
                "clip_sample" => c.clip_sample = ddim,
                "set_alpha_to_one" => c.set_alpha_to_one = ddim,
                _ => {}
            }
        }
        c.omitted.clear();
        c
    }
}

impl SchedulerConfig {
    /// Parses a `scheduler_config.json`; `path` only names the file in errors.
    pub fn from_json(bytes: &[u8], path: &Path) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            msg: format!("not a valid scheduler config: {e}"),
        })
    }
}

/// The JSON as written: every key optional, `null` meaning "default".
#[derive(Default, Deserialize)]
struct RawSchedulerConfig {
    num_train_timesteps: Option<usize>,
    beta_start: Option<f64>,
    beta_end: Option<f64>,
    beta_schedule: Option<String>,
    trained_betas: Option<Vec<f64>>,
    prediction_type: Option<String>,
    timestep_spacing: Option<String>,
    steps_offset: Option<usize>,
    interpolation_type: Option<String>,
    use_karras_sigmas: Option<bool>,
    sigma_min: Option<f64>,
    sigma_max: Option<f64>,
    final_sigmas_type: Option<String>,
    rescale_betas_zero_snr: Option<bool>,
    timestep_type: Option<String>,
    clip_sample: Option<bool>,
    clip_sample_range: Option<f64>,
    set_alpha_to_one: Option<bool>,
    thresholding: Option<bool>,
    sample_max_value: Option<f64>,
    skip_prk_steps: Option<bool>,
    lower_order_final: Option<bool>,
    euler_at_final: Option<bool>,
    lambda_min_clipped: Option<f64>,
    variance_type: Option<String>,
    use_exponential_sigmas: Option<bool>,
    use_beta_sigmas: Option<bool>,
    use_lu_lambdas: Option<bool>,
}

impl From<RawSchedulerConfig> for SchedulerConfig {
    fn from(r: RawSchedulerConfig) -> Self {
        let s = |v: Option<String>, d: &str| v.unwrap_or_else(|| d.to_string());
        let omitted = [
            ("beta_start", r.beta_start.is_none()),
            ("beta_end", r.beta_end.is_none()),
            ("beta_schedule", r.beta_schedule.is_none()),
            ("timestep_spacing", r.timestep_spacing.is_none()),
            ("steps_offset", r.steps_offset.is_none()),
            ("clip_sample", r.clip_sample.is_none()),
            ("set_alpha_to_one", r.set_alpha_to_one.is_none()),
        ];
        let omitted = omitted.into_iter().filter(|(_, o)| *o).map(|(k, _)| k).collect();
        Self {
            omitted,
            num_train_timesteps: r.num_train_timesteps.unwrap_or(1000),
            beta_start: r.beta_start.unwrap_or(0.00085),
            beta_end: r.beta_end.unwrap_or(0.012),
            beta_schedule: s(r.beta_schedule, "scaled_linear"),
            trained_betas: r.trained_betas,
            prediction_type: s(r.prediction_type, "epsilon"),
            timestep_spacing: s(r.timestep_spacing, "leading"),
            steps_offset: r.steps_offset.unwrap_or(1),
            interpolation_type: s(r.interpolation_type, "linear"),
            use_karras_sigmas: r.use_karras_sigmas.unwrap_or(false),
            sigma_min: r.sigma_min,
            sigma_max: r.sigma_max,
            final_sigmas_type: s(r.final_sigmas_type, "zero"),
            rescale_betas_zero_snr: r.rescale_betas_zero_snr.unwrap_or(false),
            timestep_type: s(r.timestep_type, "discrete"),
            clip_sample: r.clip_sample.unwrap_or(false),
            clip_sample_range: r.clip_sample_range.unwrap_or(1.0),
            set_alpha_to_one: r.set_alpha_to_one.unwrap_or(false),
            thresholding: r.thresholding.unwrap_or(false),
            sample_max_value: r.sample_max_value.unwrap_or(1.0),
            skip_prk_steps: r.skip_prk_steps.unwrap_or(true),
            lower_order_final: r.lower_order_final.unwrap_or(true),
            euler_at_final: r.euler_at_final.unwrap_or(false),
            lambda_min_clipped: r.lambda_min_clipped,
            variance_type: r.variance_type,
            use_exponential_sigmas: r.use_exponential_sigmas.unwrap_or(false),
            use_beta_sigmas: r.use_beta_sigmas.unwrap_or(false),
            use_lu_lambdas: r.use_lu_lambdas.unwrap_or(false),
        }
    }
}

/// What the UNet output means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prediction {
    Epsilon,
    V,
    Sample,
}

/// How inference timesteps are spread over the training range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Spacing {
    Leading,
    Trailing,
    Linspace,
}

impl SchedulerConfig {
    /// The prediction type, if `supported` by the sampler asking.
    pub(crate) fn prediction(&self, sampler: &str, supported: &[Prediction]) -> Result<Prediction> {
        let p = match self.prediction_type.as_str() {
            "epsilon" => Some(Prediction::Epsilon),
            "v_prediction" => Some(Prediction::V),
            "sample" | "original_sample" => Some(Prediction::Sample),
            _ => None,
        };
        match p {
            Some(p) if supported.contains(&p) => Ok(p),
            _ => Err(Error::Unsupported(format!(
                "prediction_type \"{}\" with the {sampler} sampler",
                self.prediction_type
            ))),
        }
    }

    pub(crate) fn spacing(&self) -> Result<Spacing> {
        match self.timestep_spacing.as_str() {
            "leading" => Ok(Spacing::Leading),
            "trailing" => Ok(Spacing::Trailing),
            "linspace" => Ok(Spacing::Linspace),
            other => Err(Error::Unsupported(format!(
                "timestep_spacing \"{other}\" (supported: leading, trailing, linspace)"
            ))),
        }
    }

    /// The final sigma: `false` for `zero`, `true` for `sigma_min`.
    pub(crate) fn final_sigma_is_min(&self) -> Result<bool> {
        match self.final_sigmas_type.as_str() {
            "zero" => Ok(false),
            "sigma_min" => Ok(true),
            other => Err(Error::Unsupported(format!(
                "final_sigmas_type \"{other}\" (supported: zero, sigma_min)"
            ))),
        }
    }

    /// Rejects the sigma schedules no sampler here implements.
    pub(crate) fn reject_unsupported_sigmas(&self) -> Result<()> {
        for (on, key) in [
            (self.use_exponential_sigmas, "use_exponential_sigmas"),
            (self.use_beta_sigmas, "use_beta_sigmas"),
            (self.use_lu_lambdas, "use_lu_lambdas"),
            (self.thresholding, "thresholding"),
        ] {
            if on {
                return Err(Error::Unsupported(format!("scheduler config {key} = true")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdxl_defaults() {
        let c = SchedulerConfig::default();
        assert_eq!(c.num_train_timesteps, 1000);
        assert_eq!(c.beta_schedule, "scaled_linear");
        assert_eq!(c.timestep_spacing, "leading");
        assert_eq!(c.steps_offset, 1);
        assert!(!c.set_alpha_to_one && !c.use_karras_sigmas && !c.clip_sample);
    }

    #[test]
    fn parses_sdxl_json_with_nulls_and_unknown_keys() {
        let json = br#"{"_class_name": "EulerDiscreteScheduler", "beta_end": 0.012,
            "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": false,
            "interpolation_type": "linear", "num_train_timesteps": 1000,
            "prediction_type": "v_prediction", "sample_max_value": 1.0,
            "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1,
            "timestep_spacing": "trailing", "trained_betas": null,
            "use_karras_sigmas": null, "something_new": [1, 2]}"#;
        let c = SchedulerConfig::from_json(json, Path::new("x.json")).unwrap();
        assert_eq!(c.prediction_type, "v_prediction");
        assert_eq!(c.timestep_spacing, "trailing");
        assert!(!c.use_karras_sigmas);
        assert!(c.trained_betas.is_none());
    }

    #[test]
    fn omitted_keys_take_the_samplers_class_defaults() {
        // Only the noise schedule and spacing written: DDIM reads clip_sample and
        // set_alpha_to_one as DDIMScheduler's defaults (true), Euler its own (no clipping).
        let json = br#"{"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}"#;
        let c = SchedulerConfig::from_json(json, Path::new("x.json")).unwrap();
        let ddim = c.for_kind(SchedulerKind::Ddim);
        assert!(ddim.clip_sample && ddim.set_alpha_to_one, "{ddim:?}");
        assert_eq!((ddim.timestep_spacing.as_str(), ddim.steps_offset), ("leading", 0));
        let euler = c.for_kind(SchedulerKind::Euler);
        assert!(!euler.clip_sample && !euler.set_alpha_to_one);
        assert_eq!((euler.timestep_spacing.as_str(), euler.steps_offset), ("linspace", 0));
        for kind in [
            SchedulerKind::EulerAncestral,
            SchedulerKind::DpmPp2m,
            SchedulerKind::DpmPp2mKarras,
        ] {
            assert_eq!(c.for_kind(kind).timestep_spacing, "linspace", "{kind}");
        }
        assert_eq!(ddim.beta_schedule, "scaled_linear", "written keys stay as written");
        let bare = SchedulerConfig::from_json(b"{}", Path::new("x.json"))
            .unwrap()
            .for_kind(SchedulerKind::Euler);
        assert_eq!(
            (bare.beta_schedule.as_str(), bare.beta_start, bare.beta_end),
            ("linear", 0.0001, 0.02)
        );
    }

    #[test]
    fn written_keys_and_the_builtin_default_are_left_alone() {
        let json =
            br#"{"clip_sample": false, "set_alpha_to_one": false, "timestep_spacing": "trailing", "steps_offset": 1}"#;
        let c = SchedulerConfig::from_json(json, Path::new("x.json"))
            .unwrap()
            .for_kind(SchedulerKind::Ddim);
        assert!(!c.clip_sample && !c.set_alpha_to_one);
        assert_eq!((c.timestep_spacing.as_str(), c.steps_offset), ("trailing", 1));
        let sdxl = SchedulerConfig::default().for_kind(SchedulerKind::Ddim);
        assert!(!sdxl.clip_sample && !sdxl.set_alpha_to_one && sdxl.steps_offset == 1);
        assert_eq!(sdxl.beta_schedule, "scaled_linear");
    }

    #[test]
    fn bad_json_names_the_file() {
        let err = SchedulerConfig::from_json(b"{\"beta_start\": \"x\"}", Path::new("s.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("s.json"), "{err}");
    }
}
