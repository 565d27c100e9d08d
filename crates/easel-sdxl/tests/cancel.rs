//! Cancelling a generation: it stops within one step (before the next UNet step, before the VAE
//! decode), returns `Error::Cancelled`, and leaves the loaded model as it was — the next
//! request's images equal those of a run that was never interrupted.

mod common;

use easel_sdxl::cancel::Cancel;
use easel_sdxl::noise::SeededNoise;
use easel_sdxl::pipeline::GenerateRequest;
use easel_sdxl::Error;

const STEPS: usize = 6;

fn request() -> GenerateRequest {
    let mut r = GenerateRequest::new("a lighthouse", 64, 64);
    r.steps = STEPS;
    r.seed = 7;
    r.num_images = 2;
    r
}

fn fresh_images() -> Vec<f32> {
    let req = request();
    let out = common::tiny()
        .generate(&req, &mut SeededNoise::new(req.seed, req.num_images), &mut |_| {})
        .expect("an uninterrupted run");
    out.images.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn a_cancel_at_step_k_stops_before_step_k_plus_one_and_the_model_is_unchanged() {
    let want = fresh_images();
    for k in [1, 3, STEPS] {
        let mut req = request();
        let cancel = Cancel::new();
        req.cancel = Some(cancel.clone());
        let mut steps_run = 0;
        let r = common::tiny().generate(&req, &mut SeededNoise::new(req.seed, req.num_images), &mut |p| {
            steps_run = p.step;
            if p.step == k {
                cancel.cancel();
            }
        });
        match r {
            Err(Error::Cancelled { done, total }) => {
                assert_eq!(steps_run, k, "no step runs after the cancel");
                assert_eq!((done, total), (k, STEPS), "k = {k}");
            }
            Err(e) => panic!("k = {k}: expected a cancellation, got {e}"),
            Ok(_) => panic!("k = {k}: the generation ran to the end"),
        }
        assert_eq!(
            fresh_images(),
            want,
            "after a cancel at step {k}, the next run is bit for bit a fresh one"
        );
    }
}

#[test]
fn a_flag_set_before_the_start_runs_no_step() {
    let mut req = request();
    let cancel = Cancel::new();
    cancel.cancel();
    req.cancel = Some(cancel);
    let mut steps = 0;
    let r = common::tiny().generate(&req, &mut SeededNoise::new(0, 2), &mut |_| steps += 1);
    assert!(matches!(r, Err(Error::Cancelled { done: 0, .. })), "{:?}", r.err());
    assert_eq!(steps, 0);
}
