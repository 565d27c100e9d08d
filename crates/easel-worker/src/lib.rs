//! Easel's worker runtime: takes ourvidz jobs from a queue, generates images through a
//! [`Generator`], uploads them, and reports each job's outcome by callback — wire-compatible
//! with the Python `sdxl_worker.py`, but nothing is lost, nothing is answered twice, nothing crashes.
//!
//! Data flow of one job: [`queue`] lease → outcome already recorded? (re-send it, never rerun)
//! → [`contract`] parse + validate → [`reference`] (img2img) → [`generator`] → [`encode`] PNG +
//! WebP thumbnail → [`storage`] upload → the outcome recorded, its callback queued and the
//! delivery removed in one atomic step → [`callback`] sent by any worker of the queue. Any
//! failure once the job id is known ends in one `failed` callback; a payload without a readable
//! id is dead-lettered.
//!
//! Table of contents:
//! - [`worker`]: the [`Worker`] trait (`run`, and `start`/`serve`/`launch` delegating to it) and
//!   [`SdxlWorker`], the job loop with graceful shutdown.
//! - [`process`]: what happens to one leased job, from payload to terminal callback.
//! - [`state`]: the job and worker lifecycles, changed through one function that rejects
//!   illegal moves.
//! - [`generator`]: the [`Generator`] trait the worker reaches the engine through, and a fake.
//! - [`sdxl`]: the [`SdxlGenerator`] adapter over `easel-sdxl`.
//! - [`reference`]: fetching img2img reference images with size and time limits.
//! - [`encode`]: PNG with generation parameters, and the 256 px WebP thumbnail.
//! - [`watch`]: the watch over a running job: progress, cancel requests, the time limit.
//! - [`shared`]: what the job loop, the job handler and the HTTP endpoints share.
//! - [`http`]: the worker's endpoints: `/health`, `/memory/*`, `/livez`, `/readyz`, `/metrics`.
//! - [`console`]: the web console (from `easel-console`) for this worker and its queue.
//! - [`registry`]: the worker kinds the CLI can start, and their `describe` output.
//! - [`error`]: the crate's top-level error and the process exit codes.
//!
//! From the job store (`easel-jobs`, re-exported here): [`contract`], [`queue`], [`storage`],
//! [`callback`], [`db`], [`submit`], [`metrics`], [`retry`], [`logsafe`]; from `easel-config`:
//! [`config`] (settings from flags > environment > `easel.toml` > defaults).
//!
//! Exit codes of `easel worker`: `0` after a graceful shutdown (SIGTERM/SIGINT), `78`
//! (`EX_CONFIG`) for a configuration error (bad environment, flags or `easel.toml`), `1` for
//! anything else (a backend unreachable at start, a model that fails to load, ...).

pub mod console;
pub mod encode;
pub mod error;
pub mod generator;
pub mod http;
pub mod process;
pub mod reference;
pub mod registry;
pub mod sdxl;
pub mod shared;
pub mod state;
pub mod watch;
pub mod worker;

// The job store and the settings, re-exported under their old paths: the worker is the
// generation loop and the engine adapter on top of them.
pub use easel_config as config;
pub use easel_jobs::{callback, contract, db, logsafe, metrics, operate, queue, retry, storage, submit};

pub use easel_config::{ConfigError, WorkerConfig, EXIT_CONFIG};
pub use error::Error;
pub use generator::{FakeGenerator, Generator};
pub use queue::Queue;
pub use sdxl::SdxlGenerator;
pub use storage::Storage;
pub use worker::{SdxlWorker, Worker};
