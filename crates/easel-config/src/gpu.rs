//! Why this exists: `gpus = "all"` in a `[[workers]]` table, and the preflight of `easel up`,
//! need to know how many NVIDIA GPUs this host has — without linking CUDA (the orchestrator
//! never loads the engine) and without running a program while a config loads.
//!
//! Where it looks; the first that answers wins:
//! 1. `EASEL_GPUS=N`: an explicit count, for containers that hide the driver's files, for
//!    tests, and for trying a multi-GPU config on a machine without GPUs. `0` means none.
//! 2. `/proc/driver/nvidia/gpus/`: one directory per GPU (named by its PCI address), made by
//!    the NVIDIA kernel driver; the NVIDIA container toolkit shows a container only its own.
//! 3. `/dev/nvidia0`, `/dev/nvidia1`, …: the device nodes, where `/proc` lacks the driver's
//!    directory (only their number counts: a container's nodes keep the host's minors).
//!
//! `nvidia-smi -L` is not run: it would make loading a config spawn a program and wait on the
//! driver, for the same list the driver already writes to `/proc`.
//!
//! `CUDA_VISIBLE_DEVICES`, when set in the orchestrator's environment, is inherited by every
//! worker and renumbers the devices inside it: the GPUs it lists are `cuda:0`, `cuda:1`, … in
//! its order (an empty value, or an entry such as `-1`, ends the list, as in CUDA). The count
//! is narrowed to what it lists, so `gpus = "all"` runs one worker per listed GPU and the
//! worker of `cuda:N` uses the N-th of them.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{ConfigError, Source};

/// Overrides discovery with a count of GPUs.
pub const GPUS_ENV: &str = "EASEL_GPUS";
/// CUDA's own list of the devices a process may use.
pub const CUDA_VISIBLE_DEVICES: &str = "CUDA_VISIBLE_DEVICES";

/// Where the driver lists its GPUs, under the root.
const PROC_GPUS: &str = "proc/driver/nvidia/gpus";
/// Where the device nodes are, under the root.
const DEV: &str = "dev";

/// The GPUs the workers can use: `cuda:0` to `cuda:{count - 1}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpus {
    /// How many.
    pub count: u32,
    /// Where they were counted.
    pub source: Found,
    /// `CUDA_VISIBLE_DEVICES`, when it narrowed what the driver lists.
    pub visible: Option<String>,
}

/// Where [`Gpus`] were counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// `EASEL_GPUS`, as written.
    Override(String),
    /// The driver's `/proc` directory, with how many GPUs it lists.
    Proc { dir: PathBuf, listed: u32 },
    /// The `/dev` directory, with how many `nvidiaN` nodes it holds.
    DevNodes { dir: PathBuf, listed: u32 },
    /// Nothing answered: the places looked at.
    Nowhere { proc: PathBuf, dev: PathBuf },
}

impl Gpus {
    /// A count from nowhere in particular, as if `EASEL_GPUS` said it (tests).
    pub fn fixed(count: u32) -> Self {
        Self {
            count,
            source: Found::Override(count.to_string()),
            visible: None,
        }
    }

    /// How to run without a GPU, or make one seen: the end of a "no GPU" message.
    pub fn hint() -> String {
        format!(
            "to run on the CPU instead, remove `gpus` (the worker's default device is cpu); if the GPUs are \
             there but hidden from this process, set {GPUS_ENV}=N"
        )
    }
}

