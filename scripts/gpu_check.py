"""The GPU check: Easel's CUDA build against Easel's CPU f32 and against diffusers, then
timed beside diffusers, in one run sized for a rented GPU machine's few minutes.

    scripts/gpu-check.sh                                  # on the GPU machine (the wrapper)
    python scripts/gpu_check.py --easel target/release/easel --device cpu --size tiny \\
        --out /tmp/gpu-dry-run                            # the dry run, on any CPU machine

Stages, each timed and written to OUT/gpu-check.json as it ends (and OUT/summary.md at the
end), so a run cut short still says how far it got:

1. weights: an SDXL-base-shaped model with random weights (`--size full`: the real shapes,
   about 7 GB of fp16 files, drawn on the GPU in seconds; `--size tiny`: the 1.4M-parameter
   test model's shapes), saved as diffusers writes SDXL-base (variant fp16).
2. check, at a small size (`--check-side`, `--check-steps`), every run from the same initial
   latents (a file both sides read: Easel's `--latents`, diffusers' `latents=`):
   Easel CPU f32 is the reference; Easel on the device in f32 and in `--dtype`, diffusers on
   the device in f32 and in `--dtype`. Compared: the final latents (Easel's
   `--save-latents`, diffusers' `output_type="latent"`) and the 8-bit images.
   Tolerances (relative L2 of the final latents against the reference):
     f32 on the device, Easel or diffusers:  <= F32_TOL
     Easel in bf16/f16:  <= max(HALF_FACTOR x diffusers' own error in that dtype, HALF_FLOOR)
   i.e. Easel in half precision is no further from the f32 answer than diffusers is, with
   a margin; the f32 rows prove Easel equals diffusers on the full-size shapes.
3. timing: `easel bench` and scripts/bench_diffusers.py at `--side`², `--steps` steps, for
   each batch in `--batches`: text encoding, UNet step, VAE decode, seconds per image, peak
   device memory, side by side with ratios (Easel / diffusers; below 1 means Easel is
   faster or smaller). Repeats shrink, then the larger batches are skipped, when the
   budget (`--budget-s`) would not hold them; what was skipped is said.
"""

import argparse
import glob
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from bench_diffusers import cpu_model  # noqa: E402

F32_TOL = 2e-3
HALF_FACTOR = 1.5
HALF_FLOOR = 0.01
PROMPT = "a lighthouse on a cliff at dusk, oil painting"
NEGATIVE = "blurry, low quality"
GUIDANCE = 5.0


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--easel", required=True, help="the easel binary (CUDA build for --device cuda)")
    ap.add_argument("--device", default="cuda", help="cuda or cpu (the dry run)")
    ap.add_argument("--size", choices=["full", "tiny"], default="full", help="model shapes")
    ap.add_argument("--dtype", default="bf16", help="half precision to check and time: bf16 or f16")
    ap.add_argument("--out", required=True, help="folder for gpu-check.json and summary.md")
    ap.add_argument("--work", default="/tmp/easel-gpu-check", help="folder for the model and run files")
    ap.add_argument("--budget-s", type=float, default=470.0, help="stop starting stages after this")
    ap.add_argument("--check-side", type=int, default=256)
    ap.add_argument("--check-steps", type=int, default=4)
    ap.add_argument("--no-half-check", action="store_true", help="check f32 only (a CPU dry run at full size: half precision is slow there)")
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--batches", default="1,6")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs at batch 1 (fewer for larger batches)")
    args = ap.parse_args()
    if args.dtype not in ("bf16", "f16"):
        ap.error(f"--dtype {args.dtype}: use bf16 or f16")
    if not os.access(args.easel, os.X_OK):
        ap.error(f"--easel {args.easel}: not an executable file")
    try:
        args.batch_list = [int(b) for b in args.batches.split(",") if b.strip()]
    except ValueError:
        ap.error(f"--batches {args.batches!r}: use numbers separated by commas, e.g. 1,6")
    return args


