//! `easel bench` as the comparison script uses it: one JSON object with a time for every
//! step, the phases adding up to the total, a real image mean and the peak RSS; bad
//! settings fail with a message before anything is timed.

mod common;

use common::easel;

#[test]
fn json_report_has_every_step_and_phases_that_add_up() {
    // One run: the phases of one run add up to its total; medians of several runs need not
    // (each phase's median may come from another run), which made this flaky under load.
    let o = easel(&[
        "bench", "--json", "--steps", "4", "--batch", "2", "--width", "48", "--height", "32", "--repeat", "1",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(r["impl"], "easel");
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64(), r["batch"].as_u64()),
        (Some(48), Some(32), Some(2))
    );
    let steps: Vec<f64> = r["steps_s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(steps.len(), 4);
    assert!(steps.iter().all(|&s| s > 0.0));
    let parts = r["text_s"].as_f64().unwrap()
        + steps.iter().sum::<f64>()
        + r["other_s"].as_f64().unwrap()
        + r["vae_s"].as_f64().unwrap();
    let total = r["total_s"].as_f64().unwrap();
    assert!(
        (parts - total).abs() < 0.01 + 0.01 * total,
        "phases {parts} vs total {total}"
    );
    assert!((r["per_image_s"].as_f64().unwrap() - total / 2.0).abs() < 1e-9);
    let mean = r["image_mean"].as_f64().unwrap();
    assert!(mean > 0.0 && mean < 1.0, "image mean {mean}");
    assert!(r["peak_rss_bytes"].as_u64().unwrap() > 1 << 20);
    assert!(r["peak_device_bytes"].is_null(), "no device memory on the CPU");
}

#[test]
fn bad_settings_are_refused_with_a_message() {
    let o = easel(&["bench", "--batch", "7"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("num_images must be between 1 and 6"));
    let o = easel(&["bench", "--dtype", "f8"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("f8"));
}
