//! Every malformed payload the contract lists gets its failed callback (id readable, even when
//! the strict JSON parser refuses the payload) or its dead letter (id unreadable; bytes that are
//! not UTF-8 kept exactly), ids that are not safe path segments get a failed callback and write
//! nothing, and the worker keeps running: a valid job after them completes.

use easel_worker::db::Db;
use serde_json::{json, Value};

use crate::harness;
use crate::support::{eventually, unique, SupabaseStub};

/// (payload with `ID` as the id placeholder, expected error_type, a phrase of the message).
fn failing() -> Vec<(Value, &'static str, &'static str)> {
    let ok = |extra: Value| {
        let mut base = json!({"id": "ID", "type": "sdxl_image_fast", "prompt": "p", "user_id": "u"});
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        base
    };
    vec![
        (ok(json!({"type": "video_high"})), "unsupported_job_type", "video_high"),
        (
            json!({"id": "ID", "prompt": "p", "user_id": "u"}),
            "validation_error",
            "\"type\"",
        ),
        (ok(json!({"type": null})), "validation_error", "\"type\""),
        (
            json!({"id": "ID", "type": "sdxl_image_fast", "user_id": "u"}),
            "validation_error",
            "\"prompt\"",
        ),
        (ok(json!({"prompt": null})), "validation_error", "\"prompt\""),
        (ok(json!({"prompt": 42})), "validation_error", "\"prompt\" is a number"),
        (
            json!({"id": "ID", "type": "sdxl_image_fast", "prompt": "p"}),
            "validation_error",
            "\"user_id\"",
        ),
        (ok(json!({"user_id": null})), "validation_error", "\"user_id\""),
        (
            ok(json!({"config": "fast"})),
            "validation_error",
            "\"config\" is a string",
        ),
        (
            ok(json!({"metadata": [1]})),
            "validation_error",
            "\"metadata\" is an array",
        ),
        (
            ok(json!({"config": {"num_images": 7}})),
            "validation_error",
            "config.num_images is 7",
        ),
        (
            ok(json!({"config": {"num_images": "many"}})),
            "validation_error",
            "config.num_images",
        ),
        (
            ok(json!({"config": {"num_inference_steps": -3}})),
            "validation_error",
            "num_inference_steps",
        ),
        (
            ok(json!({"config": {"guidance_scale": "high"}})),
            "validation_error",
            "guidance_scale",
        ),
        (
            ok(json!({"config": {"width": 1001}})),
            "validation_error",
            "multiple of 8",
        ),
        (
            ok(json!({"config": {"seed": "abc"}})),
            "validation_error",
            "config.seed",
        ),
        (
            ok(json!({"metadata": {"reference_image_url": "ftp://x/y.png"}})),
            "validation_error",
            "http://",
        ),
        (
            ok(json!({"metadata": {"reference_image_url": "URL/missing.png"}})),
            "reference_image_error",
            "HTTP 404",
        ),
        (
            ok(json!({"metadata": {"reference_image_url": "URL/x", "denoise_strength": 2}})),
            "validation_error",
            "denoise_strength",
        ),
        (
            ok(json!({"compel_enabled": "yes"})),
            "validation_error",
            "compel_enabled",
        ),
    ]
}

