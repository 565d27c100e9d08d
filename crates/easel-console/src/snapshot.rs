//! Why this exists: every open page wants the same picture — workers, queue depth, running
//! jobs with their progress, dead letters, recent jobs, the headline numbers — and the job
//! store should be asked once a second however many pages are open. A picture is rebuilt at
//! most every half [`REFRESH`](crate::REFRESH) and shared; what a job was asked for (prompt,
//! seed, size) and how it ended never change, so they are read once per job and kept; the
//! finished jobs are listed again only when the queued or running jobs change, or every 10 s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use easel_jobs::queue::control::{JobDetail, JobRow, JobState};
use serde_json::{json, Map, Value};

use crate::App;

/// Jobs listed per state.
const LISTED: usize = 50;
/// Finished jobs read for the recent list and the numbers.
const RECENT: usize = 100;
/// Recent jobs the page shows.
const SHOWN: usize = 24;
/// The finished jobs are listed again at least this often.
const DONE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
/// Kept facts beyond this are dropped (and read again when needed).
const FACTS_KEPT: usize = 4096;

/// The last picture and what is known of each job.
#[derive(Default)]
pub struct Pictures {
    latest: Mutex<Option<(Instant, Arc<Value>)>>,
    building: tokio::sync::Mutex<()>,
    facts: Mutex<HashMap<String, Facts>>,
    /// Links to remote images: key → (URL, when to sign again).
    pub links: Mutex<HashMap<String, (String, Instant)>>,
    done: Mutex<Option<DoneList>>,
}

/// The finished jobs as last listed. Listing them is the costly part on Redis (one read per
/// job; on Upstash each is a billed command), and a job only finishes by leaving the queued
/// or running list: they are listed again when those change, and every [`DONE_EVERY`].
#[derive(Clone)]
struct DoneList {
    rows: Vec<JobRow>,
    /// The queued and running ids they were listed beside.
    seen: (Vec<Option<String>>, Vec<Option<String>>),
    at: Instant,
}

/// What a job asked for and, once finished, how it ended.
#[derive(Clone, Debug)]
struct Facts {
    asked: Map<String, Value>,
    /// Set once the job has an outcome (then the facts are final).
    ended: Option<Map<String, Value>>,
}

/// `GET /console/api/state`: the current picture as JSON.
pub async fn current(State(app): State<Arc<App>>) -> Response {
    let picture = latest(&app).await;
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(picture.as_ref().clone()),
    )
        .into_response()
}

/// The current picture, rebuilt if it is older than half the refresh period.
pub async fn latest(app: &App) -> Arc<Value> {
    let fresh = |p: &Pictures| {
        let guard = p.latest.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .filter(|(at, _)| at.elapsed() < crate::REFRESH / 2)
            .map(|(_, v)| Arc::clone(v))
    };
    if let Some(v) = fresh(&app.pictures) {
        return v;
    }
    let _building = app.pictures.building.lock().await;
    if let Some(v) = fresh(&app.pictures) {
        return v;
    }
    let picture = Arc::new(build(app).await);
    *app.pictures.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), Arc::clone(&picture)));
    picture
}

async fn build(app: &App) -> Value {
    let c = &app.console;
    let q = c.queue.as_ref();
    let mut errors = Vec::new();
    let mut list = |state: JobState, limit: usize, rows: Result<Vec<JobRow>, _>| match rows {
        Ok(rows) => rows.into_iter().take(limit).collect(),
        Err(e) => {
            errors.push(format!("listing {} jobs: {e}", state.as_str()));
            Vec::new()
        }
    };
    let queued = list(JobState::Queued, LISTED, q.list(Some(JobState::Queued), LISTED).await);
    let running = list(JobState::Running, LISTED, q.list(Some(JobState::Running), LISTED).await);
    let dead = list(JobState::Dead, LISTED, q.list(Some(JobState::Dead), LISTED).await);
    let ids = |rows: &[JobRow]| rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    let seen = (ids(&queued), ids(&running));
    let kept = app.pictures.done.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let done = match kept.filter(|d| d.seen == seen && d.at.elapsed() < DONE_EVERY) {
        Some(d) => d.rows,
        None => {
            let rows = list(JobState::Done, RECENT, q.list(Some(JobState::Done), RECENT).await);
            *app.pictures.done.lock().unwrap_or_else(|e| e.into_inner()) = Some(DoneList {
                rows: rows.clone(),
                seen,
                at: Instant::now(),
            });
            rows
        }
    };
    let depth = match q.depth().await {
        Ok(d) => json!({"queued": d.queued, "running": d.in_flight, "dead": d.dead}),
        Err(e) => {
            errors.push(format!("queue depth: {e}"));
            Value::Null
        }
    };
    let rows = |rows: &[JobRow]| -> Vec<Value> { rows.iter().map(|r| row_json(r, None)).collect() };
    let queued_json = rows(&queued);
    let dead_json = rows(&dead);
    let mut running_json = Vec::new();
    for r in &running {
        let facts = facts_of(app, r).await;
        running_json.push(row_json(r, facts.as_ref()));
    }
    let mut recent = Vec::new();
    for r in &done {
        let facts = facts_of(app, r).await;
        recent.push(row_json(r, facts.as_ref()));
    }
    let numbers = numbers(&recent, easel_jobs::db::now());
    recent.truncate(SHOWN);
    if crate::files::local(app).is_none() {
        for job in &mut recent {
            let keys: Vec<String> = ["thumbnails", "images"]
                .iter()
                .filter_map(|f| job[*f].as_array())
                .flat_map(|a| a.iter().take(1))
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect();
            let mut links = Map::new();
            for key in keys {
                if let Some(url) = crate::files::link(app, &key).await {
                    links.insert(key, json!(url));
                }
            }
            job["links"] = Value::Object(links);
        }
    }
    json!({
        "title": c.title,
        "at": easel_jobs::db::now(),
        "queue": {"backend": q.describe(), "name": c.config.queue_name, "depth": depth},
        "workers": c.fleet.workers(),
        "queued": queued_json,
        "running": running_json,
        "dead": dead_json,
        "recent": recent,
        "numbers": numbers,
        "files": crate::files::local(app).map(|_| json!({"base": "/console/files/"})),
        "errors": errors,
    })
}

