//! The job-control contract, the same for every backend: list by state, show one job with its
//! payload and outcome, progress published by the worker running it, cancel (a queued job is
//! removed with exactly one outcome; a running one gets a request its worker sees), retry of a
//! dead letter (back on the queue with its outcome cleared) and purge. Run against the
//! embedded SQLite queue, a real Redis, and Upstash REST.

use std::sync::Arc;
use std::time::Duration;

use easel_worker::config::{QueueBackend, Secret};
use easel_worker::db::{now, Db};
use easel_worker::queue::control::{CancelOutcome, CancelResult, Progress, RetryResult};
use easel_worker::queue::{self, Finish, JobState, Queue};

use crate::support::{service, unique, upstash_front};

async fn open(backend: &QueueBackend, name: &str, db: &Db, consumer: &str) -> Arc<dyn Queue> {
    let opts = queue::QueueOptions {
        lease_ttl: Duration::from_secs(30),
        outcome_ttl: Duration::from_secs(3600),
    };
    queue::open(backend, name, consumer.to_string(), db, opts).expect("open queue")
}

fn payload(id: &str) -> Vec<u8> {
    format!(r#"{{"id":"{id}","type":"sdxl_image_fast","prompt":"p","user_id":"u1"}}"#).into_bytes()
}

fn cancelled(p: &[u8]) -> String {
    let id = queue::control::payload_id(p).unwrap_or_default();
    format!(r#"{{"job_id":"{id}","status":"failed","metadata":{{"error_type":"cancelled"}}}}"#)
}

const TARGET: &str = "http://127.0.0.1:9/callback";

fn how() -> CancelOutcome<'static> {
    CancelOutcome {
        body: &cancelled,
        target: TARGET,
    }
}

async fn exercise(backend: QueueBackend) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("q.db")).unwrap();
    let name = unique("ctl");
    let (w, cli) = (
        open(&backend, &name, &db, "w").await,
        open(&backend, &name, &db, "cli").await,
    );
    for id in ["run", "wait", "gone"] {
        cli.push(&payload(id)).await.unwrap();
    }

    // The oldest job runs; the worker says so and reports a step.
    let d = w.lease().await.unwrap().expect("a job");
    w.running(&d, "run", Some("sdxl_image_fast"), Some("u1")).await.unwrap();
    let step = Progress {
        phase: "denoising".into(),
        step: 3,
        total: 10,
        updated_at: now(),
    };
    w.progress("run", &step).await.unwrap();
    let running = cli.list(Some(JobState::Running), 10).await.unwrap();
    assert_eq!(running.len(), 1, "{running:?}");
    assert_eq!(running[0].id.as_deref(), Some("run"));
    assert_eq!(running[0].worker.as_deref(), Some("w"));
    assert_eq!(running[0].user_id.as_deref(), Some("u1"));
    assert_eq!(running[0].progress.as_ref().map(|p| (p.step, p.total)), Some((3, 10)));
    let queued: Vec<_> = cli.list(Some(JobState::Queued), 10).await.unwrap();
    let mut ids: Vec<_> = queued.iter().filter_map(|r| r.id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["gone", "wait"]);
    let shown = cli.show("run").await.unwrap().expect("the running job");
    assert_eq!(shown.row.state, JobState::Running);
    assert!(shown.payload.unwrap_or_default().contains("\"prompt\":\"p\""));

    // Cancel: the queued job is removed with one outcome; the running one is asked to stop.
    assert_eq!(cli.cancel("wait", how()).await.unwrap(), CancelResult::Removed);
    let outcome = cli.outcome("wait").await.unwrap().expect("a cancelled outcome");
    assert!(outcome.contains("\"cancelled\""), "{outcome}");
    assert_eq!(cli.cancel("wait", how()).await.unwrap(), CancelResult::Finished);
    assert_eq!(cli.cancel("nobody", how()).await.unwrap(), CancelResult::Unknown);
    assert!(!w.cancel_requested("run").await.unwrap());
    assert_eq!(cli.cancel("run", how()).await.unwrap(), CancelResult::Requested);
    assert!(w.cancel_requested("run").await.unwrap(), "the worker sees the request");
    let pending = w
        .claim_callback(false, &[])
        .await
        .unwrap()
        .expect("the cancel's callback");
    assert_eq!(pending.job_id, "wait");
    assert!(pending.body.contains("cancelled") && pending.target == TARGET);
    assert!(
        w.claim_callback(false, &[]).await.unwrap().is_none(),
        "exactly one callback"
    );

    // The worker ends the running job; it is done, no longer running.
    let body = cancelled(&d.payload);
    let f = Finish {
        job_id: "run",
        body: &body,
        target: TARGET,
        dead_reason: None,
    };
    w.finish(&d, f).await.unwrap();
    w.ended("run").await.unwrap();
    assert!(cli.list(Some(JobState::Running), 10).await.unwrap().is_empty());
    let done = cli.list(Some(JobState::Done), 10).await.unwrap();
    assert!(done.iter().any(|r| r.id.as_deref() == Some("run")), "{done:?}");
    assert!(cli.show("run").await.unwrap().unwrap().outcome.is_some());

    // A dead letter is retried: back on the queue, its outcome cleared, runnable again.
    let d = w.lease().await.unwrap().expect("the last job");
    let reason = "delivered too often";
    let failed = r#"{"status":"failed"}"#;
    let f = Finish {
        job_id: "gone",
        body: failed,
        target: TARGET,
        dead_reason: Some(reason),
    };
    w.finish(&d, f).await.unwrap();
    let dead = cli.list(Some(JobState::Dead), 10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].dead_reason.as_deref(), Some(reason));
    assert_eq!(cli.retry("run").await.unwrap(), RetryResult::NotDead);
    assert_eq!(cli.retry("gone").await.unwrap(), RetryResult::Requeued);
    assert!(
        cli.outcome("gone").await.unwrap().is_none(),
        "the old outcome is cleared"
    );
    assert!(cli.list(Some(JobState::Dead), 10).await.unwrap().is_empty());
    let again = w.lease().await.unwrap().expect("the retried job");
    assert_eq!(again.payload, payload("gone"));
    assert_eq!(again.deliveries, 1, "the delivery count starts again");

    // Purge: dead letters older than a cut-off go; newer ones stay.
    w.dead_letter(&again, "junk").await.unwrap();
    assert_eq!(cli.purge_dead(Some(Duration::from_secs(3600))).await.unwrap(), 0);
    assert_eq!(cli.purge_dead(None).await.unwrap(), 1);
    assert!(cli.list(Some(JobState::Dead), 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_sqlite_queue_keeps_the_control_contract() {
    exercise(QueueBackend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_queue_keeps_the_control_contract() {
    let Some(url) = service("EASEL_TEST_REDIS_URL") else {
        return;
    };
    exercise(QueueBackend::Redis { url: Secret::new(url) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstash_rest_queue_keeps_the_control_contract() {
    let Some(url) = service("EASEL_TEST_REDIS_URL") else {
        return;
    };
    let rest = upstash_front(&url, "t").await;
    exercise(QueueBackend::Upstash {
        url: rest,
        token: Secret::new("t"),
    })
    .await;
}
