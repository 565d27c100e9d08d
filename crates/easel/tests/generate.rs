//! `easel generate` as a user runs it: it writes PNGs with their parameters, prints
//! their paths, is reproducible from the seed (image i of a batch equals a single run
//! with seed + i), takes init images and latents files, and fails with a clear message
//! and a non-zero exit on bad input.

mod common;

use common::easel;
use std::path::{Path, PathBuf};

/// Runs `easel generate` into `out` and returns the printed paths.
fn generate(out: &Path, extra: &[&str]) -> Vec<PathBuf> {
    let mut args = vec![
        "generate",
        "a lighthouse at dusk",
        "--steps",
        "3",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = easel(&args);
    assert!(
        o.status.success(),
        "easel failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .collect()
}

fn parameters(png: &Path) -> String {
    easel_sdxl::metadata::read_parameters(&std::fs::read(png).unwrap()).expect("PNG has a parameters chunk")
}

fn pixels(png: &Path) -> Vec<u8> {
    image::open(png).unwrap().to_rgb8().into_raw()
}

/// Equal up to float summation order: batched matmuls may round a rare pixel the
/// other way, so allow one level on at most 0.5% of the values.
fn assert_same_image(a: &Path, b: &Path) {
    let (pa, pb) = (pixels(a), pixels(b));
    assert_eq!(pa.len(), pb.len());
    let off: Vec<u8> = pa
        .iter()
        .zip(&pb)
        .map(|(x, y)| x.abs_diff(*y))
        .filter(|d| *d > 0)
        .collect();
    assert!(
        off.iter().all(|d| *d <= 1),
        "{} and {} differ by more than one level",
        a.display(),
        b.display()
    );
    assert!(
        off.len() * 200 <= pa.len(),
        "{} of {} values differ",
        off.len(),
        pa.len()
    );
}

#[test]
fn generate_writes_a_png_with_a1111_parameters_and_prints_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let paths = generate(dir.path(), &["--seed", "42", "--negative", "fog"]);
    assert_eq!(paths.len(), 1);
    assert!(paths[0].starts_with(dir.path()) && paths[0].is_file());
    let img = image::open(&paths[0]).unwrap();
    assert_eq!((img.width(), img.height()), (64, 64), "the tiny model's native size");
    let p = parameters(&paths[0]);
    assert!(
        p.starts_with("a lighthouse at dusk\nNegative prompt: fog\nSteps: 3, Sampler: Euler"),
        "{p}"
    );
    assert!(p.contains("Seed: 42") && p.contains("Size: 64x64"), "{p}");
}

#[test]
fn image_i_of_a_batch_equals_a_single_run_with_seed_plus_i() {
    let dir = tempfile::tempdir().unwrap();
    let batch = generate(&dir.path().join("batch"), &["--seed", "7", "--num-images", "2"]);
    let single = generate(&dir.path().join("single"), &["--seed", "8"]);
    let again = generate(&dir.path().join("again"), &["--seed", "7"]);
    assert_eq!(batch.len(), 2);
    assert!(parameters(&batch[1]).contains("Seed: 8"));
    assert_same_image(&batch[1], &single[0]);
    assert_same_image(&batch[0], &again[0]);
    assert_ne!(
        pixels(&batch[0]),
        pixels(&batch[1]),
        "different seeds give different images"
    );
}

#[test]
fn outputs_never_overwrite_earlier_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = generate(dir.path(), &["--seed", "1"]);
    let b = generate(dir.path(), &["--seed", "1"]);
    assert_ne!(a[0], b[0]);
    assert!(a[0].is_file() && b[0].is_file());
}

#[test]
fn every_scheduler_runs_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    for s in ["euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "ddim"] {
        let paths = generate(dir.path(), &["--seed", "3", "--scheduler", s]);
        assert!(paths[0].is_file(), "{s}");
    }
}

#[test]
fn image_to_image_takes_the_init_image_size_and_records_the_strength() {
    let dir = tempfile::tempdir().unwrap();
    let init = image::RgbImage::from_fn(48, 40, |x, y| image::Rgb([(x * 5) as u8, (y * 6) as u8, 128]));
    let init_path = dir.path().join("init.png");
    init.save(&init_path).unwrap();
    let paths = generate(
        &dir.path().join("out"),
        &["--init-image", init_path.to_str().unwrap(), "--strength", "0.7"],
    );
    let img = image::open(&paths[0]).unwrap();
    assert_eq!((img.width(), img.height()), (48, 40));
    assert!(parameters(&paths[0]).contains("Denoising strength: 0.7"));
}

