//! The web console in a real browser (Debian's Chromium, headless, through ChromeDriver)
//! against a real `easel up` on the embedded defaults (SQLite queue, local storage, the
//! bundled tiny model): the page lists the worker as running; a submitted job appears, its
//! progress advances without a reload, it finishes with its thumbnail; cancelling from the
//! page is refused without the admin token and works after logging in; a dead letter (a job
//! whose worker was killed past the delivery limit) is retried from the page and completes;
//! a worker is restarted from the page. Screenshots go to `target/tmp/console/`.
//! A lone `easel worker` serves the same page for itself (checked over HTTP).

mod browser;
mod procs;
#[path = "../../easel-worker/tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use browser::Browser;
use serde_json::{json, Value};
use support::{free_port, unique};

const TOKEN: &str = "console-test-token";
/// Generous: a debug build on two busy cores.
const LONG: Duration = Duration::from_secs(120);

/// The admin token every process of these tests gets.
fn token() -> Vec<(&'static str, String)> {
    vec![("EASEL_ADMIN_TOKEN", TOKEN.into())]
}

fn run(dir: &Path, args: &[&str]) -> Output {
    procs::easel(dir, args, &token()).output().expect("easel runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Stops the process (by its pid) if a test fails half-way.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
            let end = Instant::now() + Duration::from_secs(30);
            while self.0.try_wait().ok().flatten().is_none() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn submit(dir: &Path, id: &str, prompt: &str, steps: u32, side: u32) {
    let (steps, side) = (steps.to_string(), side.to_string());
    let out = run(
        dir,
        &[
            "submit", "--id", id, "--prompt", prompt, "--seed", "11", "--steps", &steps, "--width", &side, "--height",
            &side,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// The text of the `#message` line once it contains `part`.
fn message_with(b: &Browser, part: &str) -> String {
    b.wait(&format!("the message {part:?}"), LONG, |b| {
        b.text("#message").filter(|m| m.contains(part))
    })
}

/// The `step/total` a running job's row shows.
fn shown_step(b: &Browser, id: &str) -> Option<(u64, u64)> {
    let cell = b.eval(
        "const td = document.querySelector(`#running tr[data-id=\"${arguments[0]}\"] td[data-progress]`);
         return td ? td.getAttribute('data-progress') : null;",
        json!([id]),
    );
    let (s, t) = cell.as_str()?.split_once('/')?;
    Some((s.parse().ok()?, t.parse().ok()?)).filter(|(_, t)| *t > 0)
}

/// The status a recent job's card shows, once it is there.
fn finished(b: &Browser, id: &str) -> Option<String> {
    let v = b.eval(
        "const li = document.querySelector(`#recent li[data-id=\"${arguments[0]}\"]`);
         return li ? li.getAttribute('data-status') + ' ' + li.textContent : null;",
        json!([id]),
    );
    v.as_str().map(str::to_owned)
}

fn worker_pid(b: &Browser) -> Option<u64> {
    let v = b.eval(
        "const tr = document.querySelector('#workers tr[data-id=\"sdxl\"]');
         if (!tr || tr.querySelector('.state').textContent !== 'running') return null;
         return Number(tr.children[3].textContent);",
        json!([]),
    );
    v.as_u64()
}

#[test]
fn the_console_shows_and_controls_jobs_in_a_real_browser() {
    if !browser::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let status_port = free_port();
    // One delivery per job and a short lease: a worker killed mid-job makes a dead letter.
    let config = format!(
        "[orchestrator]\nlisten = \"127.0.0.1:{status_port}\"\n\n[worker]\nmax_deliveries = 1\nlease_ttl = \"2s\"\npoll = \"100ms\"\n\n[[workers]]\nname = \"sdxl\"\nkind = \"sdxl\"\nport = {}\nstop_grace = \"20s\"\n",
        free_port()
    );
    std::fs::write(d.join("easel.toml"), config).unwrap();
    let log = std::fs::File::create(d.join("up.log")).unwrap();
    let up = procs::easel(d, &["up"], &token())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let _up = Guard(up);
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    let b = Browser::start(&d.join("profile"), &shots, free_port());
    let console = format!("http://127.0.0.1:{status_port}/");
    let end = Instant::now() + LONG;
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", status_port)).is_ok() {
            break;
        }
        assert!(Instant::now() < end, "easel up never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
    b.goto(&console);

    // The worker is listed as running.
    let first_pid = b.wait("the worker to be running", LONG, worker_pid);
    b.wait("the event stream to be live", LONG, |b| {
        (b.text("#live").as_deref() == Some("live")).then_some(())
    });
    b.wait("the read-only session", LONG, |b| {
        (b.eval("return document.body.dataset.session", json!([])) == "read-only").then_some(())
    });

    // A submitted job appears, its progress advances without a reload, it finishes with its thumbnail.
    let a = unique("a");
    submit(d, &a, "a lighthouse <script>alert(1)</script>", 200, 128);
    let (s1, total) = b.wait("job a's progress", LONG, |b| shown_step(b, &a));
    assert_eq!(total, 200);
    b.screenshot("running");
    let (s2, _) = b.wait("job a's progress to advance", LONG, |b| {
        shown_step(b, &a).filter(|(s, _)| *s > s1)
    });
    assert!(s2 > s1);
    let done = b.wait("job a to finish", LONG, |b| finished(b, &a));
    assert!(done.starts_with("completed"), "{done}");
    assert!(
        done.contains("a lighthouse <script>alert(1)</script>") && done.contains("seed 11") && done.contains("128×128"),
        "the card shows prompt (as text), seed and size: {done}"
    );
    let thumb = b.wait("job a's thumbnail to load", LONG, |b| {
        let v = b.eval(
            "const img = document.querySelector(`#recent li[data-id=\"${arguments[0]}\"] img`);
             return img && img.complete && img.naturalWidth > 0 ? [img.naturalWidth, img.getAttribute('src')] : null;",
            json!([a]),
        );
        v.as_array().cloned()
    });
    assert!(thumb[1].as_str().unwrap_or("").ends_with(".webp"), "{thumb:?}");
    assert_eq!(
        b.eval("return document.querySelectorAll('script').length", json!([])),
        1,
        "the prompt stayed text"
    );
    let numbers = b.text("#numbers").unwrap_or_default();
    assert!(
        !numbers.contains("p50 duration–"),
        "a p50 once a job is done: {numbers}"
    );
    b.screenshot("finished");

    // The detail view of the job.
    b.click(&format!("#recent li[data-id=\"{a}\"] button[data-action=\"detail\"]"));
    let detail = b.wait("the detail view", LONG, |b| {
        b.text("#detail-body").filter(|t| t.contains("History"))
    });
    assert!(
        detail.contains("running") && detail.contains("\"status\": \"completed\""),
        "{detail}"
    );
    b.screenshot("detail");
    b.click("#detail form button");

    // Cancelling is refused without the token, and works after logging in.
    let c = unique("c");
    submit(d, &c, "to be cancelled", 200, 256);
    b.wait("job c to run", LONG, |b| shown_step(b, &c));
    let cancel = format!("#running button[data-action=\"cancel\"][data-id=\"{c}\"]");
    b.click(&cancel);
    let refused = message_with(&b, "refused");
    assert!(refused.contains("log in"), "{refused}");
    assert!(shown_step(&b, &c).is_some(), "still running after the refusal");
    b.type_into("#token", "wrong-token");
    b.click("#login button");
    message_with(&b, "Login refused");
    b.type_into("#token", TOKEN);
    b.click("#login button");
    message_with(&b, "Logged in");
    // The page says so at once, and asks the server for its session right after.
    b.wait("the page to hold an admin session", LONG, |b| {
        (b.eval("return document.body.dataset.session", json!([])) == "admin").then_some(())
    });
    let cookie = b.eval("return document.cookie", json!([]));
    assert_eq!(cookie, "", "the session cookie is HttpOnly: {cookie}");
    b.click(&cancel);
    message_with(&b, "cancelling");
    let cancelled = b.wait("job c to end cancelled", LONG, |b| finished(b, &c));
    assert!(
        cancelled.starts_with("failed") && cancelled.contains("cancelled"),
        "{cancelled}"
    );
    b.screenshot("cancelled");

    // A job whose worker is killed mid-job is dead-lettered (one delivery allowed); retried
    // from the page, it completes.
    let x = unique("x");
    submit(d, &x, "survives a crash", 120, 128);
    b.wait("job x to run", LONG, |b| shown_step(b, &x));
    let killed = Command::new("kill")
        .args(["-KILL", &first_pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let retry = format!("#dead button[data-action=\"retry\"][data-id=\"{x}\"]");
    b.wait("job x to be a dead letter", LONG, |b| b.find(&retry));
    let reason = b.text(&format!("#dead tr[data-id=\"{x}\"]")).unwrap_or_default();
    assert!(reason.contains("deliver"), "the dead letter says why: {reason}");
    b.screenshot("dead-letter");
    b.wait("the worker to be back", LONG, |b| {
        worker_pid(b).filter(|p| *p != first_pid)
    });
    b.click(&retry);
    message_with(&b, "back on the queue");
    let again = b.wait("job x to complete after the retry", LONG, |b| {
        finished(b, &x).filter(|s| s.starts_with("completed"))
    });
    assert!(again.contains("survives a crash"), "{again}");

    // A worker restarted from the page comes back with a new process.
    let before = b.wait("the worker to run", LONG, worker_pid);
    b.click("#workers button[data-action=\"restart\"][data-id=\"sdxl\"]");
    message_with(&b, "restarting sdxl");
    b.wait("the restarted worker to run", LONG, |b| {
        worker_pid(b).filter(|p| *p != before)
    });

    // On a phone-sized screen.
    b.resize(390, 844);
    b.screenshot("phone");
    b.resize(1280, 1600);
    let shot = b.screenshot("console");
    eprintln!("screenshots in {}", shot.parent().unwrap_or(&shots).display());
}

/// What a page on another site could send: refused, with or without a cookie.
#[test]
fn actions_are_refused_without_the_token_and_from_other_sites() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut env = token();
    env.push(("EASEL_POLL", "100ms".into()));
    let worker = procs::Proc::spawn(d, "worker", &["worker", "sdxl", "run"], &env);
    let port = worker.port;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    rt.block_on(async {
        let end = Instant::now() + LONG;
        let state: Value = loop {
            if let Ok(r) = http.get(format!("{base}/console/api/state")).send().await {
                let v: Value = r.json().await.unwrap();
                if v["workers"][0]["ready"] == true {
                    break v;
                }
            }
            assert!(Instant::now() < end, "the lone worker's console never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(state["title"].as_str().unwrap().starts_with("worker "), "{state}");
        assert_eq!(state["workers"][0]["state"], "ready");
        let page = http.get(format!("{base}/")).send().await.unwrap();
        let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(page.text().await.unwrap().contains("Easel console"));

        let post = |path: &str| http.post(format!("{base}{path}")).header("x-easel-console", "1");
        // No session: refused.
        let r = post("/console/api/jobs/nope/cancel").send().await.unwrap();
        assert_eq!(r.status(), 401);
        // From another site (no console header, a foreign Origin): refused before anything.
        let r = http
            .post(format!("{base}/console/api/login"))
            .header("origin", "http://evil.example")
            .body(format!("{{\"token\":\"{TOKEN}\"}}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        // The right token from this origin logs in; the cookie is HttpOnly, SameSite=Strict
        // and never carries the token.
        let r = post("/console/api/login")
            .body(format!("{{\"token\":\"{TOKEN}\"}}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        assert!(!cookie.contains(TOKEN), "{cookie}");
        let session = cookie.split(';').next().unwrap().to_owned();
        // With the cookie but from another site: refused.
        let r = http
            .post(format!("{base}/console/api/jobs/nope/cancel"))
            .header("cookie", &session)
            .header("x-easel-console", "1")
            .header("sec-fetch-site", "cross-site")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        // With the cookie from this origin: the action runs (an unknown job is 404).
        let r = post("/console/api/jobs/nope/cancel")
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        // Purging dead letters: a bad duration is refused, a good request answers how many.
        let r = post("/console/api/dead/purge")
            .header("cookie", &session)
            .body(r#"{"older_than": "soon"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let r = post("/console/api/dead/purge")
            .header("cookie", &session)
            .body(r#"{"older_than": "7d"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["message"], "0 dead letter(s) purged", "{v}");
        // A lone worker cannot restart itself, and says so.
        let r = post("/console/api/workers/sdxl/restart")
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 409);
        let v: Value = r.json().await.unwrap();
        assert!(v["message"].as_str().unwrap().contains("easel up"), "{v}");
        // Files outside the bucket are never served.
        let r = http
            .get(format!("{base}/console/files/..%2F..%2Feasel.db"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    });
}

/// With Supabase Storage (a stub that enforces its auth and signing rules), the console links
/// a finished job's thumbnail by a signed URL that opens it.
#[test]
fn with_remote_storage_the_console_links_thumbnails_by_signed_url() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stub = rt.block_on(support::SupabaseStub::start("service-key"));
    let mut env = token();
    env.extend([
        ("EASEL_POLL", "100ms".into()),
        ("SUPABASE_URL", stub.url.clone()),
        ("SUPABASE_SERVICE_KEY", "service-key".into()),
    ]);
    let worker = procs::Proc::spawn(d, "worker", &["worker", "sdxl", "run"], &env);
    let port = worker.port;
    let id = unique("remote");
    submit(d, &id, "stored far away", 4, 64);
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    rt.block_on(async {
        let end = Instant::now() + LONG;
        let job = loop {
            if let Ok(r) = http.get(format!("{base}/console/api/state")).send().await {
                let v: Value = r.json().await.unwrap_or_default();
                let found = v["recent"]
                    .as_array()
                    .and_then(|a| a.iter().find(|j| j["id"] == id.as_str()).cloned());
                if let Some(job) = found {
                    assert!(v["files"].is_null(), "no local files with remote storage: {v}");
                    break job;
                }
            }
            assert!(Instant::now() < end, "the job never finished\n{}", worker.log());
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(job["status"], "completed", "{job}");
        let key = job["thumbnails"][0].as_str().unwrap();
        let link = job["links"][key].as_str().unwrap_or_else(|| panic!("a link: {job}"));
        assert!(
            link.contains("/storage/v1/object/sign/") && link.contains("token="),
            "{link}"
        );
        let got = http.get(link).send().await.unwrap();
        assert_eq!(got.status(), 200, "{link}");
        assert_eq!(&got.bytes().await.unwrap()[..4], b"RIFF", "the WebP thumbnail");
    });
}
