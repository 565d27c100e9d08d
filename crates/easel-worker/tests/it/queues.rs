//! The queue contract, the same for every backend: FIFO leases, acks, hand-backs that do not
//! count as deliveries, expired leases reclaimed by another consumer with the delivery counted,
//! and dead letters. Run against the embedded SQLite queue, a real Redis, and Upstash REST.

use std::sync::Arc;
use std::time::Duration;

use easel_worker::config::{QueueBackend, Secret};
use easel_worker::db::Db;
use easel_worker::queue::{self, Queue};

use crate::support::{eventually, service, unique, upstash_front};

const TTL: Duration = Duration::from_secs(1);

async fn open(backend: &QueueBackend, name: &str, db: &Db, consumer: &str) -> Arc<dyn Queue> {
    queue::open(backend, name, consumer.to_string(), db, TTL)
        .await
        .expect("open queue")
}

async fn exercise(backend: QueueBackend) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("q.db")).unwrap();
    let name = unique("q");
    let (a, b, c) = (
        open(&backend, &name, &db, "a").await,
        open(&backend, &name, &db, "b").await,
        open(&backend, &name, &db, "c").await,
    );
    a.push("first").await.unwrap();
    a.push("second").await.unwrap();

    let first = a.lease().await.unwrap().expect("a job");
    assert_eq!(
        (first.payload.as_str(), first.deliveries),
        ("first", 1),
        "FIFO, first delivery"
    );
    let second = a.lease().await.unwrap().expect("a job");
    assert_eq!(second.payload, "second");
    assert!(a.lease().await.unwrap().is_none(), "empty");
    a.ack(&first).await.unwrap();

    a.release(&second).await.unwrap();
    let again = b.lease().await.unwrap().expect("the released job");
    assert_eq!(
        (again.payload.as_str(), again.deliveries),
        ("second", 1),
        "a hand-back is not a delivery"
    );

    // b stops heartbeating (as if killed): once its lease expires, c takes the job over.
    let reclaimed = eventually("b's lease to expire", || {
        let n = futures_block(c.reclaim_expired()).expect("reclaim");
        (n > 0).then_some(n)
    })
    .await;
    assert_eq!(reclaimed, 1);
    let taken = c.lease().await.unwrap().expect("the reclaimed job");
    assert_eq!(
        (taken.payload.as_str(), taken.deliveries),
        ("second", 2),
        "the crash counts as a delivery"
    );

    c.dead_letter(&taken, "gave up").await.unwrap();
    let depth = c.depth().await.unwrap();
    assert_eq!((depth.queued, depth.dead), (0, 1));
    assert!(b.lease().await.unwrap().is_none());
}

/// Runs a future to completion from a synchronous closure (inside the multi-thread runtime).
fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_sqlite_queue_keeps_the_contract() {
    exercise(QueueBackend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_queue_keeps_the_contract() {
    let Some(url) = service("EASEL_TEST_REDIS_URL") else {
        return;
    };
    exercise(QueueBackend::Redis { url: Secret::new(url) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstash_rest_queue_keeps_the_contract() {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_upstash_token_is_an_error_that_says_so() {
    let Some(url) = service("EASEL_TEST_REDIS_URL") else {
        return;
    };
    let rest = upstash_front(&url, "right").await;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("q.db")).unwrap();
    let q = open(
        &QueueBackend::Upstash {
            url: rest,
            token: Secret::new("wrong"),
        },
        "q",
        &db,
        "a",
    )
    .await;
    let err = q.lease().await.unwrap_err().to_string();
    assert!(err.contains("401") && err.contains("UPSTASH_REDIS_REST_TOKEN"), "{err}");
    assert!(!err.contains("wrong"), "the token is never echoed: {err}");
}