#[test]
fn a_latents_file_sets_the_batch_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let dev = candle_core::Device::Cpu;
    let latents = candle_core::Tensor::randn(0f32, 1f32, (2, 4, 5, 6), &dev).unwrap();
    let file = dir.path().join("latents.safetensors");
    candle_core::safetensors::save(
        &std::collections::HashMap::from([("latents".to_string(), latents)]),
        &file,
    )
    .unwrap();
    let paths = generate(&dir.path().join("out"), &["--latents", file.to_str().unwrap()]);
    assert_eq!(paths.len(), 2);
    let img = image::open(&paths[0]).unwrap();
    assert_eq!((img.width(), img.height()), (48, 40));
}

#[test]
fn save_latents_writes_the_final_latents_of_every_image() {
    let dir = tempfile::tempdir().unwrap();
    let read = |name: &str| {
        let file = dir.path().join(name);
        let mut t = candle_core::safetensors::load(&file, &candle_core::Device::Cpu).unwrap();
        t.remove("latents").expect("a tensor named latents")
    };
    let run = |seed: &str, name: &str| {
        let file = dir.path().join(name);
        let args = [
            "--num-images",
            "2",
            "--seed",
            seed,
            "--save-latents",
            file.to_str().unwrap(),
        ];
        generate(&dir.path().join("out"), &args)
    };
    let paths = run("7", "a.safetensors");
    assert_eq!(paths.len(), 2);
    let a = read("a.safetensors");
    // The bundled tiny model draws 64x64: latents are an eighth of that, 4 channels, f32.
    assert_eq!(a.dims(), &[2, 4, 8, 8]);
    assert_eq!(a.dtype(), candle_core::DType::F32);
    let values = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(values.iter().all(|v| v.is_finite()));
    // The same seed gives the same latents; another seed other latents.
    run("7", "b.safetensors");
    run("8", "c.safetensors");
    let diff = |x: &candle_core::Tensor, y: &candle_core::Tensor| {
        (x - y)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    assert!(diff(&a, &read("b.safetensors")) < 1e-5);
    assert!(diff(&a, &read("c.safetensors")) > 1e-2);
}

#[test]
fn bad_input_exits_non_zero_with_a_message_that_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--width", "100"], "width 100 is not a positive multiple of 8"),
        (&["--steps", "0"], "steps must be between 1"),
        (&["--scheduler", "k_lms"], "valid schedulers: euler"),
        (
            &["--init-image", "/nonexistent.png"],
            "cannot use image /nonexistent.png",
        ),
        (
            &["--init-image", "/nonexistent.png", "--strength", "2"],
            "strength must be in (0, 1], got 2",
        ),
        (&["--model", "/nonexistent-model"], "pass a diffusers model folder"),
        (&["--dtype", "f8"], "use f32, f16 or bf16"),
        (&["--dtype", "bf16"], "bf16 is not supported on CPU"),
        (&["--device", "tpu"], "use `cpu`, `cuda` or `cuda:N`"),
        (&["--latents", "/nonexistent.safetensors"], "reading latents file"),
        (
            &["--save-latents", "/proc/easel/final.safetensors"],
            "invalid value '/proc/easel' for '--save-latents': cannot create the folder",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["generate", "x", "--out", out];
        args.extend_from_slice(extra);
        let o = easel(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{extra:?} should fail");
        assert!(stderr.contains(expected), "{extra:?}: stderr was {stderr}");
        assert!(!stderr.contains("panicked"), "{extra:?} panicked: {stderr}");
    }
}

#[test]
fn a_plain_prompt_over_77_tokens_warns_how_many_tokens_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    // 91 one-token words + begin and end: 93 tokens.
    let long = vec!["word"; 91].join(" ");
    let run = |extra: &[&str]| {
        let mut args = vec!["generate", long.as_str(), "--steps", "1", "--out", out];
        args.extend_from_slice(extra);
        let o = easel(&args);
        assert!(
            o.status.success(),
            "easel failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let plain = run(&[]);
    assert!(
        plain.contains(
            "warning: prompt is 93 tokens; plain mode keeps 77, 16 dropped (use --prompt-mode a1111 for long prompts)"
        ),
        "stderr was {plain}"
    );
    let a1111 = run(&["--prompt-mode", "a1111"]);
    assert!(!a1111.contains("dropped"), "a1111 keeps long prompts: {a1111}");
}
