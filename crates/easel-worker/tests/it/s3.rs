//! S3-compatible storage against a real S3 server (moto, started by the test script): a job's
//! PNG and thumbnail land at the contract's keys with their real content types, and a
//! presigned link to the thumbnail (what the console shows) opens it.

use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use std::time::Duration;

use object_store::{Attribute, ObjectStore};
use serde_json::json;

use crate::harness;
use crate::support::{service, unique, SupabaseStub};

async fn create_bucket(endpoint: &str, bucket: &str) {
    let r = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .expect("S3 server reachable");
    assert!(r.status().is_success(), "create bucket: {}", r.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_stored_in_s3_has_its_png_and_thumbnail_with_real_content_types() {
    let Some(endpoint) = service("EASEL_TEST_S3_ENDPOINT") else {
        return;
    };
    let bucket = unique("bucket").to_lowercase();
    create_bucket(&endpoint, &bucket).await;
    let stub = SupabaseStub::start("k").await;
    // Supabase settings as ourvidz has them (callbacks go to the stub), storage overridden to S3.
    let settings = [
        ("supabase_url", stub.url.clone()),
        ("supabase_service_key", "k".into()),
        ("storage", format!("s3://{bucket}")),
        ("s3_endpoint", endpoint.clone()),
        ("s3_access_key_id", "testing".into()),
        ("s3_secret_access_key", "testing".into()),
    ];
    let w = harness::start(&settings, None).await;
    let id = unique("job");
    let payload = json!({"id": id, "type": "sdxl_image_fast", "prompt": "p", "user_id": "u"});
    w.producer().await.push(payload.to_string().as_bytes()).await.unwrap();
    assert_eq!(stub.callback_for(&id).await.body["status"], "completed");
    let s3 = AmazonS3Builder::new()
        .with_bucket_name(&bucket)
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .unwrap();
    for (key, ct) in [
        (format!("u/{id}/0.png"), "image/png"),
        (format!("u/{id}/0.thumb.webp"), "image/webp"),
    ] {
        let got = s3
            .get(&Path::from(key.as_str()))
            .await
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(
            got.attributes.get(&Attribute::ContentType).map(|v| v.as_ref()),
            Some(ct),
            "{key}"
        );
        assert!(!got.bytes().await.unwrap().is_empty());
    }
    // The console's link to the thumbnail is a presigned GET that a browser can open as is.
    let backend = w.config.storage.clone();
    let store = easel_worker::storage::open(&backend, &bucket).unwrap();
    let key = format!("u/{id}/0.thumb.webp");
    let link = store
        .link(&key, Duration::from_secs(600))
        .await
        .unwrap()
        .expect("a link");
    assert!(link.contains("X-Amz-Signature="), "{link}");
    let got = reqwest::get(&link).await.unwrap();
    assert_eq!(got.status(), 200, "{link}");
    assert_eq!(&got.bytes().await.unwrap()[..4], b"RIFF", "a WebP");
    w.stop().await.unwrap();
}
