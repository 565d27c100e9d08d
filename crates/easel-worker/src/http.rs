//! Why this exists: the worker's HTTP endpoints on `WORKER_PORT` — the ourvidz routes with
//! the Python worker's bodies (`/health`, `/memory/status`, `/memory/load`, `/memory/unload`)
//! and the supervision routes (`/livez`, `/readyz`, `/metrics`). Bound to loopback unless
//! configured; load and unload need `Authorization: Bearer <EASEL_ADMIN_TOKEN>` and take the
//! engine lock, so they wait for a running job instead of killing it (the Python bug).
//! The console (`/`, `/console/...`) is merged in by the caller.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::db::now;
use crate::shared::Shared;
use crate::state::WorkerPhase;
use crate::watch::Stop;
use crate::Error;

/// Binds `addr` and serves the routes and `extra` (the console) until `stop`; returns the
/// bound address and the server task.
pub async fn serve(
    addr: SocketAddr,
    shared: Arc<Shared>,
    extra: Router,
    stop: CancellationToken,
) -> Result<(SocketAddr, JoinHandle<()>), Error> {
    let listener = TcpListener::bind(addr).await.map_err(|cause| Error::Listen {
        addr: addr.to_string(),
        cause,
    })?;
    let bound = listener.local_addr().map_err(|cause| Error::Listen {
        addr: addr.to_string(),
        cause,
    })?;
    let app = router(shared).merge(extra);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });
    Ok((bound, task))
}

/// The routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/memory/status", get(memory_status))
        .route("/memory/load", post(memory_load))
        .route("/memory/unload", post(memory_unload))
        .route("/jobs/current", get(current_job))
        .route("/jobs/{id}/cancel", post(cancel_job))
        .with_state(shared)
}

async fn health(State(s): State<Arc<Shared>>) -> Json<serde_json::Value> {
    Json(json!({"status": "healthy", "worker": s.kind, "model_loaded": s.generator.is_loaded(), "timestamp": now()}))
}

async fn livez() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    let phase = s.phase();
    let status = if phase == WorkerPhase::Ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, format!("{}\n", phase.as_str())).into_response()
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let depth = s.queue.depth().await.ok();
    ([("content-type", "text/plain; version=0.0.4")], s.metrics.render(depth)).into_response()
}

async fn memory_status(State(s): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let m = s.generator.memory();
    let info = s.generator.info();
    Json(json!({
        "total_vram": m.total_gb, "allocated_vram": m.allocated_gb, "available_vram": m.available_gb,
        "model_loaded": s.generator.is_loaded(), "device": info.device, "model": info.name,
    }))
}

async fn memory_load(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(refused) = refuse(&s, &headers) {
        return refused;
    }
    let g = s.generator.clone();
    let _engine = s.engine.lock().await;
    answer(tokio::task::spawn_blocking(move || g.load()).await, "model loaded")
}

async fn memory_unload(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(refused) = refuse(&s, &headers) {
        return refused;
    }
    let g = s.generator.clone();
    let _engine = s.engine.lock().await;
    answer(tokio::task::spawn_blocking(move || g.unload()).await, "model unloaded")
}

async fn current_job(State(s): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let job = s.current().map(|w| {
        let n = w.snapshot();
        json!({"id": n.id, "phase": n.phase, "step": n.step, "total": n.total,
               "elapsed_s": n.elapsed, "timeout_s": n.timeout.as_secs_f64()})
    });
    Json(json!({ "job": job }))
}

/// Stops the running job if it is `id` (admin token required); the job then ends with one
/// `failed`/`cancelled` callback, like `easel jobs cancel`.
async fn cancel_job(State(s): State<Arc<Shared>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Some(refused) = refuse(&s, &headers) {
        return refused;
    }
    match s.current() {
        Some(w) if w.snapshot().id == id => {
            w.stop(Stop::Cancelled);
            (
                StatusCode::ACCEPTED,
                Json(json!({"success": true, "message": "cancelling"})),
            )
                .into_response()
        }
        _ => reply(StatusCode::NOT_FOUND, "that job is not running on this worker"),
    }
}

fn answer(r: Result<Result<(), crate::generator::GeneratorError>, tokio::task::JoinError>, ok: &str) -> Response {
    match r {
        Ok(Ok(())) => Json(json!({"success": true, "message": ok})).into_response(),
        Ok(Err(e)) => reply(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, &format!("task failed: {e}")),
    }
}

fn reply(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"success": false, "message": message}))).into_response()
}

/// The refusal of a mutating route without the right bearer token (constant-time check).
fn refuse(s: &Shared, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &s.admin_token else {
        return Some(reply(
            StatusCode::FORBIDDEN,
            "admin routes (/memory/load, /memory/unload, /jobs/{id}/cancel) are disabled: set EASEL_ADMIN_TOKEN and send it as a bearer token",
        ));
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), token.expose().as_bytes()) => None,
        _ => Some(reply(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (EASEL_ADMIN_TOKEN)",
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
