//! Why this exists: each diffusers scheduler spreads its inference timesteps over the
//! training range with its own variant of the `leading` / `trailing` / `linspace`
//! rules (float32 for the Euler family, integers for DDIM, `steps + 1` points for
//! DPM-Solver). Getting them bit-identical matters: the UNet sees these values.

use super::betas::{np_arange, np_linspace, np_round};
use super::config::{SchedulerConfig, Spacing};

/// Euler and Euler Ancestral: float32 timesteps, highest first.
pub(crate) fn euler(config: &SchedulerConfig, spacing: Spacing, steps: usize) -> Vec<f64> {
    let train = config.num_train_timesteps;
    let ts: Vec<f32> = match spacing {
        Spacing::Linspace => np_linspace(0.0, (train - 1) as f64, steps)
            .into_iter()
            .rev()
            .map(|t| t as f32)
            .collect(),
        Spacing::Leading => {
            let ratio = train / steps;
            (0..steps)
                .rev()
                .map(|i| (i * ratio) as f32 + config.steps_offset as f32)
                .collect()
        }
        Spacing::Trailing => np_arange(train as f64, 0.0, -(train as f64 / steps as f64))
            .into_iter()
            .map(|t| np_round(t) as f32 - 1.0)
            .collect(),
    };
    ts.into_iter().map(f64::from).collect()
}

/// DDIM: integer timesteps, highest first.
pub(crate) fn ddim(config: &SchedulerConfig, spacing: Spacing, steps: usize) -> Vec<i64> {
    let train = config.num_train_timesteps;
    match spacing {
        Spacing::Linspace => np_linspace(0.0, (train - 1) as f64, steps)
            .into_iter()
            .rev()
            .map(|t| np_round(t) as i64)
            .collect(),
        Spacing::Leading => {
            let ratio = train / steps;
            (0..steps)
                .rev()
                .map(|i| (i * ratio + config.steps_offset) as i64)
                .collect()
        }
        Spacing::Trailing => np_arange(train as f64, 0.0, -(train as f64 / steps as f64))
            .into_iter()
            .map(|t| np_round(t) as i64 - 1)
            .collect(),
    }
}

/// DPM-Solver: integer timesteps, highest first, from `steps + 1` grid points of
/// which the last (lowest) is dropped. `last_timestep` is the training length minus
/// the `lambda_min_clipped` cut.
pub(crate) fn dpm(config: &SchedulerConfig, spacing: Spacing, steps: usize, last_timestep: usize) -> Vec<i64> {
    match spacing {
        Spacing::Linspace => {
            let mut ts: Vec<i64> = np_linspace(0.0, last_timestep as f64 - 1.0, steps + 1)
                .into_iter()
                .rev()
                .map(|t| np_round(t) as i64)
                .collect();
            ts.pop();
            ts
        }
        Spacing::Leading => {
            let ratio = last_timestep / (steps + 1);
            (1..=steps)
                .rev()
                .map(|i| (i * ratio + config.steps_offset) as i64)
                .collect()
        }
        Spacing::Trailing => {
            let ratio = config.num_train_timesteps as f64 / steps as f64;
            np_arange(last_timestep as f64, 0.0, -ratio)
                .into_iter()
                .map(|t| np_round(t) as i64 - 1)
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdxl_leading() {
        let c = SchedulerConfig::default();
        assert_eq!(euler(&c, Spacing::Leading, 4), vec![751.0, 501.0, 251.0, 1.0]);
        assert_eq!(ddim(&c, Spacing::Leading, 4), vec![751, 501, 251, 1]);
        assert_eq!(dpm(&c, Spacing::Leading, 4, 1000), vec![801, 601, 401, 201]);
    }

    #[test]
    fn trailing_and_linspace() {
        let c = SchedulerConfig::default();
        assert_eq!(euler(&c, Spacing::Trailing, 4), vec![999.0, 749.0, 499.0, 249.0]);
        assert_eq!(ddim(&c, Spacing::Linspace, 3), vec![999, 500, 0]);
        assert_eq!(dpm(&c, Spacing::Linspace, 2, 1000), vec![999, 500]);
    }
}
