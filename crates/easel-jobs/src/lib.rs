//! Easel's job store: everything about a job except generating it. The ourvidz job contract,
//! the queue backends with their outcome records and callback outbox, storage, and the
//! callback delivery loop — without the engine, so `easel submit`, a jobs command or a console
//! can use the queue without linking candle.
//!
//! Table of contents:
//! - [`contract`]: the ourvidz job payload (aliases, presets, validation) and callback bodies.
//! - [`queue`]: the [`Queue`] trait with shared outcome records and the callback outbox;
//!   embedded SQLite, native Redis and Upstash REST backends.
//! - [`storage`]: the [`Storage`] trait; local directory, Supabase Storage REST, S3-compatible.
//! - [`callback`]: the delivery loop over the queue's outbox: retries, idempotency key, HMAC.
//! - [`db`]: the embedded SQLite database (job table, outcomes, outbox) in the data home.
//! - [`operate`]: what `easel jobs` does: cancel with the contract's outcome, masked payloads.
//! - [`submit`]: building and pushing a contract payload, and waiting for its outcome.
//! - [`metrics`]: Prometheus counters and gauges of jobs, phases, callbacks and storage.
//! - [`histogram`]: Prometheus histograms from fixed atomic buckets.
//! - [`retry`]: full-jitter exponential backoff shared by storage, callbacks and queue commands.
//! - [`logsafe`]: producer-supplied text escaped for log lines.

pub mod callback;
pub mod contract;
pub mod db;
pub mod histogram;
pub mod logsafe;
pub mod metrics;
pub mod operate;
pub mod queue;
pub mod retry;
pub mod storage;
pub mod submit;

pub use queue::Queue;
pub use storage::Storage;
