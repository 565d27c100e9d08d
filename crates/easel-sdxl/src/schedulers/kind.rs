//! Why this exists: the sampler names people type (CLI flags, API requests) and the
//! one place that maps them to implementations.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// The samplers Easel implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SchedulerKind {
    /// Euler (`euler`), SDXL-base's default.
    #[default]
    Euler,
    /// Euler Ancestral (`euler_a`).
    EulerAncestral,
    /// DPM++ 2M (`dpmpp_2m`).
    DpmPp2m,
    /// DPM++ 2M with Karras sigmas (`dpmpp_2m_karras`).
    DpmPp2mKarras,
    /// DDIM, eta 0 (`ddim`).
    Ddim,
}

impl SchedulerKind {
    /// Every kind, in display order.
    pub const ALL: [SchedulerKind; 5] = [
        SchedulerKind::Euler,
        SchedulerKind::EulerAncestral,
        SchedulerKind::DpmPp2m,
        SchedulerKind::DpmPp2mKarras,
        SchedulerKind::Ddim,
    ];

    /// The canonical name (what [`fmt::Display`] prints and [`FromStr`] accepts).
    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Euler => "euler",
            SchedulerKind::EulerAncestral => "euler_a",
            SchedulerKind::DpmPp2m => "dpmpp_2m",
            SchedulerKind::DpmPp2mKarras => "dpmpp_2m_karras",
            SchedulerKind::Ddim => "ddim",
        }
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SchedulerKind {
    type Err = Error;

    /// Canonical names, case-insensitive, plus a few aliases (`euler_ancestral`,
    /// `euler-a`, `dpm++2m`, `DPM++ 2M Karras`, ...).
    fn from_str(s: &str) -> Result<Self> {
        let norm = s
            .trim()
            .to_ascii_lowercase()
            .replace("++", "pp")
            .replace([' ', '-'], "_");
        let kind = match norm.as_str() {
            "euler" | "euler_discrete" => SchedulerKind::Euler,
            "euler_a" | "euler_ancestral" | "eulera" | "euler_ancestral_discrete" => SchedulerKind::EulerAncestral,
            "dpmpp_2m" | "dpmpp2m" | "dpm_pp_2m" | "dpmsolverpp" | "dpmsolver_multistep" => SchedulerKind::DpmPp2m,
            "dpmpp_2m_karras" | "dpmpp2m_karras" | "dpmpp2mkarras" | "dpm_pp_2m_karras" => SchedulerKind::DpmPp2mKarras,
            "ddim" => SchedulerKind::Ddim,
            _ => {
                let valid: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
                return Err(Error::invalid(format!(
                    "unknown scheduler \"{s}\"; valid schedulers: {}",
                    valid.join(", ")
                )));
            }
        };
        Ok(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in SchedulerKind::ALL {
            assert_eq!(k.to_string().parse::<SchedulerKind>().unwrap(), k);
        }
        assert_eq!(SchedulerKind::default(), SchedulerKind::Euler);
    }

    #[test]
    fn aliases() {
        let cases = [
            ("euler_ancestral", SchedulerKind::EulerAncestral),
            ("Euler-A", SchedulerKind::EulerAncestral),
            ("dpm++2m", SchedulerKind::DpmPp2m),
            ("DPM++ 2M", SchedulerKind::DpmPp2m),
            ("dpm++_2m_karras", SchedulerKind::DpmPp2mKarras),
            ("DPM++ 2M Karras", SchedulerKind::DpmPp2mKarras),
            (" DDIM ", SchedulerKind::Ddim),
        ];
        for (s, k) in cases {
            assert_eq!(s.parse::<SchedulerKind>().unwrap(), k, "{s}");
        }
    }

    #[test]
    fn unknown_lists_valid_names() {
        let err = "heun".parse::<SchedulerKind>().unwrap_err();
        assert!(matches!(err, Error::InvalidRequest(_)));
        let msg = err.to_string();
        assert!(msg.contains("heun") && msg.contains("dpmpp_2m_karras"), "{msg}");
    }
}
