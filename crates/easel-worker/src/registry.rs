//! Why this exists: the worker kinds `easel worker <kind>` can start, each with the entry
//! points a supervisor may call and what `describe --json` reports (the orchestrator's
//! preflight reads it). One list, so a test can walk every kind through the CLI.

use serde::Serialize;

use crate::contract::JobType;

/// The entry points every worker kind exposes; all four run the same loop.
pub const ENTRY_POINTS: [&str; 4] = ["run", "start", "serve", "launch"];

/// What `easel worker <kind> describe --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct Description {
    pub kind: &'static str,
    pub entry_points: Vec<&'static str>,
    pub queue: String,
    pub job_types: Vec<&'static str>,
    /// Port of the HTTP endpoints (`WORKER_PORT`).
    pub port: u16,
    pub health: &'static str,
    pub ready: &'static str,
    pub live: &'static str,
    pub metrics: &'static str,
    pub version: &'static str,
}

/// A registered worker kind.
#[derive(Clone, Copy, Debug)]
pub struct Kind {
    pub name: &'static str,
    pub summary: &'static str,
    pub job_types: fn() -> Vec<&'static str>,
}

fn sdxl_job_types() -> Vec<&'static str> {
    JobType::ALL.iter().map(|t| t.as_str()).collect()
}

/// Every worker kind this binary runs.
pub const KINDS: &[Kind] = &[Kind {
    name: "sdxl",
    summary: "SDXL image generation for the ourvidz job contract (sdxl_queue)",
    job_types: sdxl_job_types,
}];

/// The kind named `name`.
pub fn find(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}

impl Kind {
    /// The description, with the configured queue name and port.
    pub fn describe(&self, queue: String, port: u16) -> Description {
        Description {
            kind: self.name,
            entry_points: ENTRY_POINTS.to_vec(),
            queue,
            job_types: (self.job_types)(),
            port,
            health: "/health",
            ready: "/readyz",
            live: "/livez",
            metrics: "/metrics",
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}
