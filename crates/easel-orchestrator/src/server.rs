//! Why this exists: the orchestrator's HTTP face, for people (`easel status`), monitoring
//! (`/metrics`) and whatever supervises the orchestrator itself (`/livez`, `/readyz`).
//! Every route reads the status report the orchestrator hands in as a function; nothing here
//! changes anything (and nothing here knows the orchestrator's types beyond the report).
//! Whatever else the binary serves there (the console) comes in as a ready router.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::status::{render_metrics, StatusReport};

/// Where the routes read the current status from.
pub(crate) type StatusSource = Arc<dyn Fn() -> StatusReport + Send + Sync>;

/// Serves `/status`, `/metrics`, `/livez` and `/readyz`, and `extra` beside them, on
/// `listener` until `stop`.
pub(crate) async fn serve(listener: TcpListener, handle: StatusSource, extra: Router, stop: CancellationToken) {
    let app = Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .with_state(handle)
        .merge(extra);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::error!("the /status server stopped: {e}");
    }
}

async fn status(State(handle): State<StatusSource>) -> impl IntoResponse {
    Json(handle())
}

async fn metrics(State(handle): State<StatusSource>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render_metrics(&handle()),
    )
}

/// The event loop answers, so the process is alive.
async fn livez() -> &'static str {
    "ok\n"
}

/// 200 once the start order is done and every worker runs; 503 with each state otherwise.
async fn readyz(State(handle): State<StatusSource>) -> impl IntoResponse {
    let report = handle();
    let lines: String = report
        .workers
        .iter()
        .map(|w| format!("{}: {}\n", w.name, w.state))
        .collect();
    if report.orchestrator.ready {
        (StatusCode::OK, format!("ready\n{lines}"))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready\n{lines}"))
    }
}
