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
//! - [`contract`]: the ourvidz job payload (aliases, presets, validation) and callback bodies.
//! - [`generator`]: the [`Generator`] trait the worker reaches the engine through, and a fake.
//! - [`sdxl`]: the [`SdxlGenerator`] adapter over `easel-sdxl`.
//! - [`reference`]: fetching img2img reference images with size and time limits.
//! - [`encode`]: PNG with generation parameters, and the 256 px WebP thumbnail.
//! - [`queue`]: the [`Queue`] trait with shared outcome records and the callback outbox;
//!   embedded SQLite, native Redis and Upstash REST backends.
//! - [`storage`]: the [`Storage`] trait; local directory, Supabase Storage REST, S3-compatible.
//! - [`callback`]: the delivery loop over the queue's outbox: retries, idempotency key, HMAC.
//! - [`db`]: the embedded SQLite database (job table, outcomes, outbox) under the data dir.
//! - [`http`]: the worker's endpoints: `/health`, `/memory/*`, `/livez`, `/readyz`, `/metrics`.
//! - [`logsafe`]: producer-supplied text escaped for log lines.
//! - [`metrics`]: Prometheus counters and gauges.
//! - [`retry`]: full-jitter exponential backoff shared by storage, callbacks and queue commands.
//! - [`config`]: settings from flags > environment > `easel.toml` > defaults; secrets redacted.
//! - [`registry`]: the worker kinds the CLI can start, and their `describe` output.
//! - [`submit`]: building and pushing a contract payload, and waiting for its outcome.
//! - [`error`]: the crate's top-level error and the process exit codes.
//!
//! Exit codes of `easel worker`: `0` after a graceful shutdown (SIGTERM/SIGINT), `78`
//! (`EX_CONFIG`) for a configuration error (bad environment, flags or `easel.toml`), `1` for
//! anything else (a backend unreachable at start, a model that fails to load, ...).

pub mod callback;
pub mod config;
pub mod contract;
pub mod db;
pub mod encode;
pub mod error;
pub mod generator;
pub mod http;
pub mod logsafe;
pub mod metrics;
pub mod process;
pub mod queue;
pub mod reference;
pub mod registry;
pub mod retry;
pub mod sdxl;
pub mod state;
pub mod storage;
pub mod submit;
pub mod worker;

pub use config::{ConfigError, WorkerConfig};
pub use error::{Error, EXIT_CONFIG};
pub use generator::{FakeGenerator, Generator};
pub use queue::Queue;
pub use sdxl::SdxlGenerator;
pub use storage::Storage;
pub use worker::{SdxlWorker, Worker};
