//! Why this exists: the promise every command makes about settings — flags beat the
//! environment, which beats `easel.toml`, which beats the defaults — and that the data home
//! never depends on the working directory, checked end to end through a real file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use easel_config::house::Config;
use easel_config::show;
use easel_config::{ConfigFile, Layers, Source, WorkerConfig};

fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
}

fn file(dir: &Path, text: &str) -> ConfigFile {
    let path = dir.join("easel.toml");
    std::fs::write(&path, text).expect("write easel.toml");
    ConfigFile::read(&path).expect("read easel.toml")
}

const FILE: &str = r#"
data_dir = "state"

[worker]
port = 7000
queue_name = "from_file"
lease_ttl = "45s"
poll = "250ms"

[orchestrator]
shutdown_timeout = "3m"

[[workers]]
name = "sdxl"
kind = "sdxl"
stop_grace = "2m"
"#;

#[test]
fn flags_beat_environment_beat_file_beat_defaults_and_each_origin_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let f = file(dir.path(), FILE);
    let flags = [("port", "9000".to_string())];
    let e = [
        ("WORKER_PORT", "8000"),
        ("EASEL_QUEUE_NAME", "from_env"),
        ("HOME", "/home/u"),
    ];
    let l = Layers::resolve(&flags, &env(&e), Some(f.clone())).unwrap();
    let c = WorkerConfig::from_layers(&l).unwrap();
    assert_eq!(c.port, 9000);
    assert_eq!(l.source("port"), Source::Flag);
    assert_eq!(c.queue_name, "from_env");
    assert_eq!(l.source("queue_name"), Source::Env("EASEL_QUEUE_NAME"));
    assert_eq!(c.timing.lease_ttl, Duration::from_secs(45));
    assert!(matches!(l.source("lease_ttl"), Source::File { table: "worker", .. }));
    assert_eq!(c.timing.poll, Duration::from_millis(250));
    assert_eq!(c.max_deliveries, 3);
    assert_eq!(l.source("max_deliveries"), Source::Default);
    // A relative data_dir is taken from the file's directory, not the working directory.
    let home = std::fs::canonicalize(dir.path()).unwrap_or_else(|_| dir.path().to_path_buf());
    assert!(c.data_dir.ends_with("state"), "{}", c.data_dir.display());
    assert_eq!(std::fs::canonicalize(c.data_dir.parent().unwrap()).unwrap(), home);
    assert!(matches!(l.source("data_dir"), Source::File { table: "", .. }));
}

#[test]
fn the_data_home_is_the_environment_then_the_file_then_the_platform_directory() {
    let dir = tempfile::tempdir().unwrap();
    let e = [("HOME", "/home/u"), ("EASEL_DATA_DIR", "/srv/easel")];
    let l = Layers::resolve(&[], &env(&e), Some(file(dir.path(), FILE))).unwrap();
    assert_eq!(
        WorkerConfig::from_layers(&l).unwrap().data_dir,
        PathBuf::from("/srv/easel")
    );

    let e = [("HOME", "/home/u"), ("XDG_DATA_HOME", "/xdg")];
    let l = Layers::resolve(&[], &env(&e), None).unwrap();
    assert_eq!(
        WorkerConfig::from_layers(&l).unwrap().data_dir,
        PathBuf::from("/xdg/easel")
    );

    let l = Layers::resolve(&[], &env(&[("HOME", "/home/u")]), None).unwrap();
    let data = WorkerConfig::from_layers(&l).unwrap().data_dir;
    assert!(
        data.starts_with("/home/u") && data.ends_with("easel"),
        "{}",
        data.display()
    );

    let err = WorkerConfig::from_layers(&Layers::resolve(&[], &env(&[]), None).unwrap()).unwrap_err();
    assert!(err.to_string().contains("EASEL_DATA_DIR"), "{err}");
}

#[test]
fn old_integer_spellings_still_work_with_a_deprecation_note() {
    let dir = tempfile::tempdir().unwrap();
    let f = file(dir.path(), "[worker]\npoll_ms = 1500\nlease_ttl_secs = 20\n");
    let e = [("HOME", "/home/u"), ("EASEL_UPLOAD_BUDGET_SECS", "7")];
    let l = Layers::resolve(&[], &env(&e), Some(f)).unwrap();
    let t = WorkerConfig::from_layers(&l).unwrap().timing;
    assert_eq!(t.poll, Duration::from_millis(1500));
    assert_eq!(t.lease_ttl, Duration::from_secs(20));
    assert_eq!(t.upload_budget, Duration::from_secs(7));
    let notes = l.notes().join("\n");
    assert!(
        notes.contains("poll_ms is deprecated") && notes.contains("poll = \"1500ms\""),
        "{notes}"
    );
    assert!(
        notes.contains("EASEL_UPLOAD_BUDGET_SECS") && notes.contains("EASEL_UPLOAD_BUDGET=\"7s\""),
        "{notes}"
    );
    // The new spelling wins over the old one.
    let e = [("HOME", "/home/u"), ("EASEL_POLL", "3s"), ("EASEL_POLL_MS", "10")];
    let l = Layers::resolve(&[], &env(&e), None).unwrap();
    assert_eq!(
        WorkerConfig::from_layers(&l).unwrap().timing.poll,
        Duration::from_secs(3)
    );
}