/// What is known of the job of `row`, reading it from the store if not known yet (or not
/// final while the row says it is done).
async fn facts_of(app: &App, row: &JobRow) -> Option<Facts> {
    let id = row.id.as_deref()?;
    let known = app
        .pictures
        .facts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)
        .cloned();
    if let Some(f) = known.filter(|f| f.ended.is_some() || row.state != JobState::Done) {
        return Some(f);
    }
    let detail = app.console.queue.show(id).await.ok().flatten()?;
    let facts = Facts::of(&detail);
    let mut kept = app.pictures.facts.lock().unwrap_or_else(|e| e.into_inner());
    if kept.len() >= FACTS_KEPT {
        kept.clear();
    }
    kept.insert(id.to_owned(), facts.clone());
    Some(facts)
}

impl Facts {
    fn of(d: &JobDetail) -> Self {
        let payload: Value = d
            .payload
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or(Value::Null);
        let outcome: Option<Value> = d.outcome.as_deref().and_then(|o| serde_json::from_str(o).ok());
        let mut asked = asked_of(&payload);
        let ended = outcome.map(|o| {
            let mut ended = ended_of(&o);
            let at = |state: &str| d.history.iter().rev().find(|e| e.state == state).map(|e| e.at);
            if let (Some(start), Some(end)) = (at("running"), at("done")) {
                ended.insert("duration_s".into(), json!(round3(end - start)));
            }
            if let (Some(q), Some(start)) = (at("queued"), at("running")) {
                ended.insert("queue_wait_s".into(), json!(round3(start - q)));
            }
            // A completed body's numbers beat what the payload asked (presets fill the rest).
            for k in ["prompt", "seed", "width", "height", "steps"] {
                if let Some(v) = ended.get(k) {
                    asked.insert(k.into(), v.clone());
                }
            }
            ended
        });
        Self { asked, ended }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The prompt, seed and size a payload asked for (top level, `metadata` or `config`).
fn asked_of(p: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    let find = |names: &[&str]| {
        names.iter().find_map(|n| {
            [
                p.get(*n),
                p.pointer(&format!("/metadata/{n}")),
                p.pointer(&format!("/config/{n}")),
            ]
            .into_iter()
            .flatten()
            .find(|v| !v.is_null())
            .cloned()
        })
    };
    for (key, names) in [
        ("prompt", &["prompt"][..]),
        ("seed", &["seed"]),
        ("width", &["width"]),
        ("height", &["height"]),
        ("steps", &["num_inference_steps", "steps"]),
        ("num_images", &["num_images", "batch_size"]),
    ] {
        if let Some(v) = find(names) {
            out.insert(key.into(), v);
        }
    }
    out
}

/// What a terminal callback body says: status, error, images, thumbnails, timings.
fn ended_of(o: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("status".into(), o["status"].clone());
    if let Some(msg) = o["error_message"].as_str() {
        out.insert("error".into(), json!(msg));
    }
    if let Some(kind) = o["metadata"]["error_type"].as_str() {
        out.insert("error_type".into(), json!(kind));
    }
    if let Some(t) = o["metadata"]["generation_time"].as_f64() {
        out.insert("generation_time_s".into(), json!(t));
    }
    if let Some(p) = o["metadata"]["original_prompt"].as_str() {
        out.insert("prompt".into(), json!(p));
    }
    if let Some(s) = o["metadata"]["seed"].as_u64() {
        out.insert("seed".into(), json!(s));
    }
    let assets = o["assets"].as_array().cloned().unwrap_or_default();
    if let Some(first) = assets.first() {
        for (k, from) in [("width", "width"), ("height", "height"), ("steps", "steps")] {
            if let Some(v) = first["metadata"].get(from) {
                out.insert(k.into(), v.clone());
            }
        }
    }
    let keys = |field: &str| -> Vec<Value> {
        assets
            .iter()
            .filter_map(|a| a[field].as_str())
            .map(|k| json!(k))
            .collect()
    };
    out.insert("images".into(), Value::Array(keys("url")));
    out.insert("thumbnails".into(), Value::Array(keys("thumbnail_url")));
    out
}

/// A job row as the page reads it, with its facts when known.
fn row_json(r: &JobRow, facts: Option<&Facts>) -> Value {
    let mut v = json!({
        "id": r.id,
        "state": r.state.as_str(),
        "job_type": r.job_type,
        "user_id": r.user_id,
        "worker": r.worker,
        "since": r.since,
        "attempts": r.attempts,
        "dead_reason": r.dead_reason,
        "progress": r.progress.as_ref().map(|p| json!({
            "phase": p.phase, "step": p.step, "total": p.total, "updated_at": p.updated_at,
        })),
    });
    if let (Some(f), Some(obj)) = (facts, v.as_object_mut()) {
        obj.extend(f.asked.clone());
        if let Some(ended) = &f.ended {
            obj.extend(ended.clone());
        }
    }
    v
}

/// The numbers an operator checks first, over the recent finished jobs.
fn numbers(recent: &[Value], now: f64) -> Value {
    let finished_within = |secs: f64| {
        recent
            .iter()
            .filter(move |j| j["since"].as_f64().is_some_and(|t| now - t <= secs))
    };
    let per_min = finished_within(300.0).count() as f64 / 5.0;
    let failed_hour = finished_within(3600.0).filter(|j| j["status"] == "failed").count();
    let mut durations: Vec<f64> = recent
        .iter()
        .filter(|j| j["status"] == "completed")
        .filter_map(|j| j["duration_s"].as_f64().or_else(|| j["generation_time_s"].as_f64()))
        .collect();
    durations.sort_by(f64::total_cmp);
    let quantile = |q: f64| -> Option<f64> {
        if durations.is_empty() {
            return None;
        }
        let rank = ((q * durations.len() as f64).ceil() as usize).clamp(1, durations.len());
        Some(round3(durations[rank - 1]))
    };
    json!({
        "jobs_per_min": round3(per_min),
        "failed_last_hour": failed_hour,
        "p50_s": quantile(0.5),
        "p95_s": quantile(0.95),
        "over": durations.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_count_the_last_five_minutes_and_rank_durations() {
        let now = 10_000.0;
        let job = |since: f64, status: &str, d: f64| json!({"since": since, "status": status, "duration_s": d});
        let recent: Vec<Value> = (1..=20)
            .map(|i| job(now - 10.0 * i as f64, "completed", i as f64))
            .chain([job(now - 100.0, "failed", 0.0), job(now - 7200.0, "failed", 0.0)])
            .collect();
        let n = numbers(&recent, now);
        assert_eq!(n["jobs_per_min"], 21.0 / 5.0);
        assert_eq!(n["failed_last_hour"], 1);
        assert_eq!(n["p50_s"], 10.0);
        assert_eq!(n["p95_s"], 19.0);
        assert_eq!(numbers(&[], now)["p50_s"], Value::Null);
    }

    #[test]
    fn a_payload_and_its_completed_body_give_prompt_seed_size_and_thumbnail() {
        let asked = asked_of(&json!({"prompt": "a cat", "metadata": {"seed": 7}, "config": {"width": 512}}));
        assert_eq!(asked["prompt"], "a cat");
        assert_eq!(asked["seed"], 7);
        assert_eq!(asked["width"], 512);
        let ended = ended_of(&json!({"status": "completed", "assets": [
            {"url": "u/j/0.png", "thumbnail_url": "u/j/0.webp", "metadata": {"width": 64, "height": 48, "steps": 4}}
        ], "metadata": {"seed": 9, "generation_time": 1.5, "original_prompt": "a cat"}}));
        assert_eq!(ended["thumbnails"], json!(["u/j/0.webp"]));
        assert_eq!(ended["height"], 48);
        assert_eq!(ended["seed"], 9);
        let failed = ended_of(&json!({"status": "failed", "assets": [], "error_message": "boom",
                                      "metadata": {"error_type": "cancelled"}}));
        assert_eq!(failed["error_type"], "cancelled");
        assert_eq!(failed["error"], "boom");
    }
}
