//! Why this exists: one x86-64 binary runs on baseline, AVX2 and AVX-512 machines, and each
//! should run the widest vector code it has. The kernels' hot loops are compiled for each
//! instruction set; this picks one per process — the best the CPU has, or the one named by
//! `EASEL_CPU_ISA` (`avx512`, `avx2`, `baseline`), or one forced by a test or a benchmark —
//! never one the CPU lacks.

use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction set the kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    Baseline,
    Avx2,
    Avx512,
}

impl Isa {
    /// Its name, as `EASEL_CPU_ISA` takes it and `easel bench` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Baseline => "baseline",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// The set named `s` (`avx512`, `avx2`, `baseline`).
    pub fn from_name(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "baseline" | "scalar" | "x86-64" => Some(Isa::Baseline),
            "avx2" => Some(Isa::Avx2),
            "avx512" | "avx-512" => Some(Isa::Avx512),
            _ => None,
        }
    }

    fn code(self) -> u8 {
        self as u8 + 1
    }

    fn of_code(c: u8) -> Option<Self> {
        [Isa::Baseline, Isa::Avx2, Isa::Avx512]
            .get(usize::from(c.checked_sub(1)?))
            .copied()
    }
}

/// The best instruction set this CPU has.
pub fn best() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        let has = |f: &str| match f {
            "avx512f" => std::is_x86_feature_detected!("avx512f"),
            "avx512bw" => std::is_x86_feature_detected!("avx512bw"),
            "avx512vl" => std::is_x86_feature_detected!("avx512vl"),
            "avx512dq" => std::is_x86_feature_detected!("avx512dq"),
            "avx2" => std::is_x86_feature_detected!("avx2"),
            "fma" => std::is_x86_feature_detected!("fma"),
            _ => false,
        };
        let avx2 = has("avx2") && has("fma");
        if avx2 && ["avx512f", "avx512bw", "avx512vl", "avx512dq"].iter().all(|f| has(f)) {
            return Isa::Avx512;
        }
        if avx2 {
            return Isa::Avx2;
        }
    }
    Isa::Baseline
}

/// Every instruction set this CPU can run, narrowest first.
pub fn available() -> Vec<Isa> {
    [Isa::Baseline, Isa::Avx2, Isa::Avx512]
        .into_iter()
        .filter(|i| *i <= best())
        .collect()
}

/// 0: not decided yet; otherwise `Isa::code`.
static SELECTED: AtomicU8 = AtomicU8::new(0);

/// The instruction set the kernels run now.
#[inline]
pub fn selected() -> Isa {
    match Isa::of_code(SELECTED.load(Ordering::Relaxed)) {
        Some(isa) => isa,
        None => {
            let isa = from_env().unwrap_or_else(best);
            SELECTED.store(isa.code(), Ordering::Relaxed);
            isa
        }
    }
}

/// `EASEL_CPU_ISA`, capped at what the CPU has (a warning says so when it asks for more).
fn from_env() -> Option<Isa> {
    let text = std::env::var("EASEL_CPU_ISA").ok()?;
    let Some(asked) = Isa::from_name(&text) else {
        tracing::warn!("EASEL_CPU_ISA={text:?} is not avx512, avx2 or baseline; using the best this CPU has");
        return None;
    };
    let best = best();
    if asked > best {
        tracing::warn!(
            "EASEL_CPU_ISA={text} asks for more than this CPU has; using {}",
            best.name()
        );
    }
    Some(asked.min(best))
}

/// Makes the kernels of the whole process run `isa` (capped at what the CPU has), or the
/// default again with `None`; returns what is now selected. For tests and benchmarks.
pub fn force(isa: Option<Isa>) -> Isa {
    let isa = isa.map_or_else(|| from_env().unwrap_or_else(best), |i| i.min(best()));
    SELECTED.store(isa.code(), Ordering::Relaxed);
    isa
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_codes_are_distinct() {
        for isa in [Isa::Baseline, Isa::Avx2, Isa::Avx512] {
            assert_eq!(Isa::from_name(isa.name()), Some(isa));
            assert_eq!(Isa::of_code(isa.code()), Some(isa));
        }
        assert_eq!(Isa::from_name("sse9"), None);
        assert_eq!(Isa::of_code(0), None);
    }

    #[test]
    fn the_available_sets_end_with_the_best() {
        let all = available();
        assert_eq!(all.first(), Some(&Isa::Baseline));
        assert_eq!(all.last(), Some(&best()));
    }
}
