//! Why this exists: the numbers and names every Easel command must agree on (exit codes,
//! ports, the queue and bucket names of the ourvidz wire contract), defined once.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// `EX_CONFIG` from `sysexits.h`: the configuration is wrong; restarting will not help.
/// The orchestrator treats this exit as FATAL at once instead of restarting the worker.
pub const EXIT_CONFIG: u8 = 78;

/// The SDXL worker's HTTP port when none is configured: the Python worker's default.
pub const DEFAULT_WORKER_PORT: u16 = 7859;

/// Address the worker's endpoints bind to by default: loopback only.
pub const DEFAULT_BIND: &str = "127.0.0.1";

/// Where the orchestrator's `/status`, `/metrics`, `/livez` and `/readyz` listen: loopback,
/// next to the workers' own ports.
pub const DEFAULT_ORCHESTRATOR_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7870);

/// The queue name producers push to (`LPUSH sdxl_queue <json>`).
pub const DEFAULT_QUEUE: &str = "sdxl_queue";

/// The Supabase bucket the Python worker uploads to.
pub const DEFAULT_BUCKET: &str = "workspace-temp";

/// The file name of the embedded database (SQLite queue, job table, outbox) in the data home.
pub const DB_FILE: &str = "easel.db";

/// The configuration file read from the working directory when neither `--config` nor
/// `EASEL_CONFIG` names one.
pub const CONFIG_FILE: &str = "easel.toml";
