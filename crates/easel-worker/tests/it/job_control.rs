//! Job control through a real worker: a running job cancelled (by `easel jobs`' operation and
//! by the worker's own endpoint) ends with one `failed`/`cancelled` callback within 2 s while
//! the worker goes on with the next job; a job past its time limit ends `timeout`; progress is
//! published as it advances; progress callbacks (when enabled) never follow the terminal one.
//! On the embedded queue and on a real Redis.

use std::sync::Arc;
use std::time::{Duration, Instant};

use easel_worker::queue::control::{CancelResult, JobState};
use easel_worker::queue::Queue;
use easel_worker::FakeGenerator;
use serde_json::json;

use crate::harness::{self, stub_settings, TestWorker};
use crate::support::{eventually, service, unique, SupabaseStub};

fn job_with(id: &str, config: serde_json::Value) -> Vec<u8> {
    json!({"id": id, "type": "sdxl_image_fast", "prompt": "p", "user_id": "u", "config": config})
        .to_string()
        .into_bytes()
}

/// A worker whose fake generator takes `per_step` for each denoising step.
async fn slow_worker(stub: &SupabaseStub, per_step: Duration, extra: &[(&'static str, String)]) -> TestWorker {
    let mut settings = stub_settings(stub);
    settings.extend(extra.iter().cloned());
    harness::start(&settings, Some(Arc::new(FakeGenerator::per_step(per_step)))).await
}

async fn step_of(q: &Arc<dyn Queue>, id: &str) -> Option<u32> {
    let rows = q.list(Some(JobState::Running), 10).await.ok()?;
    rows.into_iter()
        .find(|r| r.id.as_deref() == Some(id))?
        .progress
        .map(|p| p.step)
}

async fn cancel_running_job_and_go_on(extra: &[(&'static str, String)]) {
    let stub = SupabaseStub::start("k").await;
    let w = slow_worker(&stub, Duration::from_millis(300), extra).await;
    let q = w.producer().await;
    let (long, next) = (unique("long"), unique("next"));
    q.push(&job_with(&long, json!({"num_inference_steps": 200})))
        .await
        .unwrap();
    q.push(&job_with(&next, json!({"num_inference_steps": 1})))
        .await
        .unwrap();

    // Its step advances, as `easel jobs list` shows it.
    let first = eventually("the long job to report a step", || {
        futures_block(step_of(&q, &long)).filter(|s| *s >= 1)
    })
    .await;
    let later = eventually("the long job's step to advance", || {
        futures_block(step_of(&q, &long)).filter(|s| *s > first)
    })
    .await;
    assert!(later > first);

    let asked = Instant::now();
    let r = easel_worker::operate::cancel(q.as_ref(), &w.config, &long)
        .await
        .unwrap();
    assert_eq!(r, CancelResult::Requested);
    let cb = stub.callback_for(&long).await;
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(2), "the cancelled callback took {took:?}");
    assert_eq!(cb.body["status"], "failed");
    assert_eq!(cb.body["metadata"]["error_type"], "cancelled");
    let done = stub.callback_for(&next).await;
    assert_eq!(done.body["status"], "completed", "the worker went on with the next job");
    assert_eq!(
        stub.callbacks()
            .iter()
            .filter(|c| c.body["job_id"] == long.as_str())
            .count(),
        1,
        "exactly one terminal callback"
    );
    assert!(q.list(Some(JobState::Running), 10).await.unwrap().is_empty());
    w.stop().await.unwrap();
}

fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_is_cancelled_within_two_seconds_on_the_embedded_queue() {
    cancel_running_job_and_go_on(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_is_cancelled_within_two_seconds_on_redis() {
    let Some(url) = service("EASEL_TEST_REDIS_URL") else {
        return;
    };
    cancel_running_job_and_go_on(&[("queue_url", url), ("queue_name", unique("q"))]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_time_limit_ends_with_timeout() {
    let stub = SupabaseStub::start("k").await;
    let w = slow_worker(&stub, Duration::from_millis(300), &[]).await;
    let id = unique("slow");
    let started = Instant::now();
    w.producer()
        .await
        .push(&job_with(&id, json!({"num_inference_steps": 100, "timeout_secs": 1})))
        .await
        .unwrap();
    let cb = stub.callback_for(&id).await;
    assert_eq!(cb.body["status"], "failed");
    assert_eq!(cb.body["metadata"]["error_type"], "timeout");
    assert!(
        cb.body["error_message"].as_str().unwrap_or("").contains("1s"),
        "{}",
        cb.raw
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let metrics = w.metrics().await;
    assert!(
        metrics.contains("easel_jobs_stopped_total{job_type=\"sdxl_image_fast\",reason=\"timeout\"} 1"),
        "{metrics}"
    );
    // Duration and queue wait are histograms (quantiles come from their buckets).
    for line in [
        "# TYPE easel_job_duration_seconds histogram",
        "easel_job_duration_seconds_count 1",
        "easel_job_duration_seconds_bucket{le=\"+Inf\"} 1",
        "easel_queue_wait_seconds_count 1",
        "easel_build_info{version=",
        "easel_job_progress_ratio 0",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_limit_out_of_bounds_is_a_validation_error() {
    let stub = SupabaseStub::start("k").await;
    let w = slow_worker(&stub, Duration::ZERO, &[]).await;
    let id = unique("bad");
    w.producer()
        .await
        .push(&job_with(&id, json!({"timeout_secs": 0})))
        .await
        .unwrap();
    let cb = stub.callback_for(&id).await;
    assert_eq!(cb.body["metadata"]["error_type"], "validation_error");
    assert!(cb.raw.contains("timeout_secs"), "{}", cb.raw);
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_job_is_shown_and_cancelled_over_http_with_the_admin_token() {
    let stub = SupabaseStub::start("k").await;
    let w = slow_worker(&stub, Duration::from_millis(300), &[("admin_token", "adm".into())]).await;
    let id = unique("http");
    w.producer()
        .await
        .push(&job_with(&id, json!({"num_inference_steps": 100})))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let current = eventually("the job to show in /jobs/current", || {
        let v: serde_json::Value =
            futures_block(async { http.get(w.url("/jobs/current")).send().await.ok()?.json().await.ok() })?;
        (v["job"]["id"] == id.as_str() && v["job"]["step"].as_u64() >= Some(1)).then_some(v)
    })
    .await;
    assert_eq!(current["job"]["phase"], "denoising");
    let cancel = w.url(&format!("/jobs/{id}/cancel"));
    let refused = http.post(&cancel).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let wrong = http
        .post(w.url("/jobs/other/cancel"))
        .bearer_auth("adm")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 404);
    let ok = http.post(&cancel).bearer_auth("adm").send().await.unwrap();
    assert_eq!(ok.status(), 202);
    let cb = stub.callback_for(&id).await;
    assert_eq!(cb.body["metadata"]["error_type"], "cancelled");
    let idle: serde_json::Value = http
        .get(w.url("/jobs/current"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(idle["job"].is_null(), "{idle}");
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_callbacks_come_while_the_job_runs_and_never_after_its_terminal_callback() {
    let stub = SupabaseStub::start("k").await;
    let w = slow_worker(
        &stub,
        Duration::from_millis(100),
        &[("progress_callbacks", "true".into())],
    )
    .await;
    let id = unique("prog");
    w.producer()
        .await
        .push(&job_with(&id, json!({"num_inference_steps": 30})))
        .await
        .unwrap();
    let terminal = eventually("the terminal callback", || {
        stub.callbacks()
            .into_iter()
            .find(|c| c.body["job_id"] == id.as_str() && c.body["status"] == "completed")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mine: Vec<_> = stub
        .callbacks()
        .into_iter()
        .filter(|c| c.body["job_id"] == id.as_str())
        .collect();
    let last = mine.last().unwrap();
    assert_eq!(last.raw, terminal.raw, "nothing after the terminal callback");
    let progress: Vec<_> = mine.iter().filter(|c| c.body["status"] == "processing").collect();
    assert!(progress.len() >= 2, "{} progress callbacks", progress.len());
    assert!(
        progress.len() <= 8,
        "at most one per 500 ms over 3 s: {}",
        progress.len()
    );
    let p = &progress[0].body["metadata"]["progress"];
    assert!(p["total"] == 30 && p["phase"].is_string(), "{p}");
    let keys: std::collections::BTreeSet<_> = progress
        .iter()
        .map(|c| c.headers["x-easel-delivery-id"].clone())
        .collect();
    assert_eq!(
        keys.len(),
        progress.len(),
        "each progress callback has its own delivery id"
    );
    w.stop().await.unwrap();
}
