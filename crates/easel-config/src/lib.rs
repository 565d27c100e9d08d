//! Easel's one configuration, shared by every command and crate: one schema for
//! `easel.toml` (`data_dir`, `[worker]`, `[orchestrator]`, `[[workers]]`), one duration syntax,
//! defaults written once, and the precedence flags > environment > file > defaults with the
//! origin of each value kept. No engine and no async runtime: anything that only needs the
//! settings (the job store, the orchestrator, tools) links this alone.
//!
//! Table of contents:
//! - [`consts`]: exit codes, default ports and addresses, queue and bucket names.
//! - [`duration`]: `"500ms"`, `"30s"`, `"15m"`, `"1h"`, `"7d"`, parsed and printed back.
//! - [`home`]: the data home and the configuration file, found the same way by every command.
//! - [`settings`]: the table of the worker runtime's settings (keys, environment names, defaults).
//! - [`layers`]: resolving those settings with their origins; deprecated spellings.
//! - [`file`]: reading `easel.toml` against the one schema.
//! - [`worker`]: the worker runtime's settings as types ([`WorkerConfig`]).
//! - [`house`]: what the orchestrator runs (`[orchestrator]`, `[[workers]]`).
//! - [`gpu`]: how many NVIDIA GPUs this host has (for `gpus = "all"`), without CUDA.
//! - [`show`]: every effective value with its origin, for `easel config show`.
//! - [`secret`], [`error`]: secrets that never print; the one configuration error.

pub mod consts;
pub mod duration;
pub mod error;
pub mod file;
pub mod gpu;
pub mod home;
pub mod house;
pub mod layers;
pub mod secret;
pub mod settings;
pub mod show;
pub mod worker;

pub use consts::*;
pub use error::{ConfigError, Source};
pub use file::ConfigFile;
pub use layers::Layers;
pub use secret::Secret;
pub use worker::{
    data_dir, model_choice, queue_name, CallbackTarget, GeneratorChoice, ModelChoice, QueueBackend, StorageBackend,
    Timing, WorkerConfig,
};
