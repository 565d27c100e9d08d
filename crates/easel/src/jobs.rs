//! Why this exists: `easel jobs` — look into the queue and act on one job without a database
//! shell, the same on SQLite, Redis and Upstash: list by state, show one job (payload with
//! secrets masked, outcome, callback delivery; `--follow` draws its progress), cancel, retry a
//! dead letter, purge old dead letters. It links the job store, never the engine.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use easel_config::{duration, Layers, WorkerConfig};
use easel_jobs::operate;
use easel_jobs::queue::control::{CancelResult, JobDetail, JobRow, JobState, RetryResult};
use easel_jobs::queue::Queue;
use serde_json::{json, Value};

use crate::job_bar::JobBar;

/// Examples shown under `easel jobs --help`.
pub const EXAMPLES: &str = "Examples:
  easel jobs list
  easel jobs list --state running --json
  easel jobs show 5f0c... --follow
  easel jobs cancel 5f0c...
  easel jobs retry 5f0c...
  easel jobs purge --dead --older-than 7d";

/// Arguments of `easel jobs`.
#[derive(Args, Debug)]
pub struct JobsArgs {
    /// An `easel.toml` to read; default `$EASEL_CONFIG` or `./easel.toml`.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The queue: sqlite, redis://..., rediss://... or an Upstash https:// URL.
    #[arg(long, global = true)]
    queue: Option<String>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Jobs by state: id, type, user, state, worker, progress, age, attempts, dead reason.
    #[command(after_help = "Examples:\n  easel jobs list\n  easel jobs list --state dead --json")]
    List(ListArgs),
    /// One job: state, payload (secrets masked), outcome and callback delivery.
    #[command(after_help = "Examples:\n  easel jobs show 5f0c...\n  easel jobs show 5f0c... --follow")]
    Show(ShowArgs),
    /// Cancel a job: a queued one is removed, a running one stopped; one `failed`/`cancelled` callback.
    #[command(after_help = "Examples:\n  easel jobs cancel 5f0c...")]
    Cancel(IdArg),
    /// Put a dead letter back on the queue (its delivery count and outcome cleared).
    #[command(after_help = "Examples:\n  easel jobs retry 5f0c...")]
    Retry(IdArg),
    /// Remove dead letters (all, or those older than a duration).
    #[command(after_help = "Examples:\n  easel jobs purge --dead\n  easel jobs purge --dead --older-than 7d")]
    Purge(PurgeArgs),
}

#[derive(Args, Debug)]
struct ListArgs {
    /// Only jobs in this state: queued, running, dead or done.
    #[arg(long, value_parser = |s: &str| s.parse::<JobState>())]
    state: Option<JobState>,
    /// At most this many jobs per state.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct ShowArgs {
    /// The job id.
    id: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Draw the job's progress until it ends, then show it.
    #[arg(long)]
    follow: bool,
}

#[derive(Args, Debug)]
struct IdArg {
    /// The job id.
    id: String,
}

#[derive(Args, Debug)]
struct PurgeArgs {
    /// Purge dead letters (the only kind of purge there is; required so it is never implied).
    #[arg(long, required = true)]
    dead: bool,
    /// Only those dead-lettered longer ago than this ("7d", "12h").
    #[arg(long, value_parser = |s: &str| duration::parse(s))]
    older_than: Option<Duration>,
}

/// Runs `easel jobs`.
pub fn run(args: JobsArgs) -> Result<()> {
    let mut flags = Vec::new();
    if let Some(q) = &args.queue {
        flags.push(("queue_url", q.clone()));
    }
    let layers = Layers::from_process(&flags, args.config.as_deref())?;
    let config = WorkerConfig::from_layers(&layers)?;
    let q = easel_jobs::submit::open_queue_as(&config, "jobs").map_err(anyhow::Error::new)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(act(q.as_ref(), &config, args.action))
}

async fn act(q: &dyn Queue, config: &WorkerConfig, action: Action) -> Result<()> {
    match action {
        Action::List(a) => list(q, a).await,
        Action::Show(a) => show(q, a).await,
        Action::Cancel(a) => match operate::cancel(q, config, &a.id).await? {
            CancelResult::Removed => ok(format!(
                "job {} was queued: removed, its cancelled callback queued",
                a.id
            )),
            CancelResult::Requested => ok(format!("job {} is running: its worker stops it within a step", a.id)),
            CancelResult::Finished => bail!("job {} has already finished; nothing to cancel", a.id),
            CancelResult::Unknown => bail!("no job {} in {}", a.id, q.describe()),
        },
        Action::Retry(a) => match q.retry(&a.id).await? {
            RetryResult::Requeued => ok(format!("job {} is back on the queue", a.id)),
            RetryResult::NotDead => bail!("job {} is not a dead letter in {}", a.id, q.describe()),
        },
        Action::Purge(a) => {
            let n = q.purge_dead(a.older_than).await?;
            ok(format!("{n} dead letter(s) purged"))
        }
    }
}

fn ok(message: String) -> Result<()> {
    println!("{message}");
    Ok(())
}

