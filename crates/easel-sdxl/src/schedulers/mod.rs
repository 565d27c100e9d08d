//! Why this exists: the samplers that turn UNet noise predictions into latents.
//! Timesteps are floats (sigma-space samplers interpolate between training steps),
//! unlike candle's integer-timestep trait. Each sampler reproduces diffusers'
//! scheduler of the same name with SDXL's scheduler config.
//!
//! Flow of one generation: `build` → `init_noise_sigma` scales the initial latents →
//! for each step index `i`: `scale_model_input(x, i)` → UNet → `step(eps, i, x)`.
//! Image-to-image starts at a later index `begin` after `add_noise(x0, noise, begin)`.
//!
//! Contents:
//! - [`SchedulerKind`] (`kind.rs`): sampler names, parsing and display.
//! - [`SchedulerConfig`] (`config.rs`): a diffusers `scheduler_config.json`.
//! - [`build`] (`build.rs`): a boxed [`Scheduler`] (`scheduler.rs`) for a kind, config and step count.
//! - [`EulerDiscrete`] (`euler.rs`), [`EulerAncestral`] (`euler_ancestral.rs`),
//!   [`DpmSolverMultistep`] (`dpm.rs`), [`Ddim`] (`ddim.rs`): the samplers.
//! - `betas.rs`: noise tables, numpy/torch float emulation, Karras ramp, sigma → t.
//! - `timesteps.rs`: leading / trailing / linspace spacing per sampler family.
//! - `math.rs`: tensor linear combinations in float32.
//!
//! Which config keys apply follows diffusers' `from_config`, except that the kind
//! picks the algorithm: `dpmpp_2m` / `dpmpp_2m_karras` set Karras sigmas off / on
//! whatever `use_karras_sigmas` says (Euler honours it; Euler Ancestral and DDIM have
//! no such option), and DPM++ is always `dpmsolver++`, order 2, midpoint.
//! `step` does its arithmetic in float32 and returns `sample`'s dtype (diffusers
//! returns `model_output`'s; the two differ only when a half-precision UNet feeds
//! float32 latents, and then keeping the latents float32 is the better choice).
//! Loop over `timesteps().len()`, not the requested step count: like diffusers,
//! `trailing` spacing yields one extra timestep for some counts (61, 103, ...).

mod betas;
mod build;
mod config;
mod ddim;
mod dpm;
mod euler;
mod euler_ancestral;
mod kind;
mod math;
mod scheduler;
mod timesteps;

pub use build::build;
pub use config::SchedulerConfig;
pub use ddim::Ddim;
pub use dpm::DpmSolverMultistep;
pub use euler::EulerDiscrete;
pub use euler_ancestral::EulerAncestral;
pub use kind::SchedulerKind;
pub use scheduler::Scheduler;

#[cfg(test)]
mod tests {
    use candle_core::Tensor;

    use super::*;
    use crate::Error;

    #[test]
    fn step_counts_are_checked() {
        let c = SchedulerConfig::default();
        for kind in SchedulerKind::ALL {
            for steps in [0, 1001] {
                let err = build(kind, &c, steps).err().expect("must fail");
                assert!(matches!(err, Error::InvalidRequest(_)), "{kind} {steps}: {err}");
            }
            assert_eq!(build(kind, &c, 30).unwrap().timesteps().len(), 30);
        }
    }

    #[test]
    fn unsupported_values_are_named() {
        let c = SchedulerConfig {
            beta_schedule: "sigmoid".into(),
            ..Default::default()
        };
        let err = build(SchedulerKind::Euler, &c, 4).err().unwrap().to_string();
        assert!(err.contains("sigmoid"), "{err}");

        let c = SchedulerConfig {
            prediction_type: "flow_prediction".into(),
            ..Default::default()
        };
        for kind in SchedulerKind::ALL {
            let err = build(kind, &c, 4).err().unwrap();
            assert!(matches!(&err, Error::Unsupported(m) if m.contains("flow_prediction")));
        }
        let c = SchedulerConfig {
            prediction_type: "sample".into(),
            ..Default::default()
        };
        assert!(build(SchedulerKind::EulerAncestral, &c, 4).is_err());

        let c = SchedulerConfig {
            timestep_spacing: "karras".into(),
            ..Default::default()
        };
        let err = build(SchedulerKind::Ddim, &c, 4).err().unwrap().to_string();
        assert!(err.contains("karras"), "{err}");
    }

    #[test]
    fn step_past_the_end_is_an_error() {
        let c = SchedulerConfig::default();
        let x = Tensor::zeros((1, 4, 2, 2), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
        let mut noise = crate::noise::SeededNoise::new(0, 1);
        for kind in SchedulerKind::ALL {
            let mut s = build(kind, &c, 4).unwrap();
            assert!(s.step(&x, 4, &x, &mut noise).is_err());
            assert!(s.scale_model_input(&x, 4).is_err());
            assert!(s.add_noise(&x, &x, 4).is_err());
        }
    }

    #[test]
    fn half_precision_keeps_dtype() {
        use candle_core::{DType, Device};
        let c = SchedulerConfig::default();
        let x = Tensor::ones((1, 4, 2, 2), DType::BF16, &Device::Cpu).unwrap();
        let mut noise = crate::noise::SeededNoise::new(0, 1);
        for kind in SchedulerKind::ALL {
            let mut s = build(kind, &c, 4).unwrap();
            for i in 0..4 {
                let y = s.step(&x, i, &x, &mut noise).unwrap();
                assert_eq!(y.dtype(), DType::BF16, "{kind}");
            }
        }
    }
}