impl fmt::Display for Gpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let narrowed = |f: &mut fmt::Formatter<'_>| match &self.visible {
            Some(v) => write!(f, ", narrowed by {CUDA_VISIBLE_DEVICES}={v:?}"),
            None => Ok(()),
        };
        match (&self.source, self.count) {
            (Found::Override(value), 0) => write!(f, "no NVIDIA GPU ({GPUS_ENV}={value})"),
            (Found::Override(value), n) => write!(f, "found {n} NVIDIA GPU(s) ({GPUS_ENV}={value})"),
            (Found::Nowhere { proc, dev }, _) => write!(
                f,
                "no NVIDIA GPU found (looked in {} and for {}/nvidia[0-9]*)",
                proc.display(),
                dev.display()
            ),
            (Found::Proc { dir, listed } | Found::DevNodes { dir, listed }, n) => {
                let place = match &self.source {
                    Found::DevNodes { .. } => format!("{}/nvidia[0-9]*", dir.display()),
                    _ => dir.display().to_string(),
                };
                if n == 0 {
                    write!(f, "no NVIDIA GPU visible ({place} lists {listed}")?;
                } else if self.visible.is_some() {
                    write!(f, "found {n} NVIDIA GPU(s) ({place} lists {listed}")?;
                } else {
                    return write!(f, "found {n} NVIDIA GPU(s) ({place})");
                }
                narrowed(f)?;
                f.write_str(")")
            }
        }
    }
}

/// This host's GPUs: [`discover`] at `/` with the process environment.
pub fn discover_host() -> Result<Gpus, ConfigError> {
    discover(Path::new("/"), &|name| std::env::var(name).ok())
}

