//! `easel worker` and `easel submit` as processes: every registered worker kind exposes all
//! four entry points through the CLI; configuration errors exit 78, an unknown kind 2; SIGTERM exits 0; a worker
//! SIGKILLed mid-job loses nothing (another worker completes the job); `submit --wait` prints
//! the outcome and the asset paths.

mod procs;
#[path = "../../easel-worker/tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use procs::{easel, fake, Proc};
use serde_json::{json, Value};
use support::{service, unique, SupabaseStub, DEADLINE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_registered_worker_kind_exposes_all_four_entry_points_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    for kind in easel_worker::registry::KINDS {
        let out = easel(dir.path(), &["worker", kind.name, "describe", "--json"], &[])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let d: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(d["kind"], kind.name);
        assert_eq!(d["entry_points"], json!(["run", "start", "serve", "launch"]));
        assert_eq!(d["queue"], "sdxl_queue");
        assert_eq!(d["job_types"], json!(["sdxl_image_fast", "sdxl_image_high"]));
        for entry in ["run", "start", "serve", "launch"] {
            let mut w = Proc::spawn(dir.path(), entry, &["worker", kind.name, entry], &fake());
            w.wait_ready().await;
            w.signal("-TERM");
            let status = w.wait_exit().await;
            assert_eq!(
                status.code(),
                Some(0),
                "`easel worker {} {entry}` after SIGTERM:\n{}",
                kind.name,
                w.log()
            );
        }
    }
}

