"""Records diffusers' scheduler behaviour as fixtures for Easel's Rust schedulers.

Why this exists: `crates/easel-sdxl/tests/schedulers.rs` checks that Easel's Euler,
Euler Ancestral, DPM++ 2M (Karras) and DDIM reproduce diffusers exactly: timesteps,
sigmas, init_noise_sigma, and step-by-step rollouts (text-to-image from step 0 and
image-to-image from the begin index diffusers' SDXL img2img pipeline computes).

Run with the reference venv from the repository root:

    /work/venv/ref/bin/python scripts/scheduler_refs.py

It writes `crates/easel-sdxl/tests/fixtures/scheduler_refs.json` (cases, configs,
timesteps, sigmas, rollout index) and `scheduler_refs.safetensors` (the tensors).
Rollouts use a tiny [1, 4, 4, 4] latent (the schedulers only scale and add
whole tensors, so the shape does not matter) and a fixed bank of random "model outputs"
(entry i is fed at step index i); per-step tensors of a rollout are stacked
along a new first axis (entry j is step index begin + j), so the fixture stays small.
"""

import json
import os

import numpy as np
import torch
from safetensors.torch import save_file

import diffusers
import diffusers.schedulers.scheduling_euler_ancestral_discrete as ea_module
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
)

OUT_DIR = os.path.join("crates", "easel-sdxl", "tests", "fixtures")

# stabilityai/stable-diffusion-xl-base-1.0 scheduler/scheduler_config.json
SDXL = {
    "_class_name": "EulerDiscreteScheduler",
    "_diffusers_version": "0.19.0.dev0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
    "use_karras_sigmas": False,
}

# kind name -> (class, forced from_config overrides). Easel's kind decides the
# algorithm: "dpmpp_2m" is never Karras, whatever the config says.
KINDS = {
    "euler": (EulerDiscreteScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "dpmpp_2m": (DPMSolverMultistepScheduler, {"use_karras_sigmas": False}),
    "dpmpp_2m_karras": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}),
    "ddim": (DDIMScheduler, {}),
}
ALL = list(KINDS)

STEPS = [1, 4, 5, 6, 10, 25, 30, 50]
SHAPE = (1, 4, 4, 4)
BANK = 25  # model outputs for step indices 0..24
IMG2IMG = [(10, 0.75), (25, 0.3)]

