//! The worker's HTTP endpoints: the ourvidz routes with the Python worker's bodies, bearer
//! tokens on the mutating ones, and the supervision routes.

use serde_json::Value;

use crate::harness;

async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_memory_status_have_the_python_workers_bodies() {
    let w = harness::start(&[], None).await;
    let h = get_json(&w.url("/health")).await;
    assert_eq!(
        (h["status"].as_str(), h["worker"].as_str(), h["model_loaded"].as_bool()),
        (Some("healthy"), Some("sdxl"), Some(true))
    );
    assert!(h["timestamp"].as_f64().unwrap() > 1.6e9);
    let m = get_json(&w.url("/memory/status")).await;
    for k in ["total_vram", "allocated_vram", "available_vram"] {
        assert!(m[k].is_f64(), "{k} in {m}");
    }
    assert_eq!(m["model_loaded"], true);
    assert_eq!(reqwest::get(w.url("/livez")).await.unwrap().status(), 200);
    let metrics = reqwest::get(w.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("easel_queue_depth{state=\"queued\"} 0"), "{metrics}");
    assert!(
        metrics.contains("easel_jobs_total{outcome=\"completed\"} 0"),
        "{metrics}"
    );
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_and_unload_need_the_admin_token() {
    let http = reqwest::Client::new();
    let w = harness::start(&[], None).await;
    let r = http.post(w.url("/memory/unload")).send().await.unwrap();
    assert_eq!(r.status(), 403, "disabled without EASEL_ADMIN_TOKEN");
    w.stop().await.unwrap();

    let w = harness::start(&[("admin_token", "tok".into())], None).await;
    let r = http
        .post(w.url("/memory/unload"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r: Value = http
        .post(w.url("/memory/unload"))
        .bearer_auth("tok")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (r["success"].as_bool(), r["message"].as_str()),
        (Some(true), Some("model unloaded"))
    );
    assert_eq!(get_json(&w.url("/health")).await["model_loaded"], false);
    let r: Value = http
        .post(w.url("/memory/load"))
        .bearer_auth("tok")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["success"], true);
    assert_eq!(get_json(&w.url("/health")).await["model_loaded"], true);
    w.stop().await.unwrap();
}
