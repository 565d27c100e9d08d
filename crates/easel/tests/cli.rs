//! The command line's shared surface, as a new user meets it: every command's help has
//! examples, completions and a man page are generated, `NO_COLOR` removes every colour,
//! usage errors exit 2 with clap's message, flag values are refused before the model loads
//! (with a suggestion that is valid), `compel` is refused, and `generate --json` prints one
//! object with the paths and seeds.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::easel;

const EASEL: &str = env!("CARGO_BIN_EXE_easel");

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts `o` is a clap-style usage error (exit 2) whose message contains `needle`.
fn assert_usage_error(o: &Output, what: &str, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{what}: {err}");
    assert!(err.starts_with("error: "), "{what}: {err}");
    assert!(err.contains("For more information, try '--help'."), "{what}: {err}");
    assert!(err.contains(needle), "{what}: expected {needle:?} in {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
}

#[test]
fn every_command_and_subcommand_help_has_examples() {
    let commands: &[&[&str]] = &[
        &[],
        &["generate"],
        &["worker"],
        &["worker", "sdxl", "run"],
        &["worker", "sdxl", "start"],
        &["worker", "sdxl", "describe"],
        &["submit"],
        &["up"],
        &["orchestrate"],
        &["status"],
        &["models"],
        &["models", "inspect"],
        &["bench"],
        &["completions"],
        &["man"],
    ];
    for cmd in commands {
        for flag in ["--help", "-h"] {
            let mut args = cmd.to_vec();
            args.push(flag);
            let o = easel(&args);
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(o.status.success(), "{args:?}: {}", stderr(&o));
            assert!(
                out.contains("\nExamples:\n  easel "),
                "{args:?} has no examples:\n{out}"
            );
        }
    }
}

#[test]
fn worker_run_lists_its_aliases_once_and_the_model_help_is_true() {
    let o = easel(&["worker", "sdxl", "--help"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("[aliases: start, serve, launch]"), "{out}");
    let entries = out.lines().filter(|l| l.trim_start().starts_with("start ")).count();
    assert_eq!(entries, 0, "start is an alias, not an entry of its own:\n{out}");
    let o = easel(&["worker", "sdxl", "run", "--help"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("single-file SDXL checkpoint (.safetensors)"), "{out}");
}

#[test]
fn bench_uses_generate_flag_names_and_lists_the_old_ones_as_aliases() {
    let o = easel(&["bench", "--help"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("--negative <NEGATIVE>") && out.contains("[alias: --negative-prompt]"),
        "{out}"
    );
    assert!(
        out.contains("--num-images <NUM_IMAGES>") && out.contains("[alias: --batch]"),
        "{out}"
    );
    let o = easel(&["bench", "--num-images", "7"]);
    assert_usage_error(&o, "bench --num-images 7", "num_images must be between 1 and 6, got 7");
}

#[test]
fn completions_are_a_script_for_the_shell() {
    let o = easel(&["completions", "bash"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let script = String::from_utf8(o.stdout).unwrap();
    assert!(script.contains("_easel()"), "{script}");
    assert!(script.contains("complete -F _easel"), "{script}");
    assert!(
        script.contains("--num-images") && script.contains("completions"),
        "{script}"
    );
    let o = easel(&["completions", "zsh"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("#compdef easel"));
    assert_usage_error(&easel(&["completions", "tcsh"]), "completions tcsh", "tcsh");
}

#[test]
fn the_man_page_is_roff_on_stdout_or_one_page_per_command_in_a_folder() {
    let o = easel(&["man"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = String::from_utf8(o.stdout).unwrap();
    assert!(page.contains(".TH easel 1") && page.contains("generate"), "{page}");
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    let o = easel(&["man", "--dir", pages.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    for name in ["easel.1", "easel-generate.1", "easel-worker-run.1", "easel-bench.1"] {
        let text = std::fs::read_to_string(pages.join(name)).unwrap_or_default();
        assert!(text.contains(".TH"), "{name} missing or not roff: {text}");
    }
}

/// Runs `easel ARGS` under a pseudo-terminal (util-linux `script`), where colour is on
/// unless asked off; returns everything it wrote. `None` where `script` is absent.
fn on_a_terminal(args: &str, no_color: bool, out: &Path) -> Option<Vec<u8>> {
    let mut c = Command::new("script");
    c.args(["-qec", &format!("{EASEL} {args}"), "/dev/null"])
        .current_dir(out)
        .env("EASEL_LOG", "info")
        .env_remove("EASEL_MODEL")
        .env_remove("NO_COLOR");
    if no_color {
        c.env("NO_COLOR", "1");
    }
    c.output().ok().filter(|o| o.status.code().is_some()).map(|o| o.stdout)
}

/// Whether `bytes` hold an SGR (colour) sequence, ESC [ digits/semicolons m.
fn has_colour(bytes: &[u8]) -> bool {
    bytes.windows(2).enumerate().any(|(i, w)| {
        w == b"\x1b[" && {
            let rest = &bytes[i + 2..];
            let n = rest.iter().take_while(|b| b.is_ascii_digit() || **b == b';').count();
            rest.get(n) == Some(&b'm')
        }
    })
}

#[test]
fn no_color_removes_every_colour_from_help_errors_logs_and_progress() {
    let dir = tempfile::tempdir().unwrap();
    let help = "generate --help";
    let error = "generate x --width 63";
    let run = "generate x --steps 2 --out out";
    let Some(coloured) = on_a_terminal(error, false, dir.path()) else {
        // Without a pseudo-terminal nothing is coloured anyway; check the plain streams.
        let o = easel(&["generate", "x", "--width", "63"]);
        assert!(!o.stderr.contains(&0x1b), "{}", stderr(&o));
        return;
    };
    assert!(has_colour(&coloured), "a terminal gets colour without NO_COLOR");
    let logs = on_a_terminal(run, false, dir.path()).unwrap_or_default();
    assert!(has_colour(&logs), "logs on a terminal are coloured without NO_COLOR");
    for args in [help, error] {
        let plain = on_a_terminal(args, true, dir.path()).unwrap_or_default();
        assert!(!plain.is_empty(), "{args}: no output");
        assert!(
            !plain.contains(&0x1b),
            "{args} with NO_COLOR=1 wrote escape bytes: {:?}",
            String::from_utf8_lossy(&plain)
        );
    }
    // The progress bar still redraws its line (ESC [2K), but nothing is coloured.
    let plain = on_a_terminal(run, true, dir.path()).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&plain).contains("model loaded"),
        "logs were written"
    );
    assert!(!has_colour(&plain), "{:?}", String::from_utf8_lossy(&plain));
    // An empty NO_COLOR does not count (no-color.org).
    let mut c = Command::new("script");
    c.args(["-qec", &format!("{EASEL} {error}"), "/dev/null"])
        .env("NO_COLOR", "");
    let empty = c.output().unwrap();
    assert!(has_colour(&empty.stdout), "an empty NO_COLOR leaves colour on");
}

#[test]
fn usage_errors_exit_2_with_a_clap_style_message() {
    let cases: &[(&[&str], &str)] = &[
        (&["worker", "foo", "run"], "invalid value 'foo' for '<KIND>'"),
        (&["worker", "sdxl", "bogus"], "unexpected argument 'bogus'"),
        (
            &["worker", "sdxl", "run", "--port", "http"],
            "invalid value 'http' for '--port <PORT>'",
        ),
        (&["generate"], "<PROMPT>"),
        (
            &["generate", "x", "--steps", "many"],
            "invalid value 'many' for '--steps <STEPS>'",
        ),
        (&["generate", "x", "--scheduler", "k_lms"], "valid schedulers: euler"),
        (&["generate", "x", "--dtype", "f8"], "use f32, f16 or bf16"),
        (&["generate", "x", "--dtype", "bf16"], "bf16 is not supported on CPU"),
        (&["generate", "x", "--device", "tpu"], "use `cpu`, `cuda` or `cuda:N`"),
        (
            &["generate", "x", "--steps", "0"],
            "steps must be between 1 and 1000, got 0",
        ),
        (
            &["generate", "x", "--guidance=-1"],
            "guidance must be a finite number ≥ 0",
        ),
        (
            &["generate", "x", "--num-images", "9"],
            "num_images must be between 1 and 6, got 9",
        ),
        (&["bench", "--width", "63"], "try 64"),
        (&["submit"], "--prompt <PROMPT>"),
        (&["submit", "--prompt", "x", "--num-images", "7"], "7 is not in 1..=6"),
        (&["status", "--bogus"], "unexpected argument '--bogus'"),
    ];
    for (args, needle) in cases {
        assert_usage_error(&easel(args), &format!("{args:?}"), needle);
    }
}

#[test]
fn flag_values_are_refused_before_the_model_loads_with_a_valid_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // The model does not exist: a check made after loading would report the model instead.
    let cases: &[(&[&str], &str)] = &[
        (
            &["--width", "63"],
            "width 63 is not a positive multiple of 8 up to 4096: try 64",
        ),
        (
            &["--width", "8192"],
            "width 8192 is not a positive multiple of 8 up to 4096: try 4096",
        ),
        (
            &["--height", "0"],
            "height 0 is not a positive multiple of 8 up to 4096: try 8",
        ),
        (&["--height", "4100"], "try 4096"),
        (&["--steps", "1001"], "steps must be between 1 and 1000"),
        (
            &["--init-image", "/nonexistent.png", "--strength", "2"],
            "strength must be in (0, 1], got 2",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = vec![
            "generate",
            "x",
            "--model",
            "/nonexistent-model",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = easel(&args);
        assert_usage_error(&o, &format!("{extra:?}"), needle);
        assert!(!stderr(&o).contains("nonexistent-model"), "{extra:?}: {}", stderr(&o));
    }
}

/// A folder this process cannot create files in: a read-only folder, or where permissions
/// do not bind (root), a read-only system folder.
fn unwritable_dir(tmp: &Path) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let ro = tmp.join("read-only");
    std::fs::create_dir(&ro).ok()?;
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).ok()?;
    let writable = |d: &Path| {
        let probe = d.join("probe");
        let ok = std::fs::File::create(&probe).is_ok();
        let _ = std::fs::remove_file(&probe);
        ok
    };
    [ro, "/sys".into(), "/proc".into()]
        .into_iter()
        .find(|d| d.is_dir() && !writable(d))
}

#[test]
fn an_output_folder_that_cannot_be_written_is_refused_before_generation() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let under_a_file = file.join("out");
    let mut outs = vec![(under_a_file, "cannot create the folder")];
    if let Some(ro) = unwritable_dir(dir.path()) {
        outs.push((ro, "cannot write in the folder"));
    }
    for (out, needle) in &outs {
        let o = easel(&[
            "generate",
            "x",
            "--model",
            "/nonexistent-model",
            "--out",
            out.to_str().unwrap(),
        ]);
        let what = format!("--out {}", out.display());
        assert_usage_error(&o, &what, needle);
        assert!(stderr(&o).contains(&format!("invalid value '{}' for '--out'", out.display())));
        assert!(!stderr(&o).contains("nonexistent-model"), "{what}: {}", stderr(&o));
    }
    assert_eq!(outs.len(), 2, "no unwritable folder found to test with");
}

#[test]
fn compel_is_refused_and_says_what_to_use() {
    let o = easel(&[
        "generate",
        "x",
        "--prompt-mode",
        "compel",
        "--model",
        "/nonexistent-model",
    ]);
    assert_usage_error(&o, "--prompt-mode compel", "prompt mode `compel` is not supported");
    assert!(stderr(&o).contains("use `a1111`"), "{}", stderr(&o));
}

#[test]
fn generate_json_is_one_object_with_paths_seeds_size_and_timings() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = easel(&[
        "generate",
        "a lighthouse",
        "--steps",
        "2",
        "--seed",
        "5",
        "--num-images",
        "2",
        "--width",
        "48",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is one JSON object");
    let paths: Vec<&str> = r["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(paths.len(), 2);
    for p in &paths {
        let img = image::open(p).unwrap();
        assert_eq!((img.width(), img.height()), (48, 64), "{p}");
    }
    assert!(
        paths[0].ends_with("-5.png") && paths[1].ends_with("-6.png"),
        "{paths:?}"
    );
    assert_eq!(r["seeds"], serde_json::json!([5, 6]));
    assert_eq!((r["width"].as_u64(), r["height"].as_u64()), (Some(48), Some(64)));
    assert_eq!(r["steps"], 2);
    assert_eq!(r["model"], "the bundled tiny SDXL");
    let t = &r["timings"];
    for phase in ["load_s", "text_s", "denoise_s", "decode_s", "write_s", "total_s"] {
        assert!(t[phase].as_f64().is_some_and(|s| s >= 0.0), "{phase}: {t}");
    }
    let parts: f64 = ["load_s", "text_s", "denoise_s", "decode_s", "write_s"]
        .iter()
        .map(|k| t[*k].as_f64().unwrap())
        .sum();
    assert!(parts <= t["total_s"].as_f64().unwrap() + 1e-6, "{t}");
}
