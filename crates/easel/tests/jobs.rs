//! `easel jobs` and `easel submit --wait` as a user runs them, beside a worker process, on the
//! embedded defaults and on a real Redis: a running job's step advances in `jobs list --json`;
//! `jobs cancel` stops it and its `failed`/`cancelled` outcome is recorded within 2 s while
//! the worker goes on with the next job; cancelling it again, or an unknown id, fails; a job
//! with `timeout_secs: 1` ends `timeout`; `submit --wait` shows progress; a dead letter (a job
//! whose worker was killed once too often) is retried with `jobs retry` and completes.

mod procs;
#[path = "../../easel-worker/tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use procs::{easel, Proc};
use serde_json::Value;
use support::{service, unique, DEADLINE};

fn run(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    easel(dir, args, env).output().expect("easel runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)))
}

/// Polls `f` every 100 ms until it gives a value (bounded by [`DEADLINE`]).
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn running_step(dir: &Path, env: &[(&str, String)], id: &str) -> Option<u64> {
    let v = json_of(&run(dir, &["jobs", "list", "--state", "running", "--json"], env));
    let jobs = v["jobs"].as_array()?.clone();
    jobs.iter().find(|j| j["id"] == id)?["progress"]["step"].as_u64()
}

fn outcome(dir: &Path, env: &[(&str, String)], id: &str) -> Option<Value> {
    let out = run(dir, &["jobs", "show", id, "--json"], env);
    let v = json_of(&out);
    (!v["outcome"].is_null()).then(|| v["outcome"].clone())
}

/// The whole job-control story on one backend (`env` names it; empty: the embedded queue).
fn story(backend: &[(&str, String)]) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut env = backend.to_vec();
    env.push(("EASEL_POLL", "50ms".into()));
    let mut w = Proc::spawn(d, "worker", &["worker", "sdxl", "run"], &env);
    futures_block(w.wait_ready());
    let (long, next) = (unique("long"), unique("next"));
    let big = ["--width", "256", "--height", "256"];
    let submit = |id: &str, steps: &str, more: &[&str]| {
        let mut args = vec!["submit", "--prompt", "a lighthouse", "--id", id, "--steps", steps];
        args.extend_from_slice(more);
        let out = run(d, &args, &env);
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    submit(&long, "200", &big);
    submit(&next, "2", &[]);

    let first = wait_for("the long job to run", || {
        running_step(d, &env, &long).filter(|s| *s >= 1)
    });
    let later = wait_for("its step to advance", || {
        running_step(d, &env, &long).filter(|s| *s > first)
    });
    assert!(later > first);

    let asked = Instant::now();
    let out = run(d, &["jobs", "cancel", &long], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("running"), "{}", text(&out.stdout));
    let o = wait_for("the cancelled outcome", || outcome(d, &env, &long));
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(2), "the outcome took {took:?}");
    assert_eq!(
        (o["status"].as_str(), o["metadata"]["error_type"].as_str()),
        (Some("failed"), Some("cancelled"))
    );
    let o = wait_for("the next job", || outcome(d, &env, &next));
    assert_eq!(o["status"], "completed", "the worker went on: {o}");

    let again = run(d, &["jobs", "cancel", &long], &env);
    assert!(!again.status.success() && text(&again.stderr).contains("already finished"));
    let unknown = run(d, &["jobs", "cancel", "no-such-job"], &env);
    assert!(!unknown.status.success() && text(&unknown.stderr).contains("no job no-such-job"));

    let slow = unique("slow");
    let mut args = vec!["--job-timeout", "1"];
    args.extend_from_slice(&big);
    submit(&slow, "150", &args);
    // `--follow` returns once the job has ended, with its history and outcome.
    let followed = json_of(&run(d, &["jobs", "show", &slow, "--follow", "--json"], &env));
    assert_eq!(followed["outcome"]["metadata"]["error_type"], "timeout", "{followed}");
    let states: Vec<&str> = followed["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["state"].as_str())
        .collect();
    assert!(
        states.contains(&"queued") && states.last() == Some(&"done"),
        "{states:?}"
    );

    let out = run(
        d,
        &[
            "submit", "--prompt", "a fox", "--steps", "30", "--width", "256", "--height", "256", "--wait",
        ],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("progress: denoising"),
        "{}",
        text(&out.stderr)
    );

    w.signal("-TERM");
    assert_eq!(futures_block(w.wait_exit()).code(), Some(0), "{}", w.log());
}

fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn jobs_are_listed_cancelled_and_timed_out_on_the_embedded_queue() {
    story(&[]);
}

#[test]
fn jobs_are_listed_cancelled_and_timed_out_on_redis() {
    let Some(url) = service("EASEL_TEST_REDIS_URL") else {
        return;
    };
    story(&[("EASEL_QUEUE_URL", url), ("EASEL_QUEUE_NAME", unique("q"))]);
}

#[test]
fn a_dead_letter_is_retried_and_completes_on_the_embedded_queue() {
    dead_letter_story(&[]);
}

#[test]
fn a_dead_letter_is_retried_and_completes_on_redis() {
    let Some(url) = service("EASEL_TEST_REDIS_URL") else {
        return;
    };
    dead_letter_story(&[("EASEL_QUEUE_URL", url), ("EASEL_QUEUE_NAME", unique("q"))]);
}

/// A job whose worker is killed once too often is dead-lettered, retried, and completes.
fn dead_letter_story(backend: &[(&str, String)]) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut env = backend.to_vec();
    env.extend([
        ("EASEL_GENERATOR", "fake".to_string()),
        ("EASEL_POLL", "50ms".into()),
        ("EASEL_LEASE_TTL", "1s".into()),
        ("EASEL_MAX_DELIVERIES", "1".into()),
    ]);
    let mut slow_env = env.clone();
    slow_env.push(("EASEL_FAKE_DELAY", "600s".into()));
    let mut a = Proc::spawn(d, "a", &["worker", "sdxl", "run"], &slow_env);
    futures_block(a.wait_ready());
    let id = unique("dead");
    let out = run(d, &["submit", "--prompt", "p", "--id", &id], &env);
    assert!(out.status.success());
    wait_for("worker a to take the job", || running_step(d, &env, &id).map(|_| ()));
    // Worker a dies mid-job; worker b takes the job over, past the delivery limit: dead letter.
    a.signal("-KILL");
    let mut b = Proc::spawn(d, "b", &["worker", "sdxl", "run"], &env);
    futures_block(b.wait_ready());
    let dead = wait_for("the dead letter", || {
        let v = json_of(&run(d, &["jobs", "list", "--state", "dead", "--json"], &env));
        v["jobs"].as_array()?.iter().find(|j| j["id"] == id.as_str()).cloned()
    });
    assert!(
        dead["dead_reason"].as_str().unwrap_or("").contains("delivered"),
        "{dead}"
    );
    let out = run(d, &["jobs", "retry", &id], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let o = wait_for("the retried job to complete", || {
        outcome(d, &env, &id).filter(|o| o["status"] == "completed")
    });
    assert_eq!(o["job_id"], id.as_str());
    let out = run(d, &["jobs", "retry", &id], &env);
    assert!(!out.status.success() && text(&out.stderr).contains("not a dead letter"));
    let out = run(d, &["jobs", "purge", "--dead"], &env);
    assert!(
        out.status.success() && text(&out.stdout).contains("0 dead letter(s) purged"),
        "{}",
        text(&out.stdout)
    );
    b.signal("-TERM");
    assert_eq!(futures_block(b.wait_exit()).code(), Some(0), "{}", b.log());
}
