//! One outcome per job id, shared by every worker of a queue: a job pushed again after it
//! finished is answered from its record (same body, same delivery id, never run again), and a
//! callback queued by a worker that stopped before sending it is sent by another worker.

use crate::harness::{self, job, stub_settings};
use crate::support::{eventually, service, unique, SupabaseStub};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_pushed_again_after_it_finished_gets_its_recorded_callback_again_and_is_not_rerun() {
    let stub = SupabaseStub::start("k").await;
    let w = harness::start(&stub_settings(&stub), None).await;
    let id = unique("job");
    w.producer().await.push(job(&id).as_bytes()).await.unwrap();
    let first = stub.callback_for(&id).await;
    let uploads = stub.uploads().len();
    w.producer().await.push(job(&id).as_bytes()).await.unwrap();
    let both = eventually("the recorded callback sent again", || {
        let all: Vec<_> = stub
            .callbacks()
            .into_iter()
            .filter(|c| c.body["job_id"] == id.as_str())
            .collect();
        (all.len() == 2).then_some(all)
    })
    .await;
    assert_eq!(both[1].raw, first.raw, "the same body, byte for byte");
    let key = "x-easel-delivery-id";
    assert_eq!(first.headers.get(key), Some(&format!("{id}:completed")));
    assert_eq!(
        both[1].headers.get(key),
        first.headers.get(key),
        "the same idempotency key"
    );
    assert_eq!(stub.uploads().len(), uploads, "the job was not run again");
    let m = w.metrics().await;
    assert!(m.contains("easel_jobs_total{outcome=\"resent\"} 1"), "{m}");
    assert!(m.contains("easel_jobs_total{outcome=\"completed\"} 1"), "{m}");
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_left_by_a_stopped_worker_is_sent_by_another_worker_on_redis() {
    let Some(redis) = service("EASEL_TEST_REDIS_URL") else {
        return;
    };
    let stub = SupabaseStub::start("k").await;
    let queue = unique("q");
    let settings = |s: &SupabaseStub| {
        vec![
            ("queue_url", redis.clone()),
            ("queue_name", queue.clone()),
            ("supabase_url", s.url.clone()),
            ("supabase_service_key", "k".to_string()),
        ]
    };
    // The first worker's callback endpoint answers 500 until it stops (its flush fails too).
    let a = harness::start(&settings(&stub), None).await;
    stub.fail_callbacks(1000);
    let id = unique("job");
    a.producer().await.push(job(&id).as_bytes()).await.unwrap();
    eventually("a callback attempt", || (stub.callback_attempts() > 0).then_some(())).await;
    a.stop().await.unwrap();
    assert!(stub.callbacks().is_empty());
    stub.fail_callbacks(0);
    // A second worker with its own data dir (another host) sends it.
    let b = harness::start(&settings(&stub), None).await;
    assert_eq!(stub.callback_for(&id).await.body["status"], "completed");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(stub.callbacks().len(), 1, "sent once");
    b.stop().await.unwrap();
}
