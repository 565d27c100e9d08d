//! Why this exists: the orchestrator's HTTP face, for people (`easel status`), monitoring
//! (`/metrics`) and whatever supervises the orchestrator itself (`/livez`, `/readyz`).
//! Every route reads the [`Handle`]'s status; nothing here changes anything.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::orchestrator::Handle;
use crate::status::render_metrics;

/// Serves `/status`, `/metrics`, `/livez` and `/readyz` on `listener` until `stop`.
pub(crate) async fn serve(listener: TcpListener, handle: Handle, stop: CancellationToken) {
    let app = Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .with_state(handle);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::error!("the /status server stopped: {e}");
    }
}

async fn status(State(handle): State<Handle>) -> impl IntoResponse {
    Json(handle.status())
}

async fn metrics(State(handle): State<Handle>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render_metrics(&handle.status()),
    )
}

/// The event loop answers, so the process is alive.
async fn livez() -> &'static str {
    "ok\n"
}

/// 200 once the start order is done and every worker runs; 503 with each state otherwise.
async fn readyz(State(handle): State<Handle>) -> impl IntoResponse {
    let report = handle.status();
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