class Report:
    """The JSON report, rewritten after every stage."""

    def __init__(self, args):
        self.args = args
        self.t0 = time.monotonic()
        self.data = dict(settings={k: v for k, v in vars(args).items() if k != "batch_list"}, stages={})
        os.makedirs(args.out, exist_ok=True)

    def elapsed(self):
        return time.monotonic() - self.t0

    def left(self):
        return self.args.budget_s - self.elapsed()

    def stage(self, name, **fields):
        fields.setdefault("ended_at_s", round(self.elapsed(), 1))
        self.data["stages"][name] = fields
        self.save()

    def save(self):
        with open(os.path.join(self.args.out, "gpu-check.json"), "w") as f:
            json.dump(self.data, f, indent=1)


def log(msg):
    print(f"[gpu-check] {msg}", file=sys.stderr, flush=True)


def run(cmd, timeout, env=None):
    """Runs a command; returns (rc, stdout, seconds). stderr passes through."""
    log("$ " + " ".join(cmd))
    t = time.monotonic()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=max(1.0, timeout), env=env)
        return p.returncode, p.stdout, time.monotonic() - t
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return 124, out, time.monotonic() - t


def last_json(stdout):
    lines = [l for l in stdout.splitlines() if l.startswith("{")]
    return json.loads(lines[-1]) if lines else None


# ------------------------------------------------------------------------------------------
# 1. weights


def make_weights(args, rep):
    import torch
    import make_tiny_sdxl as mk

    model_dir = os.path.join(args.work, f"model-{args.size}")
    stamp = os.path.join(model_dir, ".complete")
    if os.path.exists(stamp):
        rep.stage("weights", seconds=0.0, reused=model_dir)
        return model_dir
    t = time.monotonic()
    spec = mk.spec_full() if args.size == "full" else mk.spec_tiny()
    gen_device = "cuda" if args.device.startswith("cuda") else "cpu"
    pipe, vocab, merges = mk.build_pipeline(spec, fp16=True, device=gen_device)
    counts = mk.param_counts(pipe)
    pipe.to("cpu")
    if gen_device == "cuda":
        torch.cuda.empty_cache()
    mk.save_model(pipe, model_dir, vocab, merges, fp16=True)
    del pipe
    import gc

    gc.collect()
    size = sum(os.path.getsize(p) for p in glob.glob(os.path.join(model_dir, "**", "*.safetensors"), recursive=True))
    open(stamp, "w").close()
    rep.stage("weights", seconds=round(time.monotonic() - t, 1), params=counts, bytes=size, drawn_on=gen_device)
    return model_dir


# ------------------------------------------------------------------------------------------
# 2. check


def rel_l2(a, ref):
    import torch

    a, ref = a.double(), ref.double()
    return float(torch.linalg.vector_norm(a - ref) / torch.linalg.vector_norm(ref).clamp_min(1e-30))


def compare(lat, img, ref_lat, ref_img):
    import torch

    d = (img.float() - ref_img.float()).abs()
    return dict(
        latents_rel_l2=rel_l2(lat, ref_lat),
        latents_max_abs=float((lat.double() - ref_lat.double()).abs().max()),
        image_mean_abs_255=float(d.mean()),
        image_max_abs_255=int(d.max()),
        finite=bool(torch.isfinite(lat).all()),
    )


def easel_generate(args, model_dir, latents_file, device, dtype, name, timeout):
    """One `easel generate` from the shared latents; returns (latents, image uint8 HWC) or an error."""
    import numpy as np
    import torch
    from PIL import Image
    from safetensors.torch import load_file

    out = os.path.join(args.work, "check", name)
    shutil.rmtree(out, ignore_errors=True)
    lat_out = os.path.join(args.work, "check", f"{name}.latents.safetensors")
    cmd = [
        args.easel, "generate", PROMPT, "--negative", NEGATIVE, "--model", model_dir,
        "--steps", str(args.check_steps), "--guidance", str(GUIDANCE), "--seed", "0",
        "--latents", latents_file, "--device", device, "--dtype", dtype,
        "--out", out, "--save-latents", lat_out, "--json",
    ]
    # f32 means f32: cuDNN may run FP32 convolutions on TF32 tensor cores unless told not to.
    env = dict(os.environ, NVIDIA_TF32_OVERRIDE="0") if dtype == "f32" else None
    rc, stdout, secs = run(cmd, timeout, env=env)
    if rc != 0:
        return None, f"easel generate exited {rc}"
    report = last_json(stdout)
    img = np.asarray(Image.open(report["paths"][0]).convert("RGB"))
    return (load_file(lat_out)["latents"], torch.from_numpy(img.copy()), round(secs, 1)), None


