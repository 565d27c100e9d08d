//! Graceful shutdown: a running job finishes within the grace period (its callback flushed)
//! or its lease is handed back, and `run` returns `Ok` either way.

use crate::harness::{self, job, GatedGenerator};
use crate::support::{unique, SupabaseStub};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_running_job_finish_and_flushes_its_callback() {
    let stub = SupabaseStub::start("k").await;
    let gen = GatedGenerator::new();
    let settings = [
        ("supabase_url", stub.url.clone()),
        ("supabase_service_key", "k".to_string()),
    ];
    let w = harness::start(&settings, Some(gen.clone())).await;
    let id = unique("job");
    w.producer().await.push(job(&id).as_bytes()).await.unwrap();
    gen.started.notified().await;
    w.shutdown.cancel();
    let url = w.url("/readyz");
    crate::support::eventually("a draining worker to stop being ready", || {
        let status = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async { reqwest::get(&url).await.map(|r| r.status().as_u16()) })
        });
        (status.ok() == Some(503)).then_some(())
    })
    .await;
    gen.release();
    w.stop().await.unwrap();
    assert_eq!(stub.callbacks().len(), 1, "the callback was flushed before exit");
    assert_eq!(stub.callbacks()[0].body["job_id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_outlives_the_grace_period_is_handed_back_to_the_queue() {
    let gen = GatedGenerator::new();
    let w = harness::start(&[("shutdown_grace", "0s".into())], Some(gen.clone())).await;
    let q = w.producer().await;
    let id = unique("job");
    q.push(job(&id).as_bytes()).await.unwrap();
    gen.started.notified().await;
    let metrics = w.metrics.clone();
    w.stop().await.unwrap();
    assert_eq!(metrics.jobs(easel_worker::metrics::Outcome::Released), 1);
    let back = q.lease().await.unwrap().expect("the job is back in the queue");
    assert_eq!(back.deliveries, 1, "a hand-back is not counted as a delivery");
    gen.release();
}
