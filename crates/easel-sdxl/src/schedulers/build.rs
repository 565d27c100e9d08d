//! Why this exists: the one place that turns a sampler name, a scheduler config and a
//! step count into a ready sampler, checking the step count first.

use super::config::SchedulerConfig;
use super::ddim::Ddim;
use super::dpm::DpmSolverMultistep;
use super::euler::EulerDiscrete;
use super::euler_ancestral::EulerAncestral;
use super::kind::SchedulerKind;
use super::scheduler::Scheduler;
use crate::{Error, Result};

/// A `kind` sampler for `config` (keys the file omitted read as `kind`'s diffusers class
/// defaults), set up for `steps` inference steps.
///
/// Errors: [`Error::InvalidRequest`] for `steps` of 0 or above
/// `num_train_timesteps`; [`Error::Unsupported`] for config values no sampler here
/// implements (naming the value).
pub fn build(kind: SchedulerKind, config: &SchedulerConfig, steps: usize) -> Result<Box<dyn Scheduler>> {
    let config = &config.for_kind(kind);
    let train = config.num_train_timesteps;
    if steps == 0 {
        return Err(Error::invalid("the number of steps must be at least 1"));
    }
    if steps > train {
        return Err(Error::invalid(format!(
            "{steps} steps is more than the model's {train} training timesteps"
        )));
    }
    Ok(match kind {
        SchedulerKind::Euler => Box::new(EulerDiscrete::new(config, steps)?),
        SchedulerKind::EulerAncestral => Box::new(EulerAncestral::new(config, steps)?),
        SchedulerKind::DpmPp2m => Box::new(DpmSolverMultistep::new(config, steps, false)?),
        SchedulerKind::DpmPp2mKarras => Box::new(DpmSolverMultistep::new(config, steps, true)?),
        SchedulerKind::Ddim => Box::new(Ddim::new(config, steps)?),
    })
}