def diffusers_runs(args, model_dir, latents, dtypes, deadline):
    """diffusers on the device, once per dtype, from the same latents; yields
    (dtype, (latents, image, seconds) or None when past the deadline) as each ends."""
    import torch
    import diffusers

    diffusers.utils.logging.set_verbosity_error()
    dev = args.device
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    pipe = diffusers.StableDiffusionXLPipeline.from_pretrained(
        model_dir, dtype=torch.float32, variant="fp16", use_safetensors=True, add_watermarker=False
    ).to(dev)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = diffusers.EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    for name in dtypes:
        if time.monotonic() > deadline:
            yield name, None
            continue
        dt = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[name]
        pipe.to(dtype=dt)
        t = time.monotonic()
        with torch.inference_mode():
            lat = pipe(
                prompt=PROMPT,
                negative_prompt=NEGATIVE,
                num_inference_steps=args.check_steps,
                guidance_scale=GUIDANCE,
                latents=latents.to(dev, dt),
                height=latents.shape[2] * 8,
                width=latents.shape[3] * 8,
                output_type="latent",
            ).images
            image = pipe.vae.decode(lat / pipe.vae.config.scaling_factor, return_dict=False)[0]
            image = ((image.float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
        yield name, (lat.float().cpu(), image[0].permute(1, 2, 0).cpu(), round(time.monotonic() - t, 1))
    del pipe
    if dev.startswith("cuda"):
        torch.cuda.empty_cache()


def verdicts_of(args, rows):
    """Each device run's error against the reference and its limit (module docstring)."""
    verdicts = {}
    for name in ("easel-device-f32", "diffusers-device-f32"):
        if name in rows:
            e = rows[name]["latents_rel_l2"]
            verdicts[name] = dict(error=e, limit=F32_TOL, ok=rows[name]["finite"] and e <= F32_TOL)
    half_e, half_d = f"easel-device-{args.dtype}", f"diffusers-device-{args.dtype}"
    if half_e in rows and half_d in rows:
        limit = max(HALF_FACTOR * rows[half_d]["latents_rel_l2"], HALF_FLOOR)
        e = rows[half_e]["latents_rel_l2"]
        verdicts[half_e] = dict(error=e, limit=limit, ok=rows[half_e]["finite"] and e <= limit)
    return verdicts


def check(args, rep, model_dir):
    import torch
    from safetensors.torch import save_file

    os.makedirs(os.path.join(args.work, "check"), exist_ok=True)
    side = args.check_side
    latents = torch.randn((1, 4, side // 8, side // 8), generator=torch.Generator().manual_seed(0))
    latents_file = os.path.join(args.work, "check", "initial.safetensors")
    save_file({"latents": latents}, latents_file)
    half = [] if args.no_half_check else [args.dtype]
    rows, errors, ref = {}, {}, None

    def record(name, got, err):
        """Compares a finished run with the reference and saves the stage so far."""
        nonlocal ref
        if err:
            errors[name] = err
        elif name == "easel-cpu-f32":
            ref = got
            rows[name] = dict(seconds=got[2], latents_abs_mean=float(got[0].abs().mean()))
        elif ref is not None:
            rows[name] = dict(compare(got[0], got[1], ref[0], ref[1]), seconds=got[2])
        else:
            errors[name] = "no reference to compare with"
        verdicts = verdicts_of(args, rows)
        ok = bool(verdicts) and all(v["ok"] for v in verdicts.values()) and not errors
        rep.stage(
            "check",
            side=side,
            steps=args.check_steps,
            tolerances=dict(f32=F32_TOL, half_factor=HALF_FACTOR, half_floor=HALF_FLOOR),
            runs=rows,
            verdicts=verdicts,
            errors=errors,
            ok=ok,
            complete=False,
        )

    # The reference: Easel on the CPU in f32 (equal to diffusers on the CPU: the parity tests).
    plan = [("easel-cpu-f32", "cpu", "f32")]
    if args.device != "cpu":
        plan.append(("easel-device-f32", args.device, "f32"))
    plan += [(f"easel-device-{dt}", args.device, dt) for dt in half]
    for name, dev, dt in plan:
        got, err = easel_generate(args, model_dir, latents_file, dev, dt, name, rep.left())
        record(name, got, err)
    for dt, got in diffusers_runs(args, model_dir, latents, ["f32"] + half, time.monotonic() + rep.left()):
        record(f"diffusers-device-{dt}", got, None if got else "skipped: budget")
    st = rep.data["stages"]["check"]
    st["complete"] = True
    rep.save()
    return st["ok"]


# ------------------------------------------------------------------------------------------
# 3. timing


def timing(args, rep, model_dir):
    py = sys.executable
    results, skipped = {}, []
    per_image = {}
    for batch in args.batch_list:
        left = rep.left()
        repeat, warmup = (args.repeat, 1) if batch == 1 else (1, 1)
        # Estimate from what batch 1 took: per image × batch × runs, each side, plus loading.
        if per_image:
            cost = lambda w, r: sum(per_image.values()) * batch * (w + r) + 60.0
            if cost(warmup, repeat) > left:
                warmup = 0
            if cost(warmup, repeat) > left:
                skipped.append(f"batch {batch}: about {cost(0, 1):.0f} s needed, {left:.0f} s left")
                continue
        shared = [
            "--width", str(args.side), "--height", str(args.side), "--steps", str(args.steps),
            "--batch", str(batch), "--dtype", args.dtype, "--device", args.device,
            "--warmup", str(warmup), "--repeat", str(repeat), "--guidance", str(GUIDANCE),
        ]
        pair = {}
        for name, cmd in [
            ("easel", [args.easel, "bench", "--json", "--model", model_dir] + shared),
            ("diffusers", [py, os.path.join(ROOT, "scripts", "bench_diffusers.py"), "--model", model_dir, "--variant", "fp16"] + shared),
        ]:
            rc, stdout, secs = run(cmd, rep.left())
            got = last_json(stdout) if rc == 0 else None
            pair[name] = got if got else dict(error=f"exited {rc} after {secs:.0f} s")
            if got:
                per_image[name] = got["per_image_s"]
        results[str(batch)] = pair
        rep.stage("timing", side=args.side, steps=args.steps, dtype=args.dtype, results=results, skipped=skipped)
    rep.stage("timing", side=args.side, steps=args.steps, dtype=args.dtype, results=results, skipped=skipped)
    return all("error" not in r for pair in results.values() for r in pair.values())


# ------------------------------------------------------------------------------------------
# machine line and summary


def machine(args):
    import torch

    info = dict(
        python=platform.python_version(),
        torch=torch.__version__,
        cpu=cpu_model(),
        cpu_threads=os.cpu_count(),
    )
    try:
        import diffusers

        info["diffusers"] = diffusers.__version__
    except ImportError as e:
        info["diffusers"] = f"missing: {e}"
    if args.device.startswith("cuda") and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / (1 << 30), 1), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    rc, out, _ = run([args.easel, "--version"], 30)
    info["easel"] = out.strip() if rc == 0 else f"exited {rc}"
    if shutil.which("ldd"):
        rc, out, _ = run(["ldd", args.easel], 30)
        info["easel_links"] = sorted({l.split()[0] for l in out.splitlines() if "cudnn" in l or "cublas" in l or "libcuda" in l})
        info["easel_missing_libs"] = [l.strip() for l in out.splitlines() if "not found" in l]
    return info


def fmt(x, unit=""):
    return "-" if x is None else f"{x:.3f}{unit}"


def summary(rep):
    d = rep.data
    m = d.get("machine", {})
    lines = [
        "# Easel GPU check",
        "",
        f"machine: {m.get('gpu', 'no GPU')} ({m.get('gpu_memory_gib', '-')} GiB), CUDA {m.get('cuda', '-')},"
        f" cuDNN {m.get('cudnn', '-')}; CPU {m.get('cpu')} × {m.get('cpu_threads')}",
        f"torch {m.get('torch')}, diffusers {m.get('diffusers')}; {m.get('easel')}, links {', '.join(m.get('easel_links', [])) or '-'}",
        f"settings: {json.dumps(d['settings'])}",
        f"elapsed: {rep.elapsed():.0f} s of a {rep.args.budget_s:.0f} s budget",
        "",
    ]
    st = d["stages"]
    if "weights" in st:
        w = st["weights"]
        if "reused" in w:
            lines.append(f"## weights: reused {w['reused']}")
        else:
            lines.append(f"## weights: {w['seconds']} s, {w['bytes'] / 1e9:.2f} GB, drawn on {w['drawn_on']}, params {w['params']}")
        lines.append("")
    if "check" in st:
        c = st["check"]
        lines += [
            f"## check at {c['side']}², {c['steps']} steps (reference: Easel CPU f32): {'PASS' if c['ok'] else 'FAIL'}"
            + ("" if c.get("complete") else " (cut short)"),
            "",
            "| run | latents rel-L2 | latents max abs | image mean abs (of 255) | image max abs | finite | limit | ok | s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, r in c["runs"].items():
            if name == "easel-cpu-f32":
                lines.append(f"| {name} | (the reference) | | | | | | | {r.get('seconds')} |")
                continue
            v = c["verdicts"].get(name, {})
            limit = f"{v['limit']:.2e}" if v else "-"
            lines.append(
                f"| {name} | {r.get('latents_rel_l2', 0):.2e} | {r.get('latents_max_abs', 0):.2e} |"
                f" {r.get('image_mean_abs_255', 0):.3f} | {r.get('image_max_abs_255', '-')} | {r.get('finite', '-')} |"
                f" {limit} | {v.get('ok', '-')} | {r.get('seconds')} |"
            )
        for name, e in c["errors"].items():
            lines.append(f"| {name} | {e} |")
        lines.append("")
    if st.get("timing", {}).get("results") or st.get("timing", {}).get("skipped"):
        t = st["timing"]
        lines.append(f"## timing at {t['side']}², {t['steps']} steps, {t['dtype']} (ratio = Easel / diffusers)")
        lines.append("")
        for batch, pair in t["results"].items():
            e, df = pair.get("easel", {}), pair.get("diffusers", {})
            lines += [f"### batch {batch}", "", "| phase | easel | diffusers | ratio |", "|---|---|---|---|"]

            def mean_step(r):
                s = r.get("steps_s") or []
                return sum(s) / len(s) if s else None

            def gib(r):
                b = r.get("peak_device_bytes")
                return None if b is None else b / (1 << 30)

            for label, f in [
                ("load (s)", lambda r: r.get("load_s")),
                ("text encoding (s)", lambda r: r.get("text_s")),
                ("UNet step, mean (s)", mean_step),
                ("VAE decode (s)", lambda r: r.get("vae_s")),
                ("total (s)", lambda r: r.get("total_s")),
                ("per image (s)", lambda r: r.get("per_image_s")),
                ("peak device memory (GiB)", gib),
            ]:
                a, b = f(e), f(df)
                ratio = f"{a / b:.2f}" if a is not None and b else "-"
                lines.append(f"| {label} | {fmt(a)} | {fmt(b)} | {ratio} |")
            for side, r in (("easel", e), ("diffusers", df)):
                if "error" in r:
                    lines.append(f"| {side} failed: {r['error']} | | | |")
                elif r.get("repeat"):
                    lines.append(f"| {side}: median of {r['repeat']} run(s) | | | |")
            lines.append("")
        for s in t["skipped"]:
            lines.append(f"skipped: {s}")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(rep.args.out, "summary.md"), "w") as f:
        f.write(text)
    return text


def main():
    args = parse()
    # A stop from outside (a time limit) still writes the summary of what finished.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rep = Report(args)
    ok = True
    try:
        rep.data["machine"] = machine(args)
        rep.save()
        model_dir = make_weights(args, rep)
        if rep.left() > 0:
            ok = check(args, rep, model_dir)
        if rep.left() > 0:
            ok = timing(args, rep, model_dir) and ok
    finally:
        print(summary(rep))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
