//! Jobs end to end: pushed as the Python producer pushes them, they end with exactly the
//! contract's storage objects and callback body.

use std::sync::Arc;

use easel_worker::db::Db;
use easel_worker::queue::sqlite::job_outcome;
use easel_worker::SdxlGenerator;
use serde_json::{json, Value};

use crate::harness;
use crate::support::{eventually, png_bytes, service, unique, SupabaseStub};

const KEY: &str = "service-role-key";

fn supabase(stub: &SupabaseStub) -> Vec<(&'static str, String)> {
    vec![("supabase_url", stub.url.clone()), ("supabase_service_key", KEY.into())]
}

/// Pushes like the ourvidz edge function: `LPUSH sdxl_queue <json string>`.
async fn lpush(redis_url: &str, queue: &str, payload: &Value) {
    let client = redis::Client::open(redis_url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("LPUSH")
        .arg(queue)
        .arg(payload.to_string())
        .query_async(&mut c)
        .await
        .unwrap();
}

fn job(id: &str, config: Value) -> Value {
    json!({"id": id, "type": "sdxl_image_fast", "prompt": "a lighthouse", "user_id": "user-1", "config": config})
}

async fn assert_contract_outcome(stub: &SupabaseStub, id: &str) {
    let cb = stub.callback_for(id).await;
    assert_eq!(
        cb.headers.get("authorization").map(String::as_str),
        Some("Bearer service-role-key")
    );
    assert_eq!(
        cb.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    let b = &cb.body;
    assert_eq!(
        (b["status"].as_str(), b["error_message"].clone()),
        (Some("completed"), Value::Null),
        "{b}"
    );
    assert_eq!(b["assets"].as_array().map(Vec::len), Some(2));
    for i in 0..2 {
        let a = &b["assets"][i];
        assert_eq!(a["url"], format!("user-1/{id}/{i}.png"));
        assert_eq!(a["thumbnail_url"], format!("user-1/{id}/{i}.thumb.webp"));
        assert_eq!(a["metadata"]["seed"], 77 + i as u64);
        assert_eq!(a["metadata"]["asset_index"], i);
    }
    assert_eq!(
        (b["metadata"]["seed"].clone(), b["metadata"]["num_images"].clone()),
        (json!(77), json!(2))
    );
    let objects = stub.objects();
    let keys: Vec<_> = objects.keys().filter(|k| k.contains(id)).cloned().collect();
    let expected: Vec<String> = [0, 1]
        .iter()
        .flat_map(|i| {
            [
                format!("workspace-temp/user-1/{id}/{i}.png"),
                format!("workspace-temp/user-1/{id}/{i}.thumb.webp"),
            ]
        })
        .collect();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(keys, expected_sorted);
    let png = &objects[&expected[0]];
    assert_eq!(png.content_type, "image/png");
    assert_eq!(b["assets"][0]["metadata"]["file_size_bytes"], png.bytes.len());
    assert!(easel_sdxl::metadata::read_parameters(&png.bytes).is_some_and(|p| p.contains("Seed: 77")));
    let thumb = &objects[&expected[1]];
    assert_eq!(thumb.content_type, "image/webp");
    let uploads = stub.uploads();
    let png_at = uploads.iter().position(|(k, _)| k == &expected[0]).unwrap();
    let thumb_at = uploads.iter().position(|(k, _)| k == &expected[1]).unwrap();
    assert!(png_at < thumb_at, "the thumbnail is uploaded only after its PNG");
    let (_, h) = &uploads[png_at];
    assert_eq!((h["x-upsert"].as_str(), h["apikey"].as_str()), ("true", KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_pushed_to_redis_like_the_python_producer_ends_with_the_contracts_objects_and_callback() {
    let Some(redis) = service("EASEL_TEST_REDIS_URL") else {
        return;
    };
    let stub = SupabaseStub::start(KEY).await;
    let queue = unique("sdxl_queue");
    let mut settings = supabase(&stub);
    settings.extend([("queue_url", redis.clone()), ("queue_name", queue.clone())]);
    let w = harness::start(&settings, None).await;
    let id = unique("job");
    lpush(&redis, &queue, &job(&id, json!({"num_images": 2, "seed": 77}))).await;
    assert_contract_outcome(&stub, &id).await;
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_job_over_upstash_rest_gives_the_same_outcome() {
    let Some(redis) = service("EASEL_TEST_REDIS_URL") else {
        return;
    };
    let stub = SupabaseStub::start(KEY).await;
    let rest = crate::support::upstash_front(&redis, "rest-token").await;
    let queue = unique("sdxl_queue");
    let mut settings = supabase(&stub);
    settings.extend([
        ("queue_url", rest),
        ("queue_token", "rest-token".into()),
        ("queue_name", queue.clone()),
    ]);
    let w = harness::start(&settings, None).await;
    let id = unique("job");
    lpush(&redis, &queue, &job(&id, json!({"num_images": 2, "seed": 77}))).await;
    assert_contract_outcome(&stub, &id).await;
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_defaults_run_the_real_tiny_model_and_keep_the_outcome_in_the_job_table() {
    let generator = Arc::new(SdxlGenerator::new(None, "cpu", None).unwrap());
    let w = harness::start(&[], Some(generator)).await;
    let id = unique("job");
    let payload = json!({"id": id, "type": "sdxl_image_fast", "prompt": "a lighthouse", "user_id": "u",
                         "config": {"seed": 5, "num_inference_steps": 2}});
    w.producer().await.push(payload.to_string().as_bytes()).await.unwrap();
    let db = Db::open(&w.config.db_path()).unwrap();
    let outcome = eventually("the outcome in the job table", || {
        job_outcome(&db, &id).ok().flatten().and_then(|r| r.outcome)
    })
    .await;
    let body: Value = serde_json::from_str(&outcome).unwrap();
    assert_eq!(body["status"], "completed", "{body}");
    assert_eq!(
        (
            body["assets"][0]["metadata"]["width"].clone(),
            body["assets"][0]["metadata"]["steps"].clone()
        ),
        (json!(64), json!(2))
    );
    let png = w
        .dir
        .path()
        .join("storage/workspace-temp")
        .join(body["assets"][0]["url"].as_str().unwrap());
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (64, 64));
    assert!(png.with_file_name("0.thumb.webp").is_file());
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_img2img_job_fetches_its_reference_and_reports_the_values_used() {
    let stub = SupabaseStub::start(KEY).await;
    let url = stub.add_image("ref.png", png_bytes(100, 50));
    let w = harness::start(&supabase(&stub), None).await;
    let id = unique("job");
    let payload = json!({"id": id, "type": "sdxl_image_high", "prompt": "p", "user_id": "u",
                         "metadata": {"reference_image_url": url, "reference_strength": 0.25}});
    w.producer().await.push(payload.to_string().as_bytes()).await.unwrap();
    let cb = stub.callback_for(&id).await;
    let m = &cb.body["assets"][0]["metadata"];
    assert_eq!(
        (
            m["pipeline"].clone(),
            m["denoise_strength"].clone(),
            m["effective_steps"].clone()
        ),
        (json!("img2img"), json!(0.75), json!(18))
    );
    w.stop().await.unwrap();
}

/// The console links images in Supabase Storage by signed URL: it opens the object, and a
/// forged token does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_supabase_link_opens_the_stored_thumbnail() {
    let stub = SupabaseStub::start(KEY).await;
    let w = harness::start(&supabase(&stub), None).await;
    let id = unique("job");
    w.producer()
        .await
        .push(job(&id, json!({"seed": 77})).to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(stub.callback_for(&id).await.body["status"], "completed");
    let store = easel_worker::storage::open(&w.config.storage, &w.config.bucket).unwrap();
    let key = format!("user-1/{id}/0.thumb.webp");
    let link = store
        .link(&key, std::time::Duration::from_secs(60))
        .await
        .unwrap()
        .expect("a signed link");
    assert!(
        link.starts_with(&format!("{}/storage/v1/object/sign/", stub.url)),
        "{link}"
    );
    let got = reqwest::get(&link).await.unwrap();
    assert_eq!(got.status(), 200);
    let stored = &stub.objects()[&format!("workspace-temp/{key}")];
    assert_eq!(got.bytes().await.unwrap().as_ref(), stored.bytes.as_slice());
    let forged = format!("{}?token=0000", link.split('?').next().unwrap());
    assert_eq!(reqwest::get(&forged).await.unwrap().status(), 400);
    let missing = store
        .link("user-1/nope/0.png", std::time::Duration::from_secs(60))
        .await;
    assert!(missing.is_err_and(|e| e.msg.contains("Object not found")));
    w.stop().await.unwrap();
}
