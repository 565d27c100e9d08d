//! Why this exists: `gpus = "all"` or `gpus = [0, 1, 3]` in a `[[workers]]` table runs one
//! built-in worker per GPU. The key is checked here and the table expanded when the config
//! loads (and again on every reload), so that everything downstream — preflight, start order,
//! status, metrics, `easel config show` — sees ordinary workers.
//!
//! The worker of GPU N is named `<name>-gpuN` and runs `easel worker <kind> run <args>
//! --device cuda:N` with `EASEL_WORKER_NAME=<name>-gpuN` (its name in logs, metrics, the job
//! table and its queue consumer id); the i-th of them listens on `port + i`. Everything else
//! — the queue above all — is the table's, shared.
//!
//! Device numbering: `cuda:N` is CUDA's N-th device as the orchestrator's environment sees
//! it. `CUDA_VISIBLE_DEVICES` is left alone: each worker inherits it, so with it set N counts
//! within the devices it lists, which is also what `gpus = "all"` counts ([`crate::gpu`]).
//! Giving each worker `CUDA_VISIBLE_DEVICES=N` and `cuda:0` instead would hide which GPU a
//! worker runs on from its command line, and would have to translate the operator's own list
//! (indices, `GPU-…`/`MIG-…` UUIDs) entry by entry. The orchestrator also passes
//! `CUDA_DEVICE_ORDER=PCI_BUS_ID` (unless it is set), so that N is the GPU that `nvidia-smi`
//! and `/proc/driver/nvidia/gpus` call N, not CUDA's fastest-first order.

use super::gpu_key::{indices, GpuSelection, GpuSlot, WORKER_NAME_ENV};
use super::spec::WorkerSpec;
use crate::gpu::Gpus;

