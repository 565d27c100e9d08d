//! Storage and callback outages that recover: nothing is lost, nothing is sent twice, and a
//! restarted worker re-sends a callback it could not deliver before it stopped.

use crate::harness::{self, job, stub_settings};
use crate::support::{eventually, unique, SupabaseStub};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_outage_that_recovers_still_uploads_every_object() {
    let stub = SupabaseStub::start("k").await;
    let w = harness::start(&stub_settings(&stub), None).await;
    stub.fail_storage(3);
    let id = unique("job");
    w.producer().await.push(job(&id).as_bytes()).await.unwrap();
    let cb = stub.callback_for(&id).await.body;
    assert_eq!(cb["status"], "completed", "{cb}");
    assert_eq!(cb["assets"][0]["thumbnail_url"], format!("u/{id}/0.thumb.webp"));
    let objects = stub.objects();
    assert!(objects.contains_key(&format!("workspace-temp/u/{id}/0.png")));
    assert!(objects.contains_key(&format!("workspace-temp/u/{id}/0.thumb.webp")));
    let m = w.metrics().await;
    assert!(m.contains("easel_upload_attempts_total{result=\"failed\"} 3"), "{m}");
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_outage_longer_than_the_retries_fails_the_job_with_a_clear_message() {
    let stub = SupabaseStub::start("k").await;
    let mut s = stub_settings(&stub);
    s.push(("upload_budget", "1s".into()));
    let w = harness::start(&s, None).await;
    stub.fail_storage(1000);
    let id = unique("job");
    w.producer().await.push(job(&id).as_bytes()).await.unwrap();
    let cb = stub.callback_for(&id).await.body;
    assert_eq!(
        (cb["status"].as_str(), cb["metadata"]["error_type"].as_str()),
        (Some("failed"), Some("storage_error"))
    );
    assert!(cb["error_message"].as_str().unwrap().contains("503"), "{cb}");
    stub.fail_storage(0);
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_outage_that_recovers_delivers_the_callback_exactly_once() {
    let stub = SupabaseStub::start("k").await;
    let w = harness::start(&stub_settings(&stub), None).await;
    stub.fail_callbacks(4);
    let id = unique("job");
    w.producer().await.push(job(&id).as_bytes()).await.unwrap();
    assert_eq!(stub.callback_for(&id).await.body["status"], "completed");
    assert_eq!(stub.callback_attempts(), 5);
    assert_eq!(stub.callbacks().len(), 1);
    let m = w.metrics().await;
    assert!(m.contains("easel_callback_attempts_total{result=\"retry\"} 4"), "{m}");
    assert!(
        m.contains("easel_callback_attempts_total{result=\"delivered\"} 1"),
        "{m}"
    );
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_not_delivered_before_shutdown_is_sent_by_the_next_worker() {
    let stub = SupabaseStub::start("k").await;
    let w = harness::start(&stub_settings(&stub), None).await;
    stub.fail_callbacks(u32::MAX);
    let id = unique("job");
    w.producer().await.push(job(&id).as_bytes()).await.unwrap();
    eventually("the job to finish", || {
        (w.metrics.jobs(easel_worker::metrics::Outcome::Completed) == 1).then_some(())
    })
    .await;
    let dir = w.dir.clone();
    w.stop().await.unwrap();
    assert!(stub.callbacks().is_empty());
    stub.fail_callbacks(0);
    let again = harness::start_in(dir, &stub_settings(&stub), None).await;
    assert_eq!(stub.callback_for(&id).await.body["status"], "completed");
    assert_eq!(stub.callbacks().len(), 1);
    again.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_are_signed_when_a_secret_is_configured() {
    let stub = SupabaseStub::start("k").await;
    let mut s = stub_settings(&stub);
    s.push(("callback_secret", "shh".into()));
    let w = harness::start(&s, None).await;
    let id = unique("job");
    w.producer().await.push(job(&id).as_bytes()).await.unwrap();
    let cb = stub.callback_for(&id).await;
    let ts = cb.headers["x-easel-timestamp"].clone();
    let expected = easel_worker::callback::signature(&easel_worker::config::Secret::new("shh"), &ts, &cb.raw);
    assert_eq!(cb.headers["x-easel-signature"], expected);
    w.stop().await.unwrap();
}
