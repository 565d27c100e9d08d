//! Easel's web console: the one page an operator opens. It shows the workers (from whoever
//! supervises them), the queue (depth, running jobs with live progress, dead letters), recent
//! jobs with their thumbnails and the first numbers an operator checks, and it lets an
//! operator holding the admin token cancel, retry, purge and restart. It links the job store,
//! never the engine, so `easel up` and a lone `easel worker` serve the same page.
//!
//! Table of contents:
//! - [`Console`] and [`Fleet`]: what the page is built from; [`router`]: its routes.
//! - `page` (private): the HTML, CSS and JavaScript, embedded in the binary.
//! - `snapshot` (private): one picture of the queue and workers, rebuilt once a second.
//! - `events` (private): that picture as server-sent events.
//! - `auth` (private): the login cookie and the cross-site checks of every POST.
//! - `actions` (private): cancel, retry, purge, restart.
//! - `files` (private): thumbnails and images of local storage.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use easel_config::{Secret, WorkerConfig};
use easel_jobs::queue::Queue;
use easel_jobs::storage::Storage;
use serde::Serialize;

mod actions;
mod auth;
mod events;
mod files;
mod page;
mod snapshot;

/// How often the picture is rebuilt while someone watches.
pub const REFRESH: Duration = Duration::from_secs(1);

/// The workers behind the page: `easel up`'s supervised processes, or a lone worker itself.
pub trait Fleet: Send + Sync + 'static {
    /// Every worker now.
    fn workers(&self) -> Vec<WorkerRow>;
    /// Restarts worker `name`; `Ok` with what was done, `Err` with why not.
    fn restart(&self, name: &str) -> Result<String, String>;
}

/// One worker as the page shows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WorkerRow {
    pub name: String,
    pub kind: String,
    /// Lifecycle state (`running`, `starting`, `backoff`, ...).
    pub state: String,
    pub pid: Option<u32>,
    pub port: Option<u16>,
    pub uptime_s: Option<f64>,
    pub restarts: u32,
    /// How the last process ended, as a sentence.
    pub last_exit: Option<String>,
    /// Why it is in its state, if there is a story.
    pub reason: Option<String>,
    /// Taking jobs.
    pub ready: bool,
}

/// Everything the console reads and acts on.
pub struct Console {
    /// The page's title: `easel up` or the worker's name.
    pub title: String,
    pub queue: Arc<dyn Queue>,
    /// Where the thumbnails are.
    pub storage: Arc<dyn Storage>,
    /// The worker settings (callback target of a cancel, the admin token).
    pub config: WorkerConfig,
    pub fleet: Arc<dyn Fleet>,
}

impl Console {
    fn token(&self) -> Option<&Secret> {
        self.config.admin_token.as_ref()
    }
}

/// Shared by every route.
pub(crate) struct App {
    pub console: Console,
    pub pictures: snapshot::Pictures,
}

/// The console's routes: `/` and everything under `/console/`. Merge it into a server.
pub fn router(console: Console) -> Router {
    let app = Arc::new(App {
        console,
        pictures: snapshot::Pictures::default(),
    });
    Router::new()
        .route("/", get(page::index))
        .route("/console/console.css", get(page::css))
        .route("/console/console.js", get(page::js))
        .route("/console/api/state", get(snapshot::current))
        .route("/console/api/events", get(events::stream))
        .route("/console/api/session", get(auth::session))
        .route("/console/api/login", post(auth::login))
        .route("/console/api/logout", post(auth::logout))
        .route("/console/api/jobs/{id}", get(actions::show))
        .route("/console/api/jobs/{id}/cancel", post(actions::cancel))
        .route("/console/api/jobs/{id}/retry", post(actions::retry))
        .route("/console/api/dead/purge", post(actions::purge))
        .route("/console/api/workers/{name}/restart", post(actions::restart))
        .route("/console/files/{*key}", get(files::serve))
        .with_state(app)
}