#[test]
fn configuration_errors_exit_78_and_name_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value, needle) in [
        ("WORKER_PORT", "http", "WORKER_PORT"),
        ("EASEL_GENERATOR", "dalle", "EASEL_GENERATOR"),
        (
            "UPSTASH_REDIS_REST_URL",
            "https://example.invalid",
            "UPSTASH_REDIS_REST_TOKEN",
        ),
        ("EASEL_MODEL", "/no/such/model", "/no/such/model"),
    ] {
        let out = easel(dir.path(), &["worker", "sdxl", "run"], &[(var, value.to_string())])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{var}={value}: {err}");
        assert!(err.contains(needle), "{var}={value}: {err}");
    }
    // An unknown kind is a usage error: clap refuses it and lists the kinds.
    let out = easel(dir.path(), &["worker", "video", "run"], &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sdxl"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_loses_nothing_another_worker_completes_the_job() {
    let Some(redis) = service("EASEL_TEST_REDIS_URL") else {
        return;
    };
    let stub = SupabaseStub::start("svc").await;
    let queue = unique("sdxl_queue");
    let dir = tempfile::tempdir().unwrap();
    let mut env = fake();
    env.extend([
        ("EASEL_QUEUE_URL", redis.clone()),
        ("EASEL_QUEUE_NAME", queue.clone()),
        ("EASEL_LEASE_TTL", "2s".into()),
        ("SUPABASE_URL", stub.url.clone()),
        ("SUPABASE_SERVICE_KEY", "svc".into()),
    ]);
    let mut slow = env.clone();
    slow.push(("EASEL_FAKE_DELAY", "600000ms".into()));
    let mut a = Proc::spawn(
        dir.path(),
        "a",
        &["worker", "sdxl", "run", "--data-dir", "data-a"],
        &slow,
    );
    a.wait_ready().await;

    let id = unique("job");
    let payload =
        json!({"id": id, "type": "sdxl_image_fast", "prompt": "p", "user_id": "u", "config": {"num_images": 2}});
    let client = redis::Client::open(redis.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("LPUSH")
        .arg(&queue)
        .arg(payload.to_string())
        .query_async(&mut conn)
        .await
        .unwrap();
    let pattern = format!("{queue}:processing:*");
    let start = Instant::now();
    loop {
        let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query_async(&mut conn).await.unwrap();
        if !keys.is_empty() {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "worker a never took the job:\n{}", a.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.signal("-KILL");
    a.wait_exit().await;
    assert!(stub.callbacks().is_empty(), "nothing was reported by the killed worker");

    let mut b = Proc::spawn(
        dir.path(),
        "b",
        &["worker", "sdxl", "run", "--data-dir", "data-b"],
        &env,
    );
    b.wait_ready().await;
    let cb = stub.callback_for(&id).await;
    assert_eq!(cb.body["status"], "completed", "{}\n{}", cb.raw, b.log());
    assert_eq!(cb.body["assets"].as_array().map(Vec::len), Some(2));
    for i in 0..2 {
        assert!(stub.objects().contains_key(&format!("workspace-temp/u/{id}/{i}.png")));
        assert!(stub
            .objects()
            .contains_key(&format!("workspace-temp/u/{id}/{i}.thumb.webp")));
    }
    b.signal("-TERM");
    assert_eq!(b.wait_exit().await.code(), Some(0), "{}", b.log());
    assert_eq!(stub.callbacks().len(), 1, "exactly one terminal callback");
    assert!(b.log().contains("reclaimed"), "{}", b.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_wait_prints_the_outcome_and_asset_paths_with_the_embedded_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Proc::spawn(
        dir.path(),
        "worker",
        &["worker", "sdxl", "run"],
        &[("EASEL_POLL", "50ms".into())],
    );
    w.wait_ready().await;
    let args = [
        "submit",
        "--prompt",
        "a lighthouse",
        "--seed",
        "3",
        "--steps",
        "2",
        "--num-images",
        "2",
        "--wait",
        "--timeout",
        "120",
    ];
    let out = tokio::task::spawn_blocking({
        let mut c = easel(dir.path(), &args, &[]);
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        w.log()
    );
    let id = stdout.lines().next().unwrap().to_string();
    assert!(stdout.contains("\"status\": \"completed\""), "{stdout}");
    let files: Vec<&str> = stdout
        .lines()
        .filter(|l| l.ends_with(".png") || l.ends_with(".webp"))
        .collect();
    assert_eq!(files.len(), 4, "{stdout}");
    for f in files {
        assert!(Path::new(f).is_file() || dir.path().join(f).is_file(), "{f}");
        assert!(f.contains(&id));
    }
    w.signal("-TERM");
    assert_eq!(w.wait_exit().await.code(), Some(0), "{}", w.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_and_submit_started_in_different_directories_share_the_data_home() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let xdg = dir.path().join("xdg");
    // An empty EASEL_DATA_DIR counts as unset: the platform data home ($XDG_DATA_HOME/easel) applies.
    let home = vec![
        ("EASEL_DATA_DIR", String::new()),
        ("XDG_DATA_HOME", xdg.display().to_string()),
    ];
    let submit = |args: &[&str]| {
        let mut c = easel(&b, args, &home);
        move || c.output().unwrap()
    };
    let early = tokio::task::spawn_blocking(submit(&["submit", "--prompt", "early", "--steps", "1"]))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&early.stderr);
    assert!(early.status.success(), "{stderr}");
    assert!(stderr.contains("no worker has ever opened queue"), "{stderr}");
    assert!(stderr.contains(&xdg.join("easel").display().to_string()), "{stderr}");

    let mut env = fake();
    env.extend(home.iter().cloned());
    let mut w = Proc::spawn(&a, "worker", &["worker", "sdxl", "run"], &env);
    w.wait_ready().await;
    let args = ["submit", "--prompt", "late", "--wait", "--timeout", "60"];
    let out = tokio::task::spawn_blocking(submit(&args)).await.unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}\n{}", w.log());
    assert!(stdout.contains("\"status\": \"completed\""), "{stdout}");
    assert!(!stderr.contains("no worker has ever opened"), "{stderr}");
    let png = stdout
        .lines()
        .find(|l| l.ends_with(".png"))
        .unwrap_or_default()
        .to_string();
    assert!(png.starts_with(&xdg.join("easel").display().to_string()), "{png}");
    for d in [&a, &b] {
        assert!(!d.join("easel-data").exists(), "a data dir appeared in {}", d.display());
    }
    w.signal("-TERM");
    assert_eq!(w.wait_exit().await.code(), Some(0), "{}", w.log());
}

#[test]
fn config_show_prints_every_value_with_its_origin() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("easel.toml");
    std::fs::write(
        &file,
        "data_dir = \"state\"\n[worker]\npoll_ms = 250\nlease_ttl = \"30s\"\n[[workers]]\nname = \"gpu0\"\nkind = \"sdxl\"\nstop_grace = \"2m\"\n",
    )
    .unwrap();
    let env = [
        ("EASEL_DATA_DIR", String::new()),
        ("UPSTASH_REDIS_REST_URL", "https://u.example".to_string()),
        ("UPSTASH_REDIS_REST_TOKEN", "a-very-secret-token".to_string()),
        ("EASEL_CONFIG", file.display().to_string()),
    ];
    let out = easel(dir.path(), &["config", "show"], &env).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("queue_url").contains("UPSTASH_REDIS_REST_URL"), "{text}");
    assert!(!text.contains("a-very-secret-token"), "{text}");
    assert!(
        line("lease_ttl").contains("\"30s\"") && line("lease_ttl").contains("[worker]"),
        "{text}"
    );
    assert!(line("poll").contains("\"250ms\""), "{text}");
    assert!(
        line("data_dir").contains(&dir.path().join("state").display().to_string()),
        "{text}"
    );
    assert!(line("max_deliveries").contains("the default"), "{text}");
    assert!(
        text.contains("[workers.gpu0]") && line("stop_grace").contains("\"2m\""),
        "{text}"
    );
    assert!(text.contains("poll_ms is deprecated"), "{text}");

    let out = easel(dir.path(), &["config", "show", "--json"], &env).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["settings"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["key"] == "outcome_ttl" && r["value"] == "7d"));
}
