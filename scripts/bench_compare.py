"""Run `easel bench` and diffusers (scripts/bench_diffusers.py) on the same model and
settings, in alternating rounds, and print each phase as a ratio Easel / diffusers.

    python scripts/bench_compare.py --model /path/to/sdxl-folder            # CPU, 512², 10 steps
    python scripts/bench_compare.py --model DIR --device cuda --dtype bf16 \\
        --width 1024 --height 1024 --steps 25 --batch 6 --warmup 1

A ratio below 1.00 means Easel is faster (or uses less memory). The model's files are read
once first, so both sides load from a warm page cache. Each of the --repeat rounds starts
one process of each side for one timed run, in the order E D, D E, E D, ...: on a shared
machine whose speed drifts, both sides see the same drift, where --repeat runs of one side
and then of the other would each see a different stretch of it. Needs the reference venv
(scripts/requirements-ref.txt) as its interpreter, and an `easel` binary: --easel, or
target/release/easel (build it with `cargo build --release -p easel`).
"""

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from bench_diffusers import SHARED, add_shared_args, median, summarise  # noqa: E402


def run_json(cmd, env=None):
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, env=env, text=True)
    if p.returncode != 0:
        sys.exit(f"command failed with status {p.returncode}: {' '.join(cmd)}")
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if not lines:
        sys.exit(f"no JSON result from: {' '.join(cmd)}")
    return json.loads(lines[-1])


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "    -"
    return f"{a / b:5.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_shared_args(ap)
    ap.add_argument("--easel", default=os.path.join(ROOT, "target", "release", "easel"))
    ap.add_argument("--json", help="also write both results to this file")
    args = ap.parse_args()

    common = ["--model", args.model]
    for flag, _, _, _ in SHARED:
        value = 1 if flag == "--repeat" else getattr(args, flag[2:])
        common += [flag, str(value)]
    rounds = max(1, args.repeat)
    if not os.path.exists(args.easel):
        sys.exit(f"no easel binary at {args.easel}: cargo build --release -p easel, or pass --easel")
    # Both sides load from a warm page cache: whichever ran first would otherwise read
    # the files from disk and the other from memory.
    print(f"warming the page cache: {warm_page_cache(args.model) / (1 << 30):.2f} GiB read", file=sys.stderr)
    py = [sys.executable, os.path.join(ROOT, "scripts", "bench_diffusers.py")] + common
    if args.variant:
        py += ["--variant", args.variant]
    easel_runs, diff_runs = [], []
    for i in range(rounds):
        print(f"round {i + 1} of {rounds}", file=sys.stderr, flush=True)
        sides = [(easel_runs, [args.easel, "bench", "--json"] + common), (diff_runs, py)]
        for runs, cmd in sides if i % 2 == 0 else reversed(sides):
            runs.append(run_json(cmd))
    easel, diff = combine(easel_runs), combine(diff_runs)

    def mean(xs):
        return sum(xs) / len(xs) if xs else None

    rows = [
        ("text encoding (s)", easel["text_s"], diff["text_s"]),
        ("UNet step, mean (s)", mean(easel["steps_s"]), mean(diff["steps_s"])),
        ("UNet steps, all (s)", sum(easel["steps_s"]), sum(diff["steps_s"])),
        ("VAE decode (s)", easel["vae_s"], diff["vae_s"]),
        ("total (s)", easel["total_s"], diff["total_s"]),
        ("per image (s)", easel["per_image_s"], diff["per_image_s"]),
        ("peak RSS (GiB)", gib(easel.get("peak_rss_bytes")), gib(diff.get("peak_rss_bytes"))),
    ]
    if args.device != "cpu":
        rows.append(("peak device memory (GiB)", gib(easel.get("peak_device_bytes")), gib(diff.get("peak_device_bytes"))))
    print()
    print(f"machine: {easel.get('cpu', '?')}")
    print(
        f"easel: kernels {easel.get('isa', {}).get('kernels', '?')}, GEMM {easel.get('isa', {}).get('gemm', '?')},"
        f" {easel['threads']} threads; torch {diff.get('torch', '?')}: CPU capability"
        f" {diff.get('isa', {}).get('torch', '?')}, {diff['threads']} threads; diffusers {diff['version']}"
    )
    print(
        f"{args.width}x{args.height}, {args.steps} steps, batch {args.batch}, {args.dtype} on {args.device},"
        f" median of {rounds} alternating round(s), one run per side each (spread: min-max)"
    )
    spreads = {
        "text encoding (s)": "text_s",
        "UNet step, mean (s)": "step_mean_s",
        "VAE decode (s)": "vae_s",
        "total (s)": "total_s",
    }

    def spread(result, name):
        key = spreads.get(name)
        lo_hi = result.get("spread", {}).get(key) if key else None
        return f"{lo_hi[0]:.3f}-{lo_hi[1]:.3f}" if lo_hi else ""

    print(f"{'phase':28} {'easel':>10} {'diffusers':>10} {'ratio':>6}   {'easel spread':>13} {'diffusers spread':>16}")
    for name, a, b in rows:
        fa = f"{a:10.3f}" if a is not None else f"{'-':>10}"
        fb = f"{b:10.3f}" if b is not None else f"{'-':>10}"
        print(f"{name:28} {fa} {fb} {ratio(a, b):>6}   {spread(easel, name):>13} {spread(diff, name):>16}")
    print(f"{'(load, not in total) (s)':28} {easel['load_s']:10.3f} {diff['load_s']:10.3f} {ratio(easel['load_s'], diff['load_s']):>6}")
    per_round = [ratio(e["total_s"], d["total_s"]).strip() for e, d in zip(easel_runs, diff_runs)]
    print(f"total ratio in each round: {' '.join(per_round)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"easel": easel, "diffusers": diff, "rounds": {"easel": easel_runs, "diffusers": diff_runs}}, f, indent=1)


def combine(runs):
    """One side's rounds as one result: each phase's median (steps by position) with its
    min-max spread, the peaks' maximum, and the first round's description of the run."""
    out = dict(runs[0])
    out.update(summarise(runs))
    out["repeat"] = len(runs)
    for key in ("load_s", "per_image_s"):
        out[key] = median([r[key] for r in runs])
    for key in ("peak_rss_bytes", "peak_device_bytes"):
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = max(values) if values else None
    return out


def warm_page_cache(root):
    """Reads every file under `root` once; returns the bytes read."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                while chunk := f.read(16 << 20):
                    total += len(chunk)
    return total


def gib(b):
    return None if b is None else b / (1 << 30)


if __name__ == "__main__":
    main()
