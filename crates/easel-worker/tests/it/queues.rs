//! The queue contract, the same for every backend: FIFO leases, a lease whose reply was lost
//! handed out again, hand-backs that do not count as deliveries, expired leases reclaimed by
//! another consumer with the delivery counted, exactly one outcome per job id recorded with
//! the removal of the delivery, the outbox of callbacks (claims, retries, settling), re-sends,
//! and dead letters of payloads that are not even UTF-8, kept byte for byte. Run against the
//! embedded SQLite queue, a real Redis, and Upstash REST.

use std::sync::Arc;
use std::time::Duration;

use easel_worker::config::{QueueBackend, Secret};
use easel_worker::db::{now, Db};
use easel_worker::queue::{self, Finish, Queue, Recorded, Settle};

use crate::support::{eventually, service, unique, upstash_front};

const TTL: Duration = Duration::from_secs(1);
/// Bytes that are not UTF-8 (an invalid start byte, then a lone continuation byte).
const NOT_UTF8: &[u8] = b"{\"id\":\"x\xff\xfe\"}";

async fn open(backend: &QueueBackend, name: &str, db: &Db, consumer: &str) -> Arc<dyn Queue> {
    let opts = queue::QueueOptions {
        lease_ttl: TTL,
        outcome_ttl: Duration::from_secs(3600),
    };
    queue::open(backend, name, consumer.to_string(), db, opts).expect("open queue")
}

fn done<'a>(job_id: &'a str, body: &'a str) -> Finish<'a> {
    Finish {
        job_id,
        body,
        target: "http://127.0.0.1:9/callback",
        dead_reason: None,
    }
}

/// `raw_redis`: where to push bytes a REST producer cannot send (Upstash takes UTF-8 only).
async fn exercise(backend: QueueBackend, raw_redis: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("q.db")).unwrap();
    let name = unique("q");
    let (a, b, c) = (
        open(&backend, &name, &db, "a").await,
        open(&backend, &name, &db, "b").await,
        open(&backend, &name, &db, "c").await,
    );
    a.ping().await.expect("the backend answers");
    a.push(b"first").await.unwrap();
    a.push(b"second").await.unwrap();

    let first = a.lease().await.unwrap().expect("a job");
    assert_eq!((first.payload.as_slice(), first.deliveries), (&b"first"[..], 1), "FIFO");
    let lost = a.lease().await.unwrap().expect("the same job again");
    assert_eq!(
        lost.payload, b"first",
        "a lease whose reply was lost is handed out again"
    );
    assert_eq!(
        a.finish(&lost, done("j1", "{\"status\":\"completed\"}")).await.unwrap(),
        Recorded::New
    );
    assert_eq!(
        a.outcome("j1").await.unwrap().as_deref(),
        Some("{\"status\":\"completed\"}")
    );
    assert_eq!(a.outcome("j2").await.unwrap(), None);

    let second = a.lease().await.unwrap().expect("a job");
    assert_eq!(second.payload, b"second");
    a.release(&second).await.unwrap();
    let again = b.lease().await.unwrap().expect("the released job");
    assert_eq!(
        (again.payload.as_slice(), again.deliveries),
        (&b"second"[..], 1),
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
        (taken.payload.as_slice(), taken.deliveries),
        (&b"second"[..], 2),
        "the crash counts"
    );
    // Both runs finish: only the first outcome counts, and b's finish removes nothing of c's.
    assert_eq!(
        c.finish(&taken, done("j2", "{\"run\":\"c\"}")).await.unwrap(),
        Recorded::New
    );
    assert_eq!(
        b.finish(&again, done("j2", "{\"run\":\"b\"}")).await.unwrap(),
        Recorded::Existing
    );
    assert_eq!(c.outcome("j2").await.unwrap().as_deref(), Some("{\"run\":\"c\"}"));
    for q in [&a, &b, &c] {
        assert_eq!(q.depth().await.unwrap().in_flight, 0, "nothing left in flight");
    }
    exercise_outbox(&a, &b).await;

    // A producer pushes a finished job again: its callback is queued once more.
    a.push(b"first").await.unwrap();
    let repush = a.lease().await.unwrap().expect("the re-pushed job");
    assert_eq!(repush.deliveries, 1, "a re-push is a first delivery");
    assert!(a.resend(&repush, "j1").await.unwrap());
    assert_eq!(a.pending_callbacks().await.unwrap(), 1);
    let p = a
        .claim_callback(true, &[])
        .await
        .unwrap()
        .expect("the re-sent callback");
    assert_eq!(
        (p.job_id.as_str(), p.body.as_str()),
        ("j1", "{\"status\":\"completed\"}")
    );
    a.settle_callback(&p, Settle::Delivered).await.unwrap();

    // Bytes that are not UTF-8 travel and are dead-lettered exactly.
    match raw_redis {
        None => a.push(NOT_UTF8).await.unwrap(),
        Some(url) => {
            let err = a.push(NOT_UTF8).await.unwrap_err().to_string();
            assert!(err.contains("UTF-8"), "{err}");
            raw_lpush(url, &name, NOT_UTF8).await;
        }
    }
    let bytes = a.lease().await.unwrap().expect("the undecodable payload");
    assert_eq!(bytes.payload, NOT_UTF8);
    a.dead_letter(&bytes, "not UTF-8").await.unwrap();
    let depth = a.depth().await.unwrap();
    assert_eq!((depth.queued, depth.in_flight, depth.dead), (0, 0, 1));
    assert!(b.lease().await.unwrap().is_none());
}