/// Payloads without a readable id, with a phrase of their dead-letter reason.
fn unreadable() -> Vec<(&'static str, &'static str)> {
    vec![
        ("this is not json", "not valid JSON"),
        (r#"["sdxl_image_fast"]"#, "must be an object"),
        (r#"{"type":"sdxl_image_fast","prompt":"p","user_id":"u"}"#, "no job id"),
        (r#"{"id":null,"type":"sdxl_image_fast"}"#, "no job id"),
        (r#"{"id":12345}"#, "must be a string"),
        (r#"{"id":"   "}"#, "empty"),
    ]
}

/// Payloads the strict parser refuses but whose top-level id is readable (`ID` placeholder),
/// and a phrase of the parser's complaint.
fn parser_refused() -> Vec<(String, &'static str)> {
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    vec![
        (
            format!(r#"{{"config":{deep},"id":"ID","type":"sdxl_image_fast"}}"#),
            "recursion limit",
        ),
        (
            r#"{"id":"ID","type":"sdxl_image_fast","config":{"guidance_scale":1e400}}"#.into(),
            "number out of range",
        ),
        (r#"{"id":"ID","prompt":"\ud800","user_id":"u"}"#.into(), "hex escape"),
    ]
}

/// Ids and user ids that cannot be storage path segments.
const UNSAFE: [&str; 7] = [
    "../../evil-bucket/x",
    "..",
    "a#b",
    "a?b",
    "a/b",
    "a\r\nINFO forged",
    "a%2e",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_ids_and_payloads_the_parser_refuses_get_a_failed_callback_and_write_nothing() {
    let stub = SupabaseStub::start("k").await;
    let w = harness::start(&harness::stub_settings(&stub), None).await;
    let q = w.producer().await;
    let mut expect = Vec::new();
    for (raw, phrase) in parser_refused() {
        let id = unique("refused");
        q.push(raw.replace("ID", &id).as_bytes()).await.unwrap();
        expect.push((id, phrase));
    }
    for bad in UNSAFE {
        let id = bad.to_string();
        q.push(
            json!({"id": id, "type": "sdxl_image_fast", "prompt": "p", "user_id": "u"})
                .to_string()
                .as_bytes(),
        )
        .await
        .unwrap();
        expect.push((id, "path segment"));
        let id = unique("user");
        q.push(
            json!({"id": id, "type": "sdxl_image_fast", "prompt": "p", "user_id": bad})
                .to_string()
                .as_bytes(),
        )
        .await
        .unwrap();
        expect.push((id, "path segment"));
    }
    for (id, phrase) in &expect {
        let b = stub.callback_for(id).await.body;
        assert_eq!(
            (b["status"].as_str(), b["job_id"].as_str()),
            (Some("failed"), Some(id.as_str())),
            "{b}"
        );
        assert_eq!(b["metadata"]["error_type"], "validation_error", "{b}");
        assert!(
            b["error_message"].as_str().unwrap().contains(phrase),
            "{phrase:?} not in {b}"
        );
    }
    assert!(
        stub.objects().is_empty(),
        "nothing was stored: {:?}",
        stub.objects().keys()
    );
    assert_eq!(stub.callbacks().len(), expect.len(), "one callback each");
    w.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_payload_gets_a_failed_callback_or_a_dead_letter_and_the_worker_keeps_running() {
    let stub = SupabaseStub::start("k").await;
    let w = harness::start(&harness::stub_settings(&stub), None).await;
    let q = w.producer().await;
    let mut ids = Vec::new();
    for (payload, _, _) in failing() {
        let id = unique("bad");
        let text = payload
            .to_string()
            .replace("\"ID\"", &format!("\"{id}\""))
            .replace("URL", &format!("{}/images", stub.url));
        q.push(text.as_bytes()).await.unwrap();
        ids.push(id);
    }
    for (raw, _) in unreadable() {
        q.push(raw.as_bytes()).await.unwrap();
    }
    q.push(b"{\"id\":\"\xff\"}").await.unwrap();
    let good = unique("good");
    q.push(json!({"jobId": good, "jobType": "sdxl_image_fast", "prompt": "p", "userId": "u", "config": null, "metadata": null}).to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(stub.callback_for(&good).await.body["status"], "completed");
    for (id, (_, kind, phrase)) in ids.iter().zip(failing()) {
        let b = stub.callback_for(id).await.body;
        assert_eq!(
            (b["status"].as_str(), b["assets"].clone()),
            (Some("failed"), json!([])),
            "{b}"
        );
        assert_eq!(b["metadata"]["error_type"], kind, "{b}");
        assert!(
            b["error_message"].as_str().unwrap().contains(phrase),
            "{phrase:?} not in {b}"
        );
        assert!(b["metadata"]["timestamp"].as_f64().unwrap() > 1.6e9);
    }
    let db = Db::open(&w.config.db_path()).unwrap();
    let dead: Vec<(Vec<u8>, String)> = db
        .call_blocking(|c| {
            let mut st =
                c.prepare("SELECT CAST(payload AS BLOB), dead_reason FROM jobs WHERE state = 'dead' ORDER BY seq")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .unwrap();
    let mut want: Vec<(Vec<u8>, &str)> = unreadable()
        .into_iter()
        .map(|(r, p)| (r.as_bytes().to_vec(), p))
        .collect();
    want.push((b"{\"id\":\"\xff\"}".to_vec(), "not UTF-8"));
    assert_eq!(dead.len(), want.len(), "{dead:?}");
    for ((payload, reason), (raw, phrase)) in dead.iter().zip(want) {
        assert_eq!(payload, &raw, "the payload's bytes are kept");
        assert!(reason.contains(phrase), "{phrase:?} not in {reason:?}");
    }
    let every_id_once = eventually("exactly one callback per job", || {
        let n = stub.callbacks().len();
        (n == ids.len() + 1).then_some(n)
    })
    .await;
    assert_eq!(every_id_once, ids.len() + 1);
    assert!(!w.handle.is_finished(), "the worker is still running");
    w.stop().await.unwrap();
}
