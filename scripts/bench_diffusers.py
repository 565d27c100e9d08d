"""Time diffusers' SDXL pipeline phase by phase, the same way `easel bench` times Easel.

Phases: text encoding (both encoders, prompt + negative prompt), each UNet step (one
guided step = one UNet forward over [uncond, cond] + the scheduler step), VAE decode,
total (text + steps + decode; loading is reported apart). Memory: peak RSS of this process
on CPU; on CUDA the peak of torch's allocator (allocated and reserved).

Prints one JSON object (the same keys as `easel bench --json`):

    python scripts/bench_diffusers.py --model DIR --width 512 --height 512 --steps 10

Used by scripts/bench_compare.py, which runs both and prints the ratios. Run it with the
reference venv (scripts/requirements-ref.txt).
"""

import argparse
import json
import os
import resource
import sys
import time


# Settings `easel bench` takes too, with the same names and defaults; bench_compare.py
# passes each of them to both.
SHARED = [
    ("--width", int, 512, "image width"),
    ("--height", int, 512, "image height"),
    ("--steps", int, 10, "denoising steps"),
    ("--batch", int, 1, "images per run"),
    ("--guidance", float, 5.0, "classifier-free guidance scale"),
    ("--dtype", str, "f32", "f32, f16 or bf16"),
    ("--device", str, "cpu", "cpu or cuda"),
    ("--warmup", int, 0, "untimed runs before the timed ones"),
    ("--repeat", int, 3, "timed runs; every phase reports their median, with its spread"),
]


def add_shared_args(ap):
    ap.add_argument("--model", required=True, help="diffusers SDXL folder")
    for flag, kind, default, help_text in SHARED:
        ap.add_argument(flag, type=kind, default=default, help=help_text)
    ap.add_argument("--variant", default=None, help="weights variant to load, e.g. fp16")


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_shared_args(ap)
    ap.add_argument("--prompt", default="a lighthouse on a cliff at dusk, oil painting")
    ap.add_argument("--negative-prompt", default="blurry, low quality")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    ap.add_argument("--vae-slicing", action="store_true", help="decode one image at a time")
    ap.add_argument("--compile", action="store_true", help="torch.compile the UNet (GPU)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.dtype not in ("f32", "f16", "bf16"):
        ap.error(f"--dtype {args.dtype}: use f32, f16 or bf16")
    return args


def main():
    args = parse()
    import torch
    import diffusers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    cuda = args.device.startswith("cuda")

    def sync():
        if cuda:
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    pipe = diffusers.StableDiffusionXLPipeline.from_pretrained(
        args.model, dtype=dtype, variant=args.variant, use_safetensors=True
    )
    pipe = pipe.to(args.device)
    pipe.set_progress_bar_config(disable=True)
    # Same scheduler as Easel's default (`euler`): Euler discrete from the model's config.
    pipe.scheduler = diffusers.EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    # An f16 VAE that asks for it decodes in f32, as the pipeline's own decode does
    # (diffusers' upcast_vae is deprecated for this call).
    if pipe.vae.dtype == torch.float16 and pipe.vae.config.force_upcast:
        pipe.vae.to(torch.float32)
    if args.vae_slicing:
        pipe.enable_vae_slicing()
    if args.compile:
        pipe.unet = torch.compile(pipe.unet, mode="max-autotune", fullgraph=True)
    sync()
    load_s = time.perf_counter() - t0

    def once():
        gen = torch.Generator(device="cpu").manual_seed(args.seed)
        with torch.inference_mode():
            sync()
            start = time.perf_counter()
            pe, npe, ppe, nppe = pipe.encode_prompt(
                args.prompt,
                device=args.device,
                num_images_per_prompt=args.batch,
                do_classifier_free_guidance=args.guidance > 1.0,
                negative_prompt=args.negative_prompt,
            )
            sync()
            text_s = time.perf_counter() - start
            marks = []

            def on_step(p, i, t, kw):
                sync()
                marks.append(time.perf_counter())
                return kw

            steps_start = time.perf_counter()
            latents = pipe(
                prompt_embeds=pe,
                negative_prompt_embeds=npe,
                pooled_prompt_embeds=ppe,
                negative_pooled_prompt_embeds=nppe,
                width=args.width,
                height=args.height,
                num_inference_steps=args.steps,
                guidance_scale=args.guidance,
                generator=gen,
                output_type="latent",
                callback_on_step_end=on_step,
            ).images
            sync()
            steps_end = time.perf_counter()
            # The decode as the pipeline does it: in the VAE's dtype (f32 when it asked
            # for the upcast, done once after loading).
            vae = pipe.vae
            latents = latents.to(next(iter(vae.post_quant_conv.parameters())).dtype)
            image = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
            image = (image / 2 + 0.5).clamp(0, 1).float().cpu()
            sync()
            end = time.perf_counter()
        steps = [b - a for a, b in zip([steps_start] + marks[:-1], marks)]
        return dict(
            text_s=text_s,
            steps_s=steps,
            # Latent preparation and the pipeline's own setup before the first step.
            other_s=(steps_end - steps_start) - sum(steps),
            vae_s=end - steps_end,
            total_s=end - start,
            image_mean=float(image.mean()),
        )

    for _ in range(args.warmup):
        once()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    runs = [once() for _ in range(max(1, args.repeat))]
    r = summarise(runs)
    out = dict(
        impl="diffusers",
        version=diffusers.__version__,
        torch=torch.__version__,
        device=args.device,
        dtype=args.dtype,
        width=args.width,
        height=args.height,
        steps=args.steps,
        batch=args.batch,
        threads=torch.get_num_threads(),
        cpu=cpu_model(),
        isa=dict(torch=torch.backends.cpu.get_cpu_capability()),
        repeat=len(runs),
        load_s=load_s,
        peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        **r,
    )
    out["per_image_s"] = out["total_s"] / args.batch
    if cuda:
        out["peak_device_bytes"] = torch.cuda.max_memory_reserved()
        out["peak_device_allocated_bytes"] = torch.cuda.max_memory_allocated()
        out["gpu"] = torch.cuda.get_device_name()
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


def median(xs):
    v = sorted(xs)
    n = len(v)
    return 0.0 if n == 0 else (v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2)


def summarise(runs):
    """Each phase's median over the runs (steps by position), and [min, max] spreads."""
    mean_step = lambda r: sum(r["steps_s"]) / max(1, len(r["steps_s"]))
    n_steps = len(runs[0]["steps_s"])
    out = {k: median([r[k] for r in runs]) for k in ("text_s", "other_s", "vae_s", "total_s")}
    out["steps_s"] = [median([r["steps_s"][i] for r in runs]) for i in range(n_steps)]
    out["image_mean"] = runs[-1]["image_mean"]
    spread = {k: [min(r[k] for r in runs), max(r[k] for r in runs)] for k in ("text_s", "vae_s", "total_s")}
    spread["step_mean_s"] = [min(map(mean_step, runs)), max(map(mean_step, runs))]
    out["spread"] = spread
    return out


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
