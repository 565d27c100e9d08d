//! Why this exists: what an operator does from the page — show one job, cancel it, put a
//! dead letter back, purge dead letters, restart a worker. Reading needs nothing; acting
//! needs the admin token ([`crate::auth::may_act`]). Every action is logged with what it
//! touched, and answers `{"ok": bool, "message": "..."}` that the page shows as it is.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use easel_jobs::operate;
use easel_jobs::queue::control::{CancelResult, RetryResult};
use serde::Deserialize;
use serde_json::json;

use crate::auth::may_act;
use crate::App;

fn answer(status: StatusCode, ok: bool, message: impl Into<String>) -> Response {
    (status, Json(json!({"ok": ok, "message": message.into()}))).into_response()
}

fn store_error(e: impl std::fmt::Display) -> Response {
    answer(
        StatusCode::SERVICE_UNAVAILABLE,
        false,
        format!("the job store did not answer: {e}"),
    )
}

/// `GET /console/api/jobs/{id}`: one job, its payload with secrets masked.
pub async fn show(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    match app.console.queue.show(&id).await {
        Ok(Some(d)) => {
            let parse = |s: &Option<String>| {
                s.as_deref()
                    .map(|t| serde_json::from_str::<serde_json::Value>(t).unwrap_or(json!(t)))
            };
            let masked = d.payload.as_deref().map(operate::masked_payload);
            let outcome = parse(&d.outcome);
            let mut links = serde_json::Map::new();
            if crate::files::local(&app).is_none() {
                let assets = outcome
                    .as_ref()
                    .and_then(|o| o["assets"].as_array().cloned())
                    .unwrap_or_default();
                for key in assets.iter().filter_map(|a| a["url"].as_str()) {
                    if let Some(url) = crate::files::link(&app, key).await {
                        links.insert(key.to_owned(), json!(url));
                    }
                }
            }
            Json(json!({
                "ok": true,
                "id": d.row.id,
                "state": d.row.state.as_str(),
                "job_type": d.row.job_type,
                "worker": d.row.worker,
                "attempts": d.row.attempts,
                "dead_reason": d.row.dead_reason,
                "progress": d.row.progress.as_ref().map(|p| json!({"phase": p.phase, "step": p.step, "total": p.total})),
                "payload": masked,
                "outcome": outcome,
                "links": links,
                "callback": d.callback.as_ref().map(|c| json!({
                    "attempts": c.attempts, "delivered_at": c.delivered_at,
                    "given_up_at": c.given_up_at, "last_error": c.last_error,
                })),
                "history": d.history.iter().map(|e| json!({"state": e.state, "at": e.at, "by": e.by})).collect::<Vec<_>>(),
            }))
            .into_response()
        }
        Ok(None) => answer(StatusCode::NOT_FOUND, false, format!("no job {id:?} is known")),
        Err(e) => store_error(e),
    }
}

/// `POST /console/api/jobs/{id}/cancel`.
pub async fn cancel(State(app): State<Arc<App>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Err(refused) = may_act(&app, &headers) {
        return refused.response();
    }
    let c = &app.console;
    match operate::cancel(c.queue.as_ref(), &c.config, &id).await {
        Ok(result) => {
            tracing::info!(job.id = %id, ?result, "console: cancel");
            match result {
                CancelResult::Removed => answer(StatusCode::OK, true, "cancelled before it started"),
                CancelResult::Requested => answer(
                    StatusCode::ACCEPTED,
                    true,
                    "cancelling: its worker stops it within a step",
                ),
                CancelResult::Finished => answer(StatusCode::CONFLICT, false, "the job has already finished"),
                CancelResult::Unknown => answer(StatusCode::NOT_FOUND, false, format!("no job {id:?} is known")),
            }
        }
        Err(e) => store_error(e),
    }
}

/// `POST /console/api/jobs/{id}/retry`: a dead letter back on the queue.
pub async fn retry(State(app): State<Arc<App>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Err(refused) = may_act(&app, &headers) {
        return refused.response();
    }
    match app.console.queue.retry(&id).await {
        Ok(RetryResult::Requeued) => {
            tracing::info!(job.id = %id, "console: dead letter retried");
            answer(StatusCode::OK, true, "back on the queue")
        }
        Ok(RetryResult::NotDead) => answer(StatusCode::NOT_FOUND, false, format!("{id:?} is not a dead letter")),
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize, Default)]
pub struct PurgeRequest {
    /// `"7d"`-style; all dead letters when absent.
    older_than: Option<String>,
}

/// `POST /console/api/dead/purge` with `{"older_than": "7d"}` or `{}`.
pub async fn purge(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Err(refused) = may_act(&app, &headers) {
        return refused.response();
    }
    let request: PurgeRequest = if body.is_empty() {
        PurgeRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return answer(
                    StatusCode::BAD_REQUEST,
                    false,
                    format!("send {{\"older_than\": \"7d\"}} or {{}}: {e}"),
                )
            }
        }
    };
    let older_than: Option<Duration> = match request.older_than.as_deref().map(easel_config::duration::parse) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => return answer(StatusCode::BAD_REQUEST, false, e.to_string()),
    };
    match app.console.queue.purge_dead(older_than).await {
        Ok(n) => {
            tracing::info!(purged = n, "console: dead letters purged");
            answer(StatusCode::OK, true, format!("{n} dead letter(s) purged"))
        }
        Err(e) => store_error(e),
    }
}

/// `POST /console/api/workers/{name}/restart`.
pub async fn restart(State(app): State<Arc<App>>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    if let Err(refused) = may_act(&app, &headers) {
        return refused.response();
    }
    match app.console.fleet.restart(&name) {
        Ok(done) => {
            tracing::info!(worker.name = %name, "console: restart");
            answer(StatusCode::ACCEPTED, true, done)
        }
        Err(why) => answer(StatusCode::CONFLICT, false, why),
    }
}
