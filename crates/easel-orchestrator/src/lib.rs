//! Easel's orchestrator: it supervises worker processes (built-in `easel worker <kind>`
//! and external commands) — config, preflight, spawning, readiness, restarts, signals,
//! status and metrics. It never links the engine or the worker runtime: it spawns them.
//!
//! Table of contents:
//! - [`config`]: `[orchestrator]` and `[[workers]]` of `easel.toml` (from `easel-config`).
//! - [`orchestrator`]: [`run`], the event loop over start order, reloads and shutdown.
//! - `supervisor` (private): one task per worker, its single restart authority.
//! - [`state`]: the worker lifecycle and [`transition`], the one function that moves it.
//! - [`restart`]: backoff with jitter and cap, failure window, FATAL verdicts.
//! - [`preflight`]: `describe --json`, programs, check commands.
//! - `readiness` (private): `/readyz` or a command, probed until ready.
//! - [`launch`]: how a worker becomes a command line and environment.
//! - [`process`]: process groups, parent-death signal, signalling and liveness of groups.
//! - `watchdog` (private): kills the workers if the orchestrator itself is killed.
//! - [`output`]: workers' output, line by line, prefixed with their names.
//! - [`status`]: the report behind `/status`, `/metrics` and `easel status`.
//! - `server` (private): the HTTP endpoints; [`client`]: `easel status`'s side of them.
//! - [`http`]: a minimal HTTP/1.0 GET over TCP (readiness probes, the client).
//! - [`signals`]: SIGTERM/SIGINT/SIGHUP as `easel up` handles them.
//! - [`duration`]: `"30s"`-style durations (from `easel-config`).
//! - [`Error`] and [`Chain`]: the library's error, and an error shown with its causes.
//!   Each module has its typed errors beside it ([`http::HttpError`],
//!   [`process::CommandError`], [`preflight::PreflightError`], ...).
//!
//! Unix only: it relies on process groups and signals.

pub mod client;
mod error;
pub mod http;
pub mod launch;
pub mod orchestrator;
pub mod output;
pub mod preflight;
pub mod process;
mod readiness;
pub mod restart;
mod server;
pub mod signals;
pub mod state;
pub mod status;
mod supervisor;
mod watchdog;

/// `"30s"`-style durations, the one syntax of every `easel.toml` section.
pub use easel_config::duration;
/// `easel.toml`'s `[orchestrator]` and `[[workers]]`, owned by `easel-config`.
pub use easel_config::house as config;

pub use client::fetch_status;
pub use config::Config;
pub use error::{Chain, Error, Result};
pub use orchestrator::{run, Handle, Orchestrator};
pub use output::{LineSink, Stream};
pub use signals::run_until_signalled;
pub use state::{transition, WorkerState};
pub use status::StatusReport;
pub use tokio_util::sync::CancellationToken;