#[test]
fn one_duration_syntax_is_used_in_every_section() {
    let dir = tempfile::tempdir().unwrap();
    let f = file(dir.path(), FILE);
    let house = f.orchestrator().unwrap();
    assert_eq!(house.orchestrator.shutdown_timeout, Duration::from_secs(180));
    assert_eq!(house.workers[0].stop_grace, Duration::from_secs(120));
    let bad = "[worker]\nlease_ttl = \"forever\"\n";
    let l = Layers::resolve(&[], &env(&[("HOME", "/h")]), Some(file(dir.path(), bad))).unwrap();
    let err = WorkerConfig::from_layers(&l).unwrap_err().to_string();
    assert!(err.contains("lease_ttl") && err.contains("\"30s\""), "{err}");
}

#[test]
fn config_show_names_every_value_with_its_origin_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let f = file(dir.path(), FILE);
    let house = Config::from_schema(f.schema.clone(), easel_config::house::Origin::File(f.path.clone())).unwrap();
    let e = [
        ("HOME", "/home/u"),
        ("EASEL_QUEUE_URL", "redis://default:hunter2hunter2@127.0.0.1:6379"),
        ("SUPABASE_URL", "https://x.supabase.co"),
        ("SUPABASE_SERVICE_KEY", "service-role-secret-value"),
    ];
    let l = Layers::resolve(&[], &env(&e), Some(f)).unwrap();
    let rows = show::rows(&l, &house);
    let text = show::render(&rows, l.notes());
    assert!(
        !text.contains("hunter2") && !text.contains("service-role-secret"),
        "{text}"
    );
    let find = |section: &str, key: &str| rows.iter().find(|r| r.section == section && r.key == key).unwrap();
    assert!(find("worker", "queue_url").origin.contains("EASEL_QUEUE_URL"));
    assert!(find("worker", "lease_ttl").origin.contains("[worker]"));
    assert_eq!(find("worker", "max_deliveries").origin, "the default");
    assert!(find("orchestrator", "shutdown_timeout")
        .origin
        .contains("[orchestrator]"));
    assert_eq!(find("orchestrator", "listen").origin, "the default");
    assert!(find("workers.sdxl", "stop_grace").origin.contains("[[workers]] #1"));
    assert_eq!(find("workers.sdxl", "stop_grace").value.as_deref(), Some("2m"));
    assert_eq!(find("worker", "model").value, None);
    // Every setting of the table has a row.
    assert_eq!(
        rows.iter()
            .filter(|r| r.section == "worker" || r.section.is_empty())
            .count(),
        easel_config::settings::SETTINGS.len()
    );
}

#[test]
fn config_show_lists_each_worker_of_a_gpus_table_with_its_device_and_port() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[[workers]]\nname = \"video\"\ncommand = [\"v\"]\nport = 7000\n\n[[workers]]\nname = \"sdxl\"\nkind = \"sdxl\"\ngpus = [0, 2]\nstop_grace = \"2m\"\n";
    let f = file(dir.path(), text);
    let house = f.orchestrator().unwrap();
    let l = Layers::resolve(&[], &env(&[("HOME", "/home/u")]), Some(f)).unwrap();
    let rows = show::rows(&l, &house);
    let find = |section: &str, key: &str| {
        rows.iter()
            .find(|r| r.section == section && r.key == key)
            .unwrap_or_else(|| panic!("no {section} {key} in {rows:#?}"))
    };
    let path = dir.path().join("easel.toml").display().to_string();
    assert_eq!(find("workers.sdxl-gpu0", "device").value.as_deref(), Some("cuda:0"));
    assert_eq!(find("workers.sdxl-gpu2", "device").value.as_deref(), Some("cuda:2"));
    assert_eq!(
        find("workers.sdxl-gpu2", "device").origin,
        format!("{path} [[workers]] #2 gpus = [0, 2]")
    );
    assert_eq!(find("workers.sdxl-gpu0", "port").value.as_deref(), Some("7859"));
    assert_eq!(find("workers.sdxl-gpu0", "port").origin, "the default");
    assert_eq!(find("workers.sdxl-gpu2", "port").value.as_deref(), Some("7860"));
    assert_eq!(find("workers.sdxl-gpu2", "port").origin, "the default + 1 (gpus)");
    assert_eq!(
        find("workers.sdxl-gpu2", "stop_grace").origin,
        format!("{path} [[workers]] #2"),
        "the table's own values are traced to the table"
    );
    assert!(rows.iter().all(|r| r.section != "workers.video" || r.key != "device"));
    assert!(
        rows.iter().all(|r| r.section != "workers.sdxl"),
        "the table itself is not a worker"
    );
}
