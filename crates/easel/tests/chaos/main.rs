//! The reliability suite: real `redis-server` (AOF on), the Supabase Storage and callback
//! stand-ins, and `easel worker` processes, put through kills, Redis restarts, outages,
//! fuzzed payloads and a start before Redis. Every scenario must end with nothing lost, no
//! job answered twice, nothing left in a processing list, no crash, and no object outside
//! `<bucket>/<user_id>/<job_id>/`.
//!
//! `cargo test` runs the reduced scale (CI). `scripts/chaos.sh` runs the full scale against
//! the release binary inside a private network namespace and prints the table.

#[path = "../../../easel-worker/tests/support/mod.rs"]
mod support;

mod cluster;
mod fuzz;
mod gate;
mod report;
mod scenarios;

use scenarios::Scale;

async fn run(scale: Scale) {
    if std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").is_err(),
            "redis-server is missing: scripts/test.sh installs it"
        );
        eprintln!("SKIPPED: redis-server is not installed; run ./scripts/test.sh");
        return;
    }
    let mut rows = Vec::new();
    rows.push(scenarios::kills(&scale).await);
    rows.push(scenarios::redis_restarts(&scale).await);
    rows.push(scenarios::outages(&scale).await);
    rows.push(scenarios::fuzzed(&scale).await);
    rows.push(scenarios::before_redis(&scale).await);
    let table = report::table(&rows);
    println!("\n{table}");
    if let Ok(path) = std::env::var("EASEL_CHAOS_REPORT") {
        let _ = std::fs::write(path, &table);
    }
    for r in &rows {
        r.assert_clean();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_fault_scenario_ends_with_nothing_lost_and_nothing_answered_twice() {
    run(Scale::reduced()).await;
}

/// The full scale; `scripts/chaos.sh` runs it (minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn full_reliability_suite() {
    run(Scale::full()).await;
}