/// The GPUs under `root` (`/` on a real host; a directory shaped like it in tests), with
/// `env` as the environment. `Err` only for an `EASEL_GPUS` that is not a count.
pub fn discover(root: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Gpus, ConfigError> {
    if let Some(value) = env(GPUS_ENV).filter(|v| !v.trim().is_empty()) {
        let count = value.trim().parse::<u32>().map_err(|_| ConfigError::Invalid {
            setting: GPUS_ENV.to_owned(),
            value: value.clone(),
            origin: Source::Env(GPUS_ENV),
            problem: "is not a number of GPUs: write EASEL_GPUS=2, or EASEL_GPUS=0 for none".to_owned(),
        })?;
        return Ok(Gpus {
            count,
            source: Found::Override(value.trim().to_owned()),
            visible: None,
        });
    }
    let proc = root.join(PROC_GPUS);
    let dev = root.join(DEV);
    let source = match (count_entries(&proc, |_| true), count_entries(&dev, is_gpu_node)) {
        (listed @ 1.., _) => Found::Proc { dir: proc, listed },
        (0, listed @ 1..) => Found::DevNodes { dir: dev, listed },
        (0, 0) => Found::Nowhere { proc, dev },
    };
    let listed = match &source {
        Found::Proc { listed, .. } | Found::DevNodes { listed, .. } => *listed,
        Found::Override(_) | Found::Nowhere { .. } => 0,
    };
    let visible = env(CUDA_VISIBLE_DEVICES).filter(|_| listed > 0);
    let count = match &visible {
        Some(list) => listed.min(visible_entries(list)),
        None => listed,
    };
    Ok(Gpus { count, source, visible })
}

/// How many devices `CUDA_VISIBLE_DEVICES` lists: entries up to the first empty or negative
/// one (CUDA ignores the rest). Indices, `GPU-…` and `MIG-…` UUIDs all count as one.
fn visible_entries(list: &str) -> u32 {
    let listed = list
        .split(',')
        .map(str::trim)
        .take_while(|entry| !entry.is_empty() && !entry.starts_with('-'))
        .count();
    u32::try_from(listed).unwrap_or(u32::MAX)
}

/// `nvidia0`, `nvidia12`: a GPU's node (not `nvidiactl`, `nvidia-uvm`, `nvidia-modeset`).
fn is_gpu_node(name: &str) -> bool {
    name.strip_prefix("nvidia")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Entries of `dir` whose name passes `keep`; 0 when it cannot be read.
fn count_entries(dir: &Path, keep: impl Fn(&str) -> bool) -> u32 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let kept = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(&keep))
        .count();
    u32::try_from(kept).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A root with `n` GPUs under `/proc/driver/nvidia/gpus` and `nodes` device nodes.
    fn host(gpus: u32, nodes: u32) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let proc = root.path().join(PROC_GPUS);
        std::fs::create_dir_all(&proc).unwrap();
        for i in 0..gpus {
            std::fs::create_dir(proc.join(format!("0000:{:02x}:00.0", i + 1))).unwrap();
        }
        let dev = root.path().join(DEV);
        std::fs::create_dir_all(&dev).unwrap();
        for name in ["nvidiactl", "nvidia-uvm", "nvidia-modeset", "null"] {
            std::fs::write(dev.join(name), "").unwrap();
        }
        for i in 0..nodes {
            std::fs::write(dev.join(format!("nvidia{i}")), "").unwrap();
        }
        root
    }

    fn found(root: &Path, vars: &[(&str, &str)]) -> Gpus {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        discover(root, &|name| vars.get(name).cloned()).unwrap()
    }

    #[test]
    fn the_drivers_proc_directory_counts_first() {
        let root = host(2, 4);
        let gpus = found(root.path(), &[]);
        assert_eq!(gpus.count, 2);
        let dir = root.path().join(PROC_GPUS);
        assert_eq!(
            gpus.source,
            Found::Proc {
                dir: dir.clone(),
                listed: 2
            }
        );
        assert_eq!(gpus.to_string(), format!("found 2 NVIDIA GPU(s) ({})", dir.display()));
    }

    #[test]
    fn device_nodes_count_when_proc_lists_none_and_other_nodes_do_not() {
        let root = host(0, 3);
        let gpus = found(root.path(), &[]);
        assert_eq!(gpus.count, 3);
        assert!(matches!(gpus.source, Found::DevNodes { listed: 3, .. }), "{gpus:?}");
        assert!(gpus.to_string().ends_with("/dev/nvidia[0-9]*)"), "{gpus}");
    }

    #[test]
    fn a_host_without_gpus_says_where_it_looked() {
        let root = host(0, 0);
        let gpus = found(root.path(), &[]);
        assert_eq!(gpus.count, 0);
        let text = gpus.to_string();
        assert!(text.starts_with("no NVIDIA GPU found (looked in "), "{text}");
        assert!(
            text.contains("proc/driver/nvidia/gpus") && text.contains("nvidia[0-9]*"),
            "{text}"
        );
        let missing = tempfile::tempdir().unwrap();
        assert_eq!(found(&missing.path().join("absent"), &[]).count, 0);
    }

    #[test]
    fn easel_gpus_overrides_what_the_host_shows() {
        let root = host(0, 0);
        let gpus = found(root.path(), &[(GPUS_ENV, "2"), (CUDA_VISIBLE_DEVICES, "")]);
        assert_eq!(gpus, Gpus::fixed(2));
        assert_eq!(gpus.to_string(), "found 2 NVIDIA GPU(s) (EASEL_GPUS=2)");
        let root = host(4, 4);
        assert_eq!(
            found(root.path(), &[(GPUS_ENV, "0")]).to_string(),
            "no NVIDIA GPU (EASEL_GPUS=0)"
        );
        assert_eq!(found(root.path(), &[(GPUS_ENV, " ")]).count, 4);
        let err = discover(root.path(), &|name| (name == GPUS_ENV).then(|| "two".to_owned())).unwrap_err();
        assert!(err.to_string().contains("EASEL_GPUS = \"two\""), "{err}");
    }

    #[test]
    fn cuda_visible_devices_narrows_the_count_as_cuda_does() {
        let root = host(4, 4);
        let count = |visible: &str| found(root.path(), &[(CUDA_VISIBLE_DEVICES, visible)]).count;
        assert_eq!(count("2,3"), 2);
        assert_eq!(count("GPU-8f6c, MIG-1234"), 2);
        assert_eq!(count("1,-1,2"), 1);
        assert_eq!(count(""), 0);
        assert_eq!(count("0,1,2,3,4,5"), 4);
        let text = found(root.path(), &[(CUDA_VISIBLE_DEVICES, "3")]).to_string();
        assert!(
            text.starts_with("found 1 NVIDIA GPU(s) (")
                && text.ends_with("lists 4, narrowed by CUDA_VISIBLE_DEVICES=\"3\")"),
            "{text}"
        );
        let text = found(root.path(), &[(CUDA_VISIBLE_DEVICES, "-1")]).to_string();
        assert!(text.starts_with("no NVIDIA GPU visible ("), "{text}");
    }
}