/// Two senders share one outbox: a claim is exclusive, a retry waits its time, settling ends it.
async fn exercise_outbox(a: &Arc<dyn Queue>, b: &Arc<dyn Queue>) {
    assert_eq!(a.pending_callbacks().await.unwrap(), 2, "j1 and j2, once each");
    let p = a.claim_callback(true, &[]).await.unwrap().expect("a due callback");
    assert_eq!(
        (p.job_id.as_str(), p.attempts, p.target.as_str()),
        ("j1", 1, "http://127.0.0.1:9/callback")
    );
    let q = b.claim_callback(true, &[]).await.unwrap().expect("the other one");
    assert_eq!(q.job_id, "j2", "a claimed callback is not handed to a second sender");
    assert!(
        b.claim_callback(false, &[]).await.unwrap().is_none(),
        "both are claimed"
    );
    a.settle_callback(
        &p,
        Settle::Retry {
            at: now() + 3600.0,
            error: "HTTP 503".into(),
        },
    )
    .await
    .unwrap();
    assert!(
        b.claim_callback(true, &[]).await.unwrap().is_none(),
        "not due for an hour"
    );
    let flush = b
        .claim_callback(false, &[])
        .await
        .unwrap()
        .expect("a flush ignores the backoff");
    assert_eq!((flush.job_id.as_str(), flush.attempts), ("j1", 2));
    assert!(b.claim_callback(false, &[]).await.unwrap().is_none());
    b.settle_callback(&flush, Settle::Delivered).await.unwrap();
    b.settle_callback(
        &q,
        Settle::GaveUp {
            error: "HTTP 400".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(a.pending_callbacks().await.unwrap(), 0);
}

async fn raw_lpush(url: &str, queue: &str, payload: &[u8]) {
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("LPUSH")
        .arg(queue)
        .arg(payload)
        .query_async(&mut c)
        .await
        .unwrap();
}

/// Runs a future to completion from a synchronous closure (inside the multi-thread runtime).
fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_sqlite_queue_keeps_the_contract() {
    exercise(QueueBackend::Sqlite, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_queue_keeps_the_contract() {
    let Some(url) = service("EASEL_TEST_REDIS_URL") else {
        return;
    };
    exercise(QueueBackend::Redis { url: Secret::new(url) }, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstash_rest_queue_keeps_the_contract() {
    let Some(url) = service("EASEL_TEST_REDIS_URL") else {
        return;
    };
    let rest = upstash_front(&url, "t").await;
    let backend = QueueBackend::Upstash {
        url: rest,
        token: Secret::new("t"),
    };
    exercise(backend, Some(&url)).await;
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
