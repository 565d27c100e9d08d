//! Why this exists: `easel status`, a running orchestrator's `/status` as a table (or the
//! JSON itself with `--json`). Flow: pick the address (`--addr`, else the config's
//! `[orchestrator] listen`, else the default) → GET /status → print.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use easel_orchestrator::config::Config;
use easel_orchestrator::duration;
use easel_orchestrator::status::{StatusReport, WorkerReport};

/// Examples shown under `easel status --help`.
pub const EXAMPLES: &str = "Examples:
  easel status
  easel status --addr 127.0.0.1:7870 --json";

/// Arguments of `easel status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Orchestrator address, HOST:PORT (default: `[orchestrator] listen` of the config, else 127.0.0.1:7870).
    #[arg(long, env = "EASEL_ORCHESTRATOR_ADDR")]
    addr: Option<String>,
    /// Config file to read the address from (default: ./easel.toml if present).
    #[arg(long, short, env = "EASEL_CONFIG")]
    config: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `easel status`.
pub fn run(args: StatusArgs) -> Result<()> {
    let addr = match args.addr {
        Some(addr) => addr,
        None => connect_addr(Config::discover_orchestrator(args.config.as_deref())?.listen),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(easel_orchestrator::fetch_status(&addr))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

/// Where to connect for a listen address (`0.0.0.0` listens everywhere; ask loopback).
fn connect_addr(listen: SocketAddr) -> String {
    match listen {
        SocketAddr::V4(a) if a.ip().is_unspecified() => format!("127.0.0.1:{}", a.port()),
        SocketAddr::V6(a) if a.ip().is_unspecified() => format!("[::1]:{}", a.port()),
        other => other.to_string(),
    }
}

/// The report as a header line and an aligned table.
fn render(report: &StatusReport) -> String {
    let o = &report.orchestrator;
    let mut out = format!(
        "orchestrator pid {} up {} config {} — {}\n",
        o.pid,
        seconds(Some(o.uptime_s)),
        o.config,
        if o.ready { "ready" } else { "not ready" }
    );
    let header = ["WORKER", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT", "REASON"].map(str::to_owned);
    let rows: Vec<[String; 7]> = report.workers.iter().map(row).collect();
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn row(w: &WorkerReport) -> [String; 7] {
    let dash = || "-".to_owned();
    [
        w.name.clone(),
        w.state.to_string(),
        w.pid.map_or_else(dash, |p| p.to_string()),
        seconds(w.uptime_s),
        w.restarts.to_string(),
        w.last_exit.as_ref().map_or_else(dash, |e| e.description.clone()),
        w.reason.clone().unwrap_or_else(dash),
    ]
}

fn seconds(s: Option<f64>) -> String {
    match s {
        Some(s) if s.is_finite() && s >= 0.0 => duration::format(Duration::from_secs(s.round() as u64)),
        _ => "-".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_an_aligned_table_with_reasons() {
        let report: StatusReport = serde_json::from_value(serde_json::json!({
            "orchestrator": {"pid": 10, "version": "0.1.0", "uptime_s": 125.2, "config": "easel.toml", "ready": false},
            "workers": [
                {"name": "sdxl", "kind": "sdxl", "command": "easel worker sdxl run", "state": "running", "pid": 11,
                 "port": 7859, "priority": 1, "uptime_s": 64.9, "restarts": 0, "last_exit": null, "reason": null,
                 "next_start_in_s": null},
                {"name": "video", "kind": "external", "command": "python3 wan.py", "state": "fatal", "pid": null,
                 "port": 7860, "priority": 2, "uptime_s": null, "restarts": 4,
                 "last_exit": {"code": 1, "signal": null, "description": "exited with code 1", "at_unix": 1.0},
                 "reason": "5 failures within 5m; the last: exited with code 1", "next_start_in_s": null}
            ]
        }))
        .unwrap();
        let expected = "\
orchestrator pid 10 up 2m5s config easel.toml — not ready
WORKER  STATE    PID  UPTIME  RESTARTS  LAST EXIT           REASON
sdxl    running  11   1m5s    0         -                   -
video   fatal    -    -       4         exited with code 1  5 failures within 5m; the last: exited with code 1
";
        assert_eq!(render(&report), expected);
    }

    #[test]
    fn an_unspecified_listen_address_is_asked_on_loopback() {
        assert_eq!(connect_addr("0.0.0.0:7870".parse().unwrap()), "127.0.0.1:7870");
        assert_eq!(connect_addr("127.0.0.2:1".parse().unwrap()), "127.0.0.2:1");
    }
}
