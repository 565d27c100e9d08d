//! Why this exists: the `gpus` key of a `[[workers]]` table as written — `"all"` or a list
//! of indices — and the checks of a table that has it, apart from the expansion into workers
//! (`gpus.rs`), so that the table's own type can hold the key without depending on the
//! expansion.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// The variable that names a worker (its logs, metrics and queue consumer id).
pub const WORKER_NAME_ENV: &str = "EASEL_WORKER_NAME";

/// `gpus = ...` as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuSelection {
    /// `"all"`: every GPU [`crate::gpu::discover`] finds.
    All,
    /// A list of indices, as written (checked by [`validate`]).
    Indices(Vec<i64>),
    /// Any other text, kept to be refused with its table named.
    Other(String),
}

impl fmt::Display for GpuSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuSelection::All => f.write_str("\"all\""),
            GpuSelection::Other(text) => write!(f, "{text:?}"),
            GpuSelection::Indices(list) => {
                let items: Vec<String> = list.iter().map(i64::to_string).collect();
                write!(f, "[{}]", items.join(", "))
            }
        }
    }
}

impl<'de> Deserialize<'de> for GpuSelection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SelectionVisitor)
    }
}

struct SelectionVisitor;

impl<'de> Visitor<'de> for SelectionVisitor {
    type Value = GpuSelection;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"all\" or a list of GPU indices such as [0, 1]")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(match text {
            "all" => GpuSelection::All,
            other => GpuSelection::Other(other.to_owned()),
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut list = Vec::new();
        while let Some(index) = seq.next_element::<i64>()? {
            list.push(index);
        }
        Ok(GpuSelection::Indices(list))
    }
}

/// Which GPU an expanded worker runs on, and which table it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuSlot {
    /// The `name` of its `[[workers]]` table.
    pub table: String,
    /// Its GPU: `--device cuda:{gpu}`.
    pub gpu: u32,
    /// Its place among the table's workers: its port is the table's `port` plus this.
    pub offset: u16,
}

/// Checks a table with `gpus` from its `command`, `args` and `env` (the rest of the table is
/// checked as any other).
pub(super) fn validate(
    command: bool,
    args: &[String],
    env: &BTreeMap<String, String>,
    selection: &GpuSelection,
) -> Result<(), String> {
    if command {
        return Err(
            "`gpus` runs one built-in worker per GPU and needs `kind = \"sdxl\"`; an external `command` \
             picks its GPU itself (in its arguments, or CUDA_VISIBLE_DEVICES in `env`)"
                .into(),
        );
    }
    indices(selection)?;
    if let Some(arg) = args.iter().find(|a| *a == "--device" || a.starts_with("--device=")) {
        return Err(format!(
            "gpus = {selection} gives each worker its own --device cuda:N, but `args` sets {arg:?} too; \
             remove --device from `args` (or remove `gpus` to choose the device yourself)"
        ));
    }
    let refused = [
        ("EASEL_DEVICE", "gives each worker its own --device cuda:N"),
        (
            WORKER_NAME_ENV,
            "names each worker <name>-gpuN (its EASEL_WORKER_NAME); rename the table instead",
        ),
        (
            crate::gpu::CUDA_VISIBLE_DEVICES,
            "numbers the GPUs as `easel up` sees them, and CUDA_VISIBLE_DEVICES in `env` would renumber them \
             inside each worker; set it in the environment of `easel up` instead (gpus = \"all\" counts what it lists)",
        ),
    ];
    for (key, why) in refused {
        if env.contains_key(key) {
            return Err(format!("env sets {key}, but gpus = {selection} {why}"));
        }
    }
    Ok(())
}

/// The GPU indices of a list, checked: not empty, each a GPU index, none twice. `Ok(None)`
/// for `"all"`.
pub(super) fn indices(selection: &GpuSelection) -> Result<Option<Vec<u32>>, String> {
    let list = match selection {
        GpuSelection::All => return Ok(None),
        GpuSelection::Other(text) => {
            return Err(format!(
                "gpus = {text:?} is not a GPU selection: write gpus = \"all\" (every GPU found) or a list of \
                 GPU indices, e.g. gpus = [0, 1]"
            ))
        }
        GpuSelection::Indices(list) => list,
    };
    if list.is_empty() {
        return Err(
            "gpus = [] names no GPU: list at least one, e.g. gpus = [0], or write gpus = \"all\"; \
             to run on the CPU remove `gpus`"
                .into(),
        );
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    for &index in list {
        let Ok(gpu) = u32::try_from(index) else {
            return Err(format!(
                "gpus = {selection}: {index} is not a GPU index (they count from 0, as in cuda:0)"
            ));
        };
        if !seen.insert(gpu) {
            return Err(format!(
                "gpus = {selection} lists GPU {gpu} twice; each GPU runs one worker"
            ));
        }
        out.push(gpu);
    }
    Ok(Some(out))
}