/// The workers of a table with `gpus` (checked by [`validate`]); `found` counts the GPUs
/// when the table says `"all"`. A disabled table whose `"all"` finds none expands to nothing
/// (it would not run anyway).
pub(super) fn expand(
    spec: &WorkerSpec,
    selection: &GpuSelection,
    found: &mut dyn FnMut() -> Result<Gpus, String>,
) -> Result<Vec<WorkerSpec>, String> {
    let gpus = match indices(selection)? {
        Some(list) => list,
        None => {
            let gpus = match found() {
                Ok(gpus) => gpus,
                Err(_) if !spec.enabled => return Ok(Vec::new()),
                Err(e) => return Err(format!("gpus = \"all\": {e}")),
            };
            if gpus.count == 0 {
                if !spec.enabled {
                    return Ok(Vec::new());
                }
                return Err(format!("gpus = \"all\", but {gpus}; {}", Gpus::hint()));
            }
            (0..gpus.count).collect()
        }
    };
    let mut workers = Vec::with_capacity(gpus.len());
    for (offset, gpu) in gpus.into_iter().enumerate() {
        let offset = u16::try_from(offset).map_err(|_| format!("gpus = {selection} names too many GPUs"))?;
        let port = match spec.port {
            Some(base) => Some(base.checked_add(offset).ok_or_else(|| {
                format!(
                    "gpus = {selection} gives its workers consecutive ports from port = {base}, past 65535 \
                     for GPU {gpu}; set a lower `port`"
                )
            })?),
            None => None,
        };
        let mut worker = spec.clone();
        worker.name = format!("{}-gpu{gpu}", spec.name);
        worker.gpus = None;
        worker.gpu = Some(GpuSlot {
            table: spec.name.clone(),
            gpu,
            offset,
        });
        worker.port = port;
        worker.args.extend(["--device".to_owned(), format!("cuda:{gpu}")]);
        worker.env.insert(WORKER_NAME_ENV.to_owned(), worker.name.clone());
        workers.push(worker);
    }
    Ok(workers)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::Duration;

    use super::super::{parse_schema, Config, Origin, ReadyCheck};
    use super::*;
    use crate::error::ConfigError;

    /// Parses `text` as `easel.toml`, with `count` GPUs if a table asks for "all".
    fn load(text: &str, count: u32) -> Result<Config, ConfigError> {
        let schema = parse_schema(text, "easel.toml")?;
        Config::from_schema_with(schema, Origin::File("easel.toml".into()), &mut || {
            Ok(Gpus::fixed(count))
        })
    }

    fn err(text: &str) -> String {
        load(text, 2).unwrap_err().to_string()
    }

    fn names(config: &Config) -> Vec<&str> {
        config.workers.iter().map(|w| w.name.as_str()).collect()
    }

    const SDXL: &str = "[[workers]]\nname = \"sdxl\"\nkind = \"sdxl\"\n";

    #[test]
    fn a_list_runs_one_worker_per_gpu_with_its_name_port_device_and_worker_name() {
        let config = load(
            &format!("{SDXL}port = 7900\npriority = 2\ngpus = [0, 1, 3]\nargs = [\"--model\", \"/m\"]\nenv = {{ A = \"1\" }}\nstop_grace = \"20s\"\n"),
            0,
        )
        .unwrap();
        assert_eq!(names(&config), ["sdxl-gpu0", "sdxl-gpu1", "sdxl-gpu3"]);
        for (offset, (worker, gpu)) in config.workers.iter().zip([0u32, 1, 3]).enumerate() {
            let port = 7900 + offset as u16;
            assert_eq!(worker.port, Some(port));
            assert_eq!(
                worker.ready_check(),
                ReadyCheck::Http {
                    port,
                    path: "/readyz".into()
                }
            );
            let device = format!("cuda:{gpu}");
            assert_eq!(worker.args, ["--model", "/m", "--device", device.as_str()]);
            assert_eq!(worker.env.get(WORKER_NAME_ENV), Some(&worker.name));
            assert_eq!(worker.env.get("A").map(String::as_str), Some("1"));
            assert_eq!((worker.priority, worker.stop_grace), (2, Duration::from_secs(20)));
            assert_eq!(worker.gpus, None);
            assert_eq!(
                worker.gpu,
                Some(GpuSlot {
                    table: "sdxl".into(),
                    gpu,
                    offset: offset as u16
                })
            );
        }
        let order: Vec<&str> = config.start_order().iter().map(|w| w.name.as_str()).collect();
        assert_eq!(order, ["sdxl-gpu0", "sdxl-gpu1", "sdxl-gpu3"]);
        assert!(config.validate().is_ok(), "an expanded config is valid as it stands");
    }

    #[test]
    fn without_a_port_they_count_up_from_the_sdxl_default_and_keep_their_place() {
        let config = load(
            &format!("[[workers]]\nname = \"video\"\ncommand = [\"v\"]\nport = 7000\n{SDXL}gpus = [1, 0]\n[[workers]]\nname = \"last\"\ncommand = [\"l\"]\nport = 7001\n"),
            0,
        )
        .unwrap();
        assert_eq!(names(&config), ["video", "sdxl-gpu1", "sdxl-gpu0", "last"]);
        let ports: Vec<Option<u16>> = config.workers.iter().map(|w| w.port).collect();
        assert_eq!(ports, [Some(7000), Some(7859), Some(7860), Some(7001)]);
    }

    #[test]
    fn all_runs_one_worker_per_gpu_found_and_counts_them_once() {
        let calls = Cell::new(0);
        let text = format!(
            "{SDXL}gpus = \"all\"\n[[workers]]\nname = \"other\"\nkind = \"sdxl\"\nport = 8000\ngpus = \"all\"\n"
        );
        let schema = parse_schema(&text, "easel.toml").unwrap();
        let config = Config::from_schema_with(schema, Origin::Embedded, &mut || {
            calls.set(calls.get() + 1);
            Ok(Gpus::fixed(2))
        })
        .unwrap();
        assert_eq!(names(&config), ["sdxl-gpu0", "sdxl-gpu1", "other-gpu0", "other-gpu1"]);
        assert_eq!(config.workers[3].port, Some(8001));
        assert_eq!(calls.get(), 1);
        let schema = parse_schema(&format!("{SDXL}gpus = [0]\n"), "easel.toml").unwrap();
        let listed = Config::from_schema_with(schema, Origin::Embedded, &mut || panic!("a list needs no discovery"));
        assert_eq!(names(&listed.unwrap()), ["sdxl-gpu0"]);
    }

    #[test]
    fn all_on_a_host_without_gpus_says_where_it_looked_and_how_to_run_on_the_cpu() {
        let root = tempfile::tempdir().unwrap();
        let text = format!("{SDXL}gpus = \"all\"\n");
        let schema = parse_schema(&text, "easel.toml").unwrap();
        let message = Config::from_schema_with(schema, Origin::File("easel.toml".into()), &mut || {
            crate::gpu::discover(root.path(), &|_| None)
        })
        .unwrap_err()
        .to_string();
        assert!(message.starts_with("invalid config easel.toml: [[workers]] #1 (name = \"sdxl\"): gpus = \"all\", but no NVIDIA GPU found (looked in "), "{message}");
        assert!(message.contains("/proc/driver/nvidia/gpus and for "), "{message}");
        assert!(
            message.contains("to run on the CPU instead, remove `gpus`") && message.contains("EASEL_GPUS=N"),
            "{message}"
        );
        let disabled = load(&format!("{SDXL}gpus = \"all\"\nenabled = false\n"), 0).unwrap();
        assert!(
            disabled.workers.is_empty(),
            "a disabled table without GPUs runs nothing and is no error"
        );
        let bad_count = parse_schema(&text, "easel.toml").unwrap();
        let message = Config::from_schema_with(bad_count, Origin::Embedded, &mut || {
            crate::gpu::discover(root.path(), &|name| (name == "EASEL_GPUS").then(|| "lots".into()))
        })
        .unwrap_err()
        .to_string();
        assert!(message.contains("gpus = \"all\": EASEL_GPUS = \"lots\""), "{message}");
    }

    #[test]
    fn bad_gpus_values_are_refused_naming_the_table() {
        let table = |rest: &str| {
            err(&format!("[[workers]]\nname = \"v\"\ncommand = [\"x\"]\nport = 1\n[[workers]]\nname = \"gpu\"\nkind = \"sdxl\"\n{rest}"))
        };
        let cases = [
            ("gpus = []", "gpus = [] names no GPU"),
            ("gpus = [0, 1, 0]", "gpus = [0, 1, 0] lists GPU 0 twice"),
            ("gpus = [0, -1]", "gpus = [0, -1]: -1 is not a GPU index"),
            ("gpus = [4294967296]", "4294967296 is not a GPU index"),
            (
                "gpus = \"every\"",
                "gpus = \"every\" is not a GPU selection: write gpus = \"all\"",
            ),
            (
                "gpus = [0]\nargs = [\"--device\", \"cuda:1\"]",
                "`args` sets \"--device\" too",
            ),
            (
                "gpus = [0]\nargs = [\"--device=cpu\"]",
                "`args` sets \"--device=cpu\" too",
            ),
            ("gpus = [0]\nenv = { EASEL_DEVICE = \"cuda\" }", "env sets EASEL_DEVICE"),
            (
                "gpus = [0]\nenv = { EASEL_WORKER_NAME = \"w\" }",
                "env sets EASEL_WORKER_NAME, but gpus = [0] names each worker",
            ),
            (
                "gpus = [0]\nenv = { CUDA_VISIBLE_DEVICES = \"1\" }",
                "set it in the environment of `easel up` instead",
            ),
        ];
        for (rest, expected) in cases {
            let message = table(rest);
            assert!(
                message.starts_with("invalid config easel.toml: [[workers]] #2 (name = \"gpu\"): "),
                "{rest}: {message}"
            );
            assert!(message.contains(expected), "{rest}: {message}");
        }
        let message = err("[[workers]]\nname = \"v\"\ncommand = [\"python3\", \"v.py\"]\nport = 7000\ngpus = [0]\n");
        assert!(
            message.contains("#1 (name = \"v\"): `gpus` runs one built-in worker per GPU and needs `kind = \"sdxl\"`"),
            "{message}"
        );
        for (rest, expected) in [
            ("gpus = 2", "expected \"all\" or a list of GPU indices"),
            ("gpus = [\"0\"]", "invalid type"),
        ] {
            let message = err(&format!("{SDXL}{rest}\n"));
            assert!(
                message.contains("line 4") && message.contains(expected),
                "{rest}: {message}"
            );
        }
    }

    #[test]
    fn expanded_ports_that_collide_are_refused_naming_the_table() {
        let message = err(&format!(
            "[[workers]]\nname = \"video\"\ncommand = [\"v\"]\nport = 7860\n{SDXL}gpus = [0, 1]\n"
        ));
        assert!(
            message.contains("[[workers]] #2 (name = \"sdxl\", its worker \"sdxl-gpu1\" for cuda:1): port = 7860 is already used by worker \"video\" (the workers of a `gpus` table take consecutive ports from `port`: this one port + 1)"),
            "{message}"
        );
        let message = err(&format!(
            "{SDXL}gpus = [0, 1]\n[[workers]]\nname = \"video\"\ncommand = [\"v\"]\nport = 7860\n"
        ));
        assert!(
            message.contains("[[workers]] #2 (name = \"video\"): port = 7860 is already used by worker \"sdxl-gpu1\" (of [[workers]] #1, gpus)"),
            "{message}"
        );
        let message = err(&format!("{SDXL}port = 65535\ngpus = [0, 1]\n"));
        assert!(
            message.contains(
                "#1 (name = \"sdxl\"): gpus = [0, 1] gives its workers consecutive ports from port = 65535, past 65535"
            ),
            "{message}"
        );
        let message = err(&format!(
            "[orchestrator]\nlisten = \"127.0.0.1:7860\"\n{SDXL}gpus = \"all\"\n"
        ));
        assert!(
            message.contains("port = 7860 is already used by [orchestrator] listen"),
            "{message}"
        );
    }

    #[test]
    fn expanded_names_must_not_collide_or_grow_too_long() {
        let message = err(&format!(
            "[[workers]]\nname = \"sdxl-gpu1\"\ncommand = [\"v\"]\nport = 7000\n{SDXL}gpus = [1]\n"
        ));
        assert!(
            message.contains("#2 (name = \"sdxl\", its worker \"sdxl-gpu1\" for cuda:1): the name \"sdxl-gpu1\" is already used by [[workers]] #1"),
            "{message}"
        );
        let long = "n".repeat(60);
        let message = err(&format!(
            "[[workers]]\nname = \"{long}\"\nkind = \"sdxl\"\ngpus = [10]\n"
        ));
        assert!(
            message.contains(&format!("name \"{long}-gpu10\" must be 1-64")),
            "{message}"
        );
    }

    #[test]
    fn a_reload_expands_the_table_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("easel.toml");
        std::fs::write(&path, format!("{SDXL}gpus = [0]\n")).unwrap();
        let config = Config::load(&path).unwrap();
        assert_eq!(names(&config), ["sdxl-gpu0"]);
        std::fs::write(&path, format!("{SDXL}gpus = [0, 2]\n")).unwrap();
        let reloaded = config.reload().unwrap();
        assert_eq!(names(&reloaded), ["sdxl-gpu0", "sdxl-gpu2"]);
        assert_eq!(
            reloaded.workers[0], config.workers[0],
            "an unchanged GPU's worker is unchanged: it keeps running"
        );
    }
}