async fn list(q: &dyn Queue, a: ListArgs) -> Result<()> {
    let rows = q.list(a.state, a.limit).await?;
    if a.json {
        let rows: Vec<Value> = rows.iter().map(row_json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "queue": q.describe(), "jobs": rows }))?
        );
        return Ok(());
    }
    println!(
        "{:<38} {:<8} {:<16} {:<12} {:<10} {:>8} {:>7} {:>4}  REASON",
        "ID", "STATE", "TYPE", "USER", "WORKER", "PROGRESS", "AGE", "TRY"
    );
    for r in &rows {
        let progress = r
            .progress
            .as_ref()
            .map(|p| format!("{}/{}", p.step, p.total))
            .unwrap_or_default();
        let age = r
            .since
            .map(|s| duration::format(Duration::from_secs((now() - s).max(0.0) as u64)));
        println!(
            "{:<38} {:<8} {:<16} {:<12} {:<10} {:>8} {:>7} {:>4}  {}",
            r.id.as_deref().unwrap_or("(no id)"),
            r.state.as_str(),
            r.job_type.as_deref().unwrap_or("-"),
            r.user_id.as_deref().unwrap_or("-"),
            r.worker.as_deref().map(short).unwrap_or("-"),
            progress,
            age.unwrap_or_else(|| "-".into()),
            r.attempts,
            r.dead_reason.as_deref().unwrap_or("")
        );
    }
    if rows.is_empty() {
        eprintln!("no jobs in {}", q.describe());
    }
    Ok(())
}

/// A consumer id (`sdxl-<host>-<pid>-<n>`) cut to fit the column.
fn short(worker: &str) -> &str {
    worker.get(..10).unwrap_or(worker)
}

fn now() -> f64 {
    easel_jobs::db::now()
}

fn row_json(r: &JobRow) -> Value {
    json!({
        "id": r.id, "state": r.state.as_str(), "type": r.job_type, "user_id": r.user_id,
        "worker": r.worker, "since": r.since, "attempts": r.attempts, "dead_reason": r.dead_reason,
        "progress": r.progress.as_ref().map(|p| json!({"phase": p.phase, "step": p.step, "total": p.total, "updated_at": p.updated_at})),
    })
}

async fn show(q: &dyn Queue, a: ShowArgs) -> Result<()> {
    let Some(mut detail) = q.show(&a.id).await? else {
        bail!("no job {} in {}", a.id, q.describe());
    };
    if a.follow {
        let mut bar = JobBar::new();
        while matches!(detail.row.state, JobState::Queued | JobState::Running) && detail.outcome.is_none() {
            if let Some(p) = &detail.row.progress {
                bar.show(p);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            match q.show(&a.id).await? {
                Some(d) => detail = d,
                None => break,
            }
        }
        bar.finish();
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&detail_json(&detail))?);
    } else {
        print_detail(&detail);
    }
    Ok(())
}

fn detail_json(d: &JobDetail) -> Value {
    let payload = d.payload.as_deref().map(operate::masked_payload);
    let outcome: Option<Value> = d
        .outcome
        .as_deref()
        .map(|o| serde_json::from_str(o).unwrap_or(Value::String(o.into())));
    let callback = d.callback.as_ref().map(|c| {
        json!({"attempts": c.attempts, "delivered_at": c.delivered_at, "given_up_at": c.given_up_at, "last_error": c.last_error})
    });
    let history: Vec<Value> = d
        .history
        .iter()
        .map(|e| json!({"state": e.state, "at": e.at, "by": e.by}))
        .collect();
    json!({"job": row_json(&d.row), "payload": payload, "history": history, "outcome": outcome, "callback": callback})
}

fn print_detail(d: &JobDetail) {
    let r = &d.row;
    println!("job {}", r.id.as_deref().unwrap_or("(no id)"));
    println!(
        "  state: {}   type: {}   user: {}",
        r.state.as_str(),
        r.job_type.as_deref().unwrap_or("-"),
        r.user_id.as_deref().unwrap_or("-")
    );
    if let Some(w) = &r.worker {
        println!("  worker: {w}");
    }
    if let Some(p) = &r.progress {
        println!("  progress: {} {}/{}", p.phase, p.step, p.total);
    }
    println!("  attempts: {}", r.attempts);
    for e in &d.history {
        let ago = duration::format(Duration::from_secs((now() - e.at).max(0.0) as u64));
        let by = e.by.as_deref().map(|w| format!(" on {w}")).unwrap_or_default();
        println!("  {:<8} {ago} ago{by}", e.state);
    }
    if let Some(reason) = &r.dead_reason {
        println!("  dead-lettered: {reason}");
    }
    if let Some(p) = &d.payload {
        println!("  payload:\n{}", indent(&operate::masked_payload(p)));
    }
    if let Some(o) = &d.outcome {
        let pretty = serde_json::from_str::<Value>(o)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok());
        println!("  outcome:\n{}", indent(pretty.as_deref().unwrap_or(o)));
    }
    if let Some(c) = &d.callback {
        let state = match (c.delivered_at, c.given_up_at) {
            (Some(_), _) => "delivered".to_string(),
            (None, Some(_)) => format!("given up ({})", c.last_error.as_deref().unwrap_or("")),
            (None, None) => format!("pending ({})", c.last_error.as_deref().unwrap_or("not sent yet")),
        };
        println!("  callback: {state} after {} attempt(s)", c.attempts);
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}