# (name, kinds, config overrides, schedule step counts, rollouts)
# a rollout is (steps, strength or None for text-to-image)
CASES = [
    ("sdxl", ALL, {}, STEPS, [(4, None), (6, None), (25, None)] + IMG2IMG),
    ("trailing", ALL, {"timestep_spacing": "trailing"}, STEPS + [61], [(6, None)]),
    ("linspace", ALL, {"timestep_spacing": "linspace"}, STEPS + [61], [(6, None)]),
    ("karras_cfg", ["euler"], {"use_karras_sigmas": True}, STEPS, [(6, None), (10, 0.75)]),
    ("vpred", ALL, {"prediction_type": "v_prediction"}, [6], [(6, None), (10, 0.75)]),
    ("sample_pred", ["euler", "dpmpp_2m", "ddim"], {"prediction_type": "sample"}, [4], [(4, None)]),
    (
        "zsnr_vpred",
        ["euler", "euler_a", "dpmpp_2m", "ddim"],
        {"prediction_type": "v_prediction", "rescale_betas_zero_snr": True, "timestep_spacing": "trailing"},
        [4, 25],
        [(6, None)],
    ),
    ("linear_betas", ["euler", "ddim"], {"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02}, [4, 25], []),
    ("cosine_betas", ["euler", "dpmpp_2m", "ddim"], {"beta_schedule": "squaredcos_cap_v2"}, [4, 25], [(4, None)]),
    ("final_sigma_min", ["euler", "dpmpp_2m", "dpmpp_2m_karras"], {"final_sigmas_type": "sigma_min"}, [4, 25], [(6, None)]),
    # 15+ steps with a non-zero final sigma: DPM++ takes a second-order last step.
    ("final_sigma_min_long", ["dpmpp_2m"], {"final_sigmas_type": "sigma_min"}, [], [(25, None)]),
    ("karras_sigma_range", ["euler", "dpmpp_2m_karras"], {"use_karras_sigmas": True, "sigma_min": 0.1, "sigma_max": 10.0}, [4, 25], []),
    ("clip_sample", ["ddim"], {"clip_sample": True, "clip_sample_range": 1.5}, [], [(6, None)]),
]

tensors = {}


def put(key, t):
    assert key not in tensors, key
    tensors[key] = t.detach().to(torch.float32).contiguous().clone()


class NoiseRecorder:
    """Wraps the Euler Ancestral module's randn_tensor to record each draw."""

    def __init__(self):
        self.draws = []
        self.inner = ea_module.randn_tensor

    def __call__(self, *args, **kwargs):
        t = self.inner(*args, **kwargs)
        self.draws.append(t.clone())
        return t


recorder = NoiseRecorder()
ea_module.randn_tensor = recorder


def make(kind, config):
    cls, forced = KINDS[kind]
    return cls.from_config(config, **forced)


def as_list(t):
    return [float(v) for v in t.tolist()]


def rust_rejects(kind, sched):
    # DDIM indexes alphas_cumprod by timestep; diffusers wraps negative ones around.
    if kind == "ddim":
        ts = sched.timesteps
        return bool((ts < 0).any() or (ts >= sched.config.num_train_timesteps).any())
    return False


def rollout(kind, config, steps, strength, key, gen):
    sched = make(kind, config)
    sched.set_timesteps(steps)
    x0 = tensors["x0"]
    if strength is None:
        begin = 0
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(0)
        timesteps = sched.timesteps
        sample = x0 * sched.init_noise_sigma
    else:
        init_timestep = min(int(steps * strength), steps)
        t_start = max(steps - init_timestep, 0)
        begin = t_start * sched.order
        timesteps = sched.timesteps[begin:]
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(begin)
        sample = sched.add_noise(x0, tensors["noise"], timesteps[:1].repeat(1))
    put(f"{key}.init", sample)
    scaled_all, outs, noises = [], [], []
    identity_scale = kind in ("dpmpp_2m", "dpmpp_2m_karras", "ddim")
    for j, t in enumerate(timesteps):
        i = begin + j
        scaled = sched.scale_model_input(sample, t)
        if identity_scale:
            assert torch.equal(scaled, sample)
        else:
            scaled_all.append(scaled)
        recorder.draws.clear()
        out = sched.step(tensors[f"model_out.{i}"], t, sample, generator=gen).prev_sample
        if kind == "euler_a":
            assert len(recorder.draws) == 1
            noises.append(recorder.draws[0])
        else:
            assert not recorder.draws
        outs.append(out)
        sample = out
    for name, ts in (("scaled", scaled_all), ("out", outs), ("noise", noises)):
        if ts:
            put(f"{key}.{name}", torch.stack(ts))
    return begin, len(sched.timesteps)


def main():
    torch.manual_seed(0)
    put("x0", torch.randn(SHAPE))
    put("noise", torch.randn(SHAPE))
    for i in range(BANK):
        put(f"model_out.{i}", torch.randn(SHAPE))

    # Training tables, to check the float32 emulation directly.
    for name, cfg in [
        ("scaled_linear", SDXL),
        ("linear", {**SDXL, "beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02}),
        ("cosine", {**SDXL, "beta_schedule": "squaredcos_cap_v2"}),
        ("zsnr", {**SDXL, "rescale_betas_zero_snr": True}),
    ]:
        s = EulerDiscreteScheduler.from_config(cfg)
        put(f"table.{name}.alphas_cumprod", s.alphas_cumprod)

    cases = []
    gen = torch.Generator().manual_seed(1234)
    for name, kinds, overrides, schedule_steps, rollouts in CASES:
        config = {**SDXL, **overrides}
        for kind in kinds:
            entry = {"name": f"{name}/{kind}", "kind": kind, "overrides": overrides, "schedules": [], "rollouts": []}
            for steps in schedule_steps:
                sched = make(kind, config)
                sched.set_timesteps(steps)
                rec = {
                    "steps": steps,
                    "timesteps": as_list(sched.timesteps),
                    "init_noise_sigma": float(sched.init_noise_sigma),
                    "rust_rejects": rust_rejects(kind, sched),
                }
                if hasattr(sched, "sigmas") and kind != "ddim":
                    rec["sigmas"] = as_list(sched.sigmas)
                entry["schedules"].append(rec)
            for steps, strength in rollouts:
                key = f"{name}/{kind}/{steps}" + ("" if strength is None else f"/img2img{strength}")
                begin, n = rollout(kind, config, steps, strength, key, gen)
                entry["rollouts"].append(
                    {"key": key, "steps": steps, "strength": strength, "begin": begin, "len": n}
                )
            cases.append(entry)

    os.makedirs(OUT_DIR, exist_ok=True)
    save_file(tensors, os.path.join(OUT_DIR, "scheduler_refs.safetensors"))
    meta = {
        "generator": "scripts/scheduler_refs.py",
        "diffusers": diffusers.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "shape": list(SHAPE),
        "base_config": SDXL,
        "cases": cases,
    }
    with open(os.path.join(OUT_DIR, "scheduler_refs.json"), "w") as f:
        json.dump(meta, f, separators=(",", ":"))
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(OUT_DIR, f"scheduler_refs.{e}")) for e in ("json", "safetensors"))
    print(f"wrote {len(tensors)} tensors, {len(cases)} cases, {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
