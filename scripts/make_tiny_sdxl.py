"""Build random-weight SDXL models with diffusers and record diffusers' reference tensors.

Easel's Rust parity tests compare against what this script writes.

Default (no flag): a tiny SDXL (same topology as SDXL-base, tiny widths, about 1.4M
parameters, fp32) and its references:
    crates/easel-sdxl/assets/tiny-sdxl/                  diffusers layout (save_pretrained)
    crates/easel-sdxl/tests/fixtures/tiny_refs.safetensors + tiny_refs.json
    crates/easel-sdxl/tests/fixtures/init.png            img2img init image (8-bit RGB)

Other shapes (not run in CI):
    --full-size DIR      SDXL-base-shaped model (random weights, real config values, full CLIP
                         vocabulary), weights saved as fp16 (variant "fp16"), references computed in
                         fp32 from the fp16-rounded weights at 64x64: DIR/refs.safetensors + DIR/refs.json
    --full-size-dry DIR  checks the --full-size configs on the meta device (parameter counts) and
                         runs the --full-size code path end to end with the tiny shapes into DIR
    --reduced DIR        CPU benchmark model: SDXL depth pattern, UNet widths (64,128,256),
                         full-size text encoders and VAE, fp32, same small references
    --weights-only       with --full-size or --reduced: the model alone (for benchmarks)

Run with the reference venv (versions pinned in scripts/requirements-ref.txt):
    /work/venv/ref/bin/python scripts/make_tiny_sdxl.py

Everything is seeded and single-precision; reruns on the same machine/versions give
byte-identical files. ftfy must NOT be installed (the tokenizer reference is transformers'
CLIPTokenizer, which in transformers 5 is the `tokenizers`-backed implementation).
"""

import argparse
import gc
import gzip
import hashlib
import importlib
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
from torch import nn
from PIL import Image
from safetensors.torch import save_file

import diffusers
import transformers
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATE = os.path.join(REPO, "crates", "easel-sdxl")
BPE_GZ = os.path.join(CRATE, "assets", "clip", "bpe_simple_vocab_16e6.txt.gz")
TINY_DIR = os.path.join(CRATE, "assets", "tiny-sdxl")
FIXTURES = os.path.join(CRATE, "tests", "fixtures")

MAX_LEN = 77
BOS, EOS = "<|startoftext|>", "<|endoftext|>"

# SDXL-base scheduler/scheduler_config.json, verbatim values.
SDXL_SCHEDULER = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    num_train_timesteps=1000,
    steps_offset=1,
    timestep_spacing="leading",
    interpolation_type="linear",
    prediction_type="epsilon",
    use_karras_sigmas=False,
    clip_sample=False,
    set_alpha_to_one=False,
    sample_max_value=1.0,
    skip_prk_steps=True,
    trained_betas=None,
)

PROMPT = "a photo of an astronaut riding a horse, detailed"
NEGATIVE = "blurry, low quality"

TOKEN_PROMPTS = [
    PROMPT,
    "",
    "Hello, World! How's it going? I don't know; they're here & we'll see...",
    "café naïve résumé Ångström Crème Brûlée",
    "a cute cat 😺 with a 🎩 hat 🚀🚀",
    "東京の夜景 and 北京 city",
    "1024x1024, 3.14159, 2023-10-01, #42 @user 100%",
    "  multiple   spaces\n\nand\tnewlines\r\n here  ",
    "UPPER lower MiXeD CaSe",
    "<|startoftext|> literal specials <|endoftext|>",
    " ".join(["masterpiece, best quality, ultra detailed, 8k wallpaper"] * 8),  # > 77 tokens
    "Привет мир, γειά σου κόσμε, مرحبا",
    "it's she'll we've I'm you'd THEY'RE don't",
]


# ----------------------------------------------------------------------------------------------
# Tokenizer: CLIP BPE vocabulary (possibly truncated to the first K merges)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def clip_vocab(vocab_size):
    """Vocab (token -> id) and merges in CLIP's own construction order, truncated to vocab_size."""
    lines = gzip.open(BPE_GZ).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
    assert len(merges) == 48894
    k = vocab_size - 512 - 2
    assert 0 <= k <= len(merges)
    merges = merges[:k]
    byte_chars = list(bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges] + [BOS, EOS]
    assert len(tokens) == vocab_size and len(set(tokens)) == vocab_size
    vocab = {t: i for i, t in enumerate(tokens)}
    # consistency: every merge's parts are already in the (truncated) vocabulary
    for a, b in merges:
        assert a in vocab and b in vocab, (a, b)
    return vocab, merges


def write_vocab_files(d, vocab, merges):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")


def build_tokenizers(vocab_size):
    """CLIPTokenizer pair as in SDXL-base: tokenizer pads with <|endoftext|>, tokenizer_2 with '!' (id 0).

    Built in memory from the vocab dict + merges (transformers 5 API) and cross-checked against
    CLIPTokenizer.from_pretrained on a folder holding just vocab.json + merges.txt.
    NB transformers 5: CLIPTokenizer(vocab_file=..., merges_file=...) silently ignores the files
    (it builds a 3-token vocab), so that v4-style call must not be used.
    NB the pad token '!' becomes a special added token of tokenizer_2, so a '!' in a prompt is
    id 0 there (and '!</w>' = 256 in tokenizer) -- same as SDXL-base's real tokenizer_2.
    """
    vocab, merges = clip_vocab(vocab_size)
    tok1 = CLIPTokenizer(vocab=vocab, merges=merges, pad_token=EOS, model_max_length=MAX_LEN)
    tok2 = CLIPTokenizer(vocab=vocab, merges=merges, pad_token="!", model_max_length=MAX_LEN)
    d = tempfile.mkdtemp(prefix="easel_vocab_")
    write_vocab_files(d, vocab, merges)
    f1 = CLIPTokenizer.from_pretrained(d, pad_token=EOS, model_max_length=MAX_LEN)
    f2 = CLIPTokenizer.from_pretrained(d, pad_token="!", model_max_length=MAX_LEN)
    shutil.rmtree(d)
    assert len(tok1) == vocab_size and len(tok2) == vocab_size, (len(tok1), len(tok2))
    assert tok1.bos_token_id == vocab_size - 2 and tok1.eos_token_id == vocab_size - 1
    assert tok1.pad_token_id == vocab_size - 1 and tok2.pad_token_id == 0
    assert tok2("!").input_ids == [vocab_size - 2, 0, vocab_size - 1]
    for p in TOKEN_PROMPTS:
        for a, b in [(tok1, f1), (tok2, f2)]:
            kw = dict(padding="max_length", max_length=MAX_LEN, truncation=True)
            assert a(p, **kw).input_ids == b(p, **kw).input_ids, p
    return tok1, tok2, vocab, merges


# ----------------------------------------------------------------------------------------------
# Model specs


def text_config(vocab_size, hidden, inter, layers, heads, act, proj, bos, eos):
    return dict(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=inter,
        projection_dim=proj,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=MAX_LEN,
        hidden_act=act,
        layer_norm_eps=1e-5,
        attention_dropout=0.0,
        dropout=0.0,
        initializer_range=0.02,
        initializer_factor=1.0,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=1,
    )


def unet_config(boc, heads, tlpb, groups, cross, atd, proj_in, sample_size):
    return dict(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        center_input_sample=False,
        flip_sin_to_cos=True,
        freq_shift=0,
        down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        mid_block_type="UNetMidBlock2DCrossAttn",
        up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        only_cross_attention=False,
        block_out_channels=list(boc),
        layers_per_block=2,
        downsample_padding=1,
        mid_block_scale_factor=1,
        act_fn="silu",
        norm_num_groups=groups,
        norm_eps=1e-5,
        cross_attention_dim=cross,
        transformer_layers_per_block=list(tlpb),
        encoder_hid_dim=None,
        encoder_hid_dim_type=None,
        attention_head_dim=list(heads),  # diffusers' SDXL quirk: this is the number of heads
        num_attention_heads=None,
        dual_cross_attention=False,
        use_linear_projection=True,
        class_embed_type=None,
        addition_embed_type="text_time",
        addition_time_embed_dim=atd,
        addition_embed_type_num_heads=64,
        num_class_embeds=None,
        upcast_attention=None,
        resnet_time_scale_shift="default",
        resnet_skip_time_act=False,
        resnet_out_scale_factor=1.0,
        time_embedding_type="positional",
        time_embedding_dim=None,
        time_embedding_act_fn=None,
        timestep_post_act=None,
        time_cond_proj_dim=None,
        conv_in_kernel=3,
        conv_out_kernel=3,
        projection_class_embeddings_input_dim=proj_in,
        class_embeddings_concat=False,
        mid_block_only_cross_attention=None,
        cross_attention_norm=None,
    )


def vae_config(boc, groups, sample_size):
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        block_out_channels=list(boc),
        layers_per_block=2,
        act_fn="silu",
        latent_channels=4,
        norm_num_groups=groups,
        sample_size=sample_size,
        scaling_factor=0.13025,
        force_upcast=True,
    )


def spec_tiny():
    v = 1000
    return dict(
        name="tiny",
        vocab_size=v,
        te1=text_config(v, 32, 64, 3, 4, "quick_gelu", 32, v - 2, v - 1),
        te2=text_config(v, 64, 128, 3, 4, "gelu", 32, v - 2, v - 1),
        # widths (16,24,32) instead of (16,32,64) keep the whole model under 1.5M parameters;
        # head dims differ per level (24/4=6, 32/8=4).
        unet=unet_config((16, 24, 32), (2, 4, 8), (1, 2, 3), 8, 32 + 64, 8, 6 * 8 + 32, 8),
        vae=vae_config((8, 16, 24, 24), 8, 64),
    )


def spec_full():
    v = 49408
    return dict(
        name="full",
        vocab_size=v,
        # SDXL-base text_encoder / text_encoder_2 config.json values (bos 0 / eos 2 as shipped,
        # which makes transformers pool at argmax(input_ids), the legacy path)
        te1=text_config(v, 768, 3072, 12, 12, "quick_gelu", 768, 0, 2),
        te2=text_config(v, 1280, 5120, 32, 20, "gelu", 1280, 0, 2),
        unet=unet_config((320, 640, 1280), (5, 10, 20), (1, 2, 10), 32, 2048, 256, 2816, 128),
        vae=vae_config((128, 256, 512, 512), 32, 1024),
    )


def spec_reduced():
    s = spec_full()
    s["name"] = "reduced"
    # head dim 64 as in SDXL-base -> heads (1, 2, 4)
    s["unet"] = unet_config((64, 128, 256), (1, 2, 4), (1, 2, 10), 32, 2048, 256, 2816, 128)
    return s


# Known parameter counts of the real SDXL-base components (for the meta-device check).
SDXL_BASE_PARAMS = dict(unet=2567463684, vae=83653863, text_encoder=123060480, text_encoder_2=694659840)


# ----------------------------------------------------------------------------------------------
# Deterministic re-initialisation of every parameter


def reinit_(model, seed, emb_std, device="cpu"):
    """Every parameter gets fresh random values so no path is trivially zero.

    Linear/Conv weights ~ N(0, 1/fan_in) (activations stay O(1)), biases ~ N(0, 0.05^2),
    norm weights ~ 1 + N(0, 0.1^2), norm biases ~ N(0, 0.05^2), embeddings ~ N(0, emb_std^2).
    Drawn on `device` (a CUDA generator gives other values than the CPU one, seeded alike).
    """
    g = torch.Generator(device=device).manual_seed(seed)
    done = 0
    with torch.no_grad():
        for mname, m in model.named_modules():
            for pname, p in m.named_parameters(recurse=False):
                if isinstance(m, (nn.Linear, nn.Conv2d)) and pname == "weight":
                    std = 1.0 / math.sqrt(p[0].numel())
                    mean = 0.0
                elif isinstance(m, (nn.Linear, nn.Conv2d)) and pname == "bias":
                    std, mean = 0.05, 0.0
                elif isinstance(m, (nn.LayerNorm, nn.GroupNorm)):
                    std, mean = (0.1, 1.0) if pname == "weight" else (0.05, 0.0)
                elif isinstance(m, nn.Embedding):
                    std, mean = emb_std, 0.0
                else:
                    raise RuntimeError(f"unhandled parameter {mname}.{pname} of {type(m).__name__}")
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float32, device=device) * std + mean)
                done += p.numel()
    assert done == sum(p.numel() for p in model.parameters())


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def round_to_fp16_(m):
    """Round weights to fp16 and keep them fp16 (what gets saved); refs are later computed in fp32."""
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.half().float())
    m.to(torch.float16)


def build_pipeline(spec, fp16=False, seed=1234, device="cpu"):
    """The pipeline with random weights; `device="cuda"` builds and draws them on the GPU
    (seconds instead of minutes for the full-size model), and leaves them there."""
    tok1, tok2, vocab, merges = build_tokenizers(spec["vocab_size"])
    with torch.device(device):
        te1 = CLIPTextModel(CLIPTextConfig(**spec["te1"])).float()
        te2 = CLIPTextModelWithProjection(CLIPTextConfig(**spec["te2"])).float()
        unet = UNet2DConditionModel(**spec["unet"]).float()
        vae = AutoencoderKL(**spec["vae"]).float()
    for i, (m, emb) in enumerate([(te1, 0.5), (te2, 0.5), (unet, 0.0), (vae, 0.0)]):
        reinit_(m, seed + i, emb, device)
        if fp16:  # convert each component right away: lower peak memory for the full-size model
            round_to_fp16_(m)
    sched = EulerDiscreteScheduler.from_config(SDXL_SCHEDULER)  # keeps the DDIM-style extra keys
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=te1,
        text_encoder_2=te2,
        tokenizer=tok1,
        tokenizer_2=tok2,
        unet=unet,
        scheduler=sched,
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )
    return pipe, vocab, merges


def param_counts(pipe):
    return {k: n_params(getattr(pipe, k)) for k in ["text_encoder", "text_encoder_2", "unet", "vae"]}


def save_model(pipe, out_dir, vocab, merges, fp16):
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    if fp16:
        for k in ["text_encoder", "text_encoder_2", "unet", "vae"]:
            assert getattr(pipe, k).dtype == torch.float16
        pipe.save_pretrained(out_dir, safe_serialization=True, variant="fp16")
    else:
        pipe.save_pretrained(out_dir, safe_serialization=True)
    # CLIP-style vocab.json + merges.txt next to transformers' tokenizer.json
    for sub in ["tokenizer", "tokenizer_2"]:
        write_vocab_files(os.path.join(out_dir, sub), vocab, merges)


def load_model(out_dir, fp16):
    kw = dict(variant="fp16") if fp16 else {}
    pipe = StableDiffusionXLPipeline.from_pretrained(out_dir, dtype=torch.float32, add_watermarker=False, **kw)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.tokenizer.pad_token_id == pipe.tokenizer.eos_token_id and pipe.tokenizer_2.pad_token_id == 0
    assert pipe.tokenizer.model_max_length == MAX_LEN and pipe.tokenizer_2.model_max_length == MAX_LEN
    assert pipe.watermark is None and pipe.config.force_zeros_for_empty_prompt
    return pipe


# ----------------------------------------------------------------------------------------------
# Recording every random draw diffusers makes


RANDN_MODULES = {
    "diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl": "prepare_latents",
    "diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl_img2img": "add_noise",
    "diffusers.models.autoencoders.vae": "vae_sample",
    "diffusers.schedulers.scheduling_euler_discrete": "scheduler_step",
    "diffusers.schedulers.scheduling_euler_ancestral_discrete": "scheduler_step",
    "diffusers.schedulers.scheduling_dpmsolver_multistep": "scheduler_step",
    "diffusers.schedulers.scheduling_ddim": "scheduler_step",
    "diffusers.utils.torch_utils": "other",
}


class NoiseRecorder:
    """Wraps randn_tensor in each module namespace; also counts raw torch RNG calls as a cross-check."""

    def __init__(self):
        self.draws = None
        self.raw_calls = 0
        for modname, label in RANDN_MODULES.items():
            mod = importlib.import_module(modname)
            mod.randn_tensor = self._wrap(mod.randn_tensor, label)
        for fn in ["randn", "randn_like", "rand", "rand_like", "randint", "normal", "multinomial"]:
            setattr(torch, fn, self._count(getattr(torch, fn)))

    def _wrap(self, orig, label):
        def randn_tensor(*args, **kwargs):
            out = orig(*args, **kwargs)
            if self.draws is not None:
                self.draws.append((label, out.detach().clone()))
            return out

        return randn_tensor

    def _count(self, orig):
        def f(*args, **kwargs):
            if self.draws is not None:
                self.raw_calls += 1
            return orig(*args, **kwargs)

        return f

    def start(self):
        self.draws, self.raw_calls = [], 0

    def stop(self):
        draws, raw = self.draws, self.raw_calls
        self.draws = None
        assert raw == len(draws), f"{raw} raw torch RNG calls but {len(draws)} randn_tensor draws"
        return draws


# ----------------------------------------------------------------------------------------------
# References


def gen(seed):
    return torch.Generator("cpu").manual_seed(seed)


def randn(shape, seed):
    return torch.randn(shape, generator=gen(seed), dtype=torch.float32)


class Refs:
    def __init__(self):
        self.t = {}

    def add(self, name, x):
        assert name not in self.t, name
        x = torch.as_tensor(x).detach().cpu().contiguous()
        x = x.to(torch.int64) if not x.is_floating_point() else x.to(torch.float32)
        self.t[name] = x.clone()

    def save(self, path):
        save_file(self.t, path)

    def listing(self):
        return {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)} for k, v in sorted(self.t.items())}


@torch.no_grad()
def ref_tokens(pipe, refs, js):
    js["token_prompts"] = TOKEN_PROMPTS
    for i, p in enumerate(TOKEN_PROMPTS):
        for key, tok in [("tok1", pipe.tokenizer), ("tok2", pipe.tokenizer_2)]:
            ids = tok(p, padding="max_length", max_length=MAX_LEN, truncation=True).input_ids
            assert len(ids) == MAX_LEN
            refs.add(f"{key}.{i}", torch.tensor(ids, dtype=torch.int64))


def ref_tokens_full_vocab(refs, js):
    """Extra: the same prompts through tokenizers built on the FULL CLIP vocabulary (49408)."""
    tok1, tok2, _, _ = build_tokenizers(49408)
    for i, p in enumerate(TOKEN_PROMPTS):
        for key, tok in [("tokfull1", tok1), ("tokfull2", tok2)]:
            ids = tok(p, padding="max_length", max_length=MAX_LEN, truncation=True).input_ids
            refs.add(f"{key}.{i}", torch.tensor(ids, dtype=torch.int64))
    js["tokfull_note"] = "tokfull1/2.{i}: token_prompts with the full 49408-token CLIP vocabulary (tokenizer pads <|endoftext|>, tokenizer_2 pads '!')"


@torch.no_grad()
def ref_text(pipe, refs, js):
    js["te_prompt"] = PROMPT
    ids1 = pipe.tokenizer(PROMPT, padding="max_length", max_length=MAX_LEN, truncation=True, return_tensors="pt").input_ids
    ids2 = pipe.tokenizer_2(PROMPT, padding="max_length", max_length=MAX_LEN, truncation=True, return_tensors="pt").input_ids
    o1 = pipe.text_encoder(ids1, output_hidden_states=True)
    o2 = pipe.text_encoder_2(ids2, output_hidden_states=True)
    n1 = pipe.text_encoder.config.num_hidden_layers
    n2 = pipe.text_encoder_2.config.num_hidden_layers
    assert len(o1.hidden_states) == n1 + 1 and len(o2.hidden_states) == n2 + 1
    refs.add("te.ids1", ids1)
    refs.add("te.ids2", ids2)
    refs.add("te1.penultimate", o1.hidden_states[-2])
    refs.add("te1.last", o1.last_hidden_state)
    refs.add("te2.penultimate", o2.hidden_states[-2])
    refs.add("te2.text_embeds", o2.text_embeds)
    pe, _, pooled, _ = pipe.encode_prompt(PROMPT, device="cpu", do_classifier_free_guidance=False)
    assert torch.equal(pe, torch.cat([o1.hidden_states[-2], o2.hidden_states[-2]], -1))
    assert torch.equal(pooled, o2.text_embeds)
    refs.add("te.prompt_embeds", pe)
    refs.add("te.pooled", pooled)


@torch.no_grad()
def ref_unet(pipe, refs, js, name, shape, seed):
    unet = pipe.unet
    b = shape[0]
    cross = unet.config.cross_attention_dim
    proj = pipe.text_encoder_2.config.projection_dim
    sample = randn(shape, seed)
    t = torch.tensor([517.3], dtype=torch.float32)
    ehs = randn((b, MAX_LEN, cross), seed + 1)
    text_embeds = randn((b, proj), seed + 2)
    h, w = shape[2] * 8, shape[3] * 8
    rows = [[h, w, 0, 0, h, w], [h - 16, w, 4, 2, h - 16, w]]
    time_ids = torch.tensor(rows[:b], dtype=torch.float32)
    out = unet(
        sample,
        t[0],  # 0-dim float timestep, broadcast over the batch by diffusers
        encoder_hidden_states=ehs,
        added_cond_kwargs={"text_embeds": text_embeds, "time_ids": time_ids},
        return_dict=False,
    )[0]
    for k, v in [("sample", sample), ("timestep", t), ("encoder_hidden_states", ehs), ("text_embeds", text_embeds), ("time_ids", time_ids), ("out", out)]:
        refs.add(f"{name}.{k}", v)
    js.setdefault("unet_forwards", {})[name] = dict(seed=seed, timestep=517.3, note="timestep passed as a 0-dim float tensor; stored as shape [1]")
    return out


@torch.no_grad()
def ref_vae(pipe, refs, js, seed):
    vae = pipe.vae
    z = randn((1, 4, 8, 8), seed)
    dec = vae.decode(z).sample
    x = torch.rand((1, 3, 64, 64), generator=gen(seed + 1)) * 2 - 1
    dist = vae.encode(x).latent_dist
    refs.add("vae.dec_in", z)
    refs.add("vae.dec_out", dec)
    refs.add("vae.enc_in", x)
    refs.add("vae.enc_mean", dist.mean)
    refs.add("vae.enc_logvar", dist.logvar)
    js["vae"] = dict(
        seed=seed,
        note="dec_out = vae.decode(dec_in).sample (no scaling_factor applied); enc_logvar is clamped to [-30, 20] by diffusers",
    )
    return dec, dist


def init_image():
    """Deterministic 64x64 RGB pattern: gradients, a disc, a rectangle and a diagonal stripe."""
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float64)
    r = xx / 63.0
    g = yy / 63.0
    b = 0.5 + 0.5 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    img = np.stack([r, g, b], -1)
    disc = (xx - 40) ** 2 + (yy - 22) ** 2 < 11**2
    img[disc] = [0.95, 0.85, 0.1]
    rect = (xx >= 8) & (xx < 28) & (yy >= 38) & (yy < 56)
    img[rect] = [0.1, 0.3, 0.9]
    stripe = np.abs(xx - yy) < 2
    img[stripe] = [0.05, 0.05, 0.05]
    return Image.fromarray(np.round(img * 255).clip(0, 255).astype(np.uint8), "RGB")


SCHEDULERS = {
    "euler": (EulerDiscreteScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "dpmpp_2m": (DPMSolverMultistepScheduler, dict(algorithm_type="dpmsolver++", solver_order=2)),
    "dpmpp_2m_karras": (DPMSolverMultistepScheduler, dict(algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=True)),
    "ddim": (DDIMScheduler, {}),
}


def tiny_runs():
    d = dict(prompt=PROMPT, negative_prompt=NEGATIVE, width=64, height=64, guidance_scale=5.0, num_images_per_prompt=1)
    runs = [
        dict(d, name="euler", scheduler="euler", steps=5),
        dict(d, name="euler_a", scheduler="euler_a", steps=5),
        dict(d, name="dpmpp_2m", scheduler="dpmpp_2m", steps=6),
        dict(d, name="dpmpp_2m_karras", scheduler="dpmpp_2m_karras", steps=6),
        # negative_prompt None -> force_zeros_for_empty_prompt zeroes the negative embeddings
        dict(d, name="ddim", scheduler="ddim", steps=5, negative_prompt=None),
        # negative_prompt "" is NOT zeroed: diffusers encodes the empty string
        dict(d, name="euler_negempty", scheduler="euler", steps=3, negative_prompt=""),
        dict(d, name="euler_ns", scheduler="euler", steps=4, height=48),
        dict(d, name="euler_batch2", scheduler="euler", steps=4, num_images_per_prompt=2),
        dict(d, name="euler_nocfg", scheduler="euler", steps=4, guidance_scale=1.0),
        dict(d, name="img2img", scheduler="euler", steps=5, strength=0.6, img2img=True),
    ]
    for i, r in enumerate(runs):
        r["seed"] = 100 + 10 * i
    return runs


def run_pipeline(base, recorder, refs, r, init_png=None):
    name = r["name"]
    prefix = "img2img" if r.get("img2img") else f"pipe.{name}"
    cls, kw = SCHEDULERS[r["scheduler"]]
    if r.get("img2img"):
        pipe = StableDiffusionXLImg2ImgPipeline(**base.components, add_watermarker=False)
    else:
        pipe = StableDiffusionXLPipeline(**base.components, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.config.force_zeros_for_empty_prompt
    pipe.scheduler = cls.from_config(base.scheduler.config, **kw)
    n = r["num_images_per_prompt"]
    h, w = r["height"], r["width"]
    cfg = r["guidance_scale"] > 1.0

    # debugging helpers: embeddings exactly as the pipeline builds them
    with torch.no_grad():
        pe, npe, pooled, npooled = pipe.encode_prompt(
            r["prompt"], device="cpu", num_images_per_prompt=n, do_classifier_free_guidance=cfg, negative_prompt=r["negative_prompt"]
        )
    refs.add(f"{prefix}.prompt_embeds", pe)
    refs.add(f"{prefix}.pooled", pooled)
    if cfg:
        refs.add(f"{prefix}.negative_prompt_embeds", npe)
        refs.add(f"{prefix}.negative_pooled", npooled)

    steps, unet_calls = [], []

    def on_step_end(_pipe, i, t, kw_):
        steps.append((i, t.detach().clone(), kw_["latents"].detach().clone()))
        return kw_

    def unet_hook(_m, args, kwargs, output):
        if not unet_calls:
            unet_calls.append(
                dict(
                    sample=args[0].detach().clone(),
                    timestep=torch.as_tensor(args[1]).detach().clone().reshape(-1)[:1].float(),
                    encoder_hidden_states=kwargs["encoder_hidden_states"].detach().clone(),
                    text_embeds=kwargs["added_cond_kwargs"]["text_embeds"].detach().clone(),
                    time_ids=kwargs["added_cond_kwargs"]["time_ids"].detach().clone(),
                    out=output[0].detach().clone(),
                )
            )
        else:
            unet_calls.append(None)

    decode_in = []

    def vae_decode_hook(_m, args):
        decode_in.append(args[0].detach().clone())

    handles = [
        pipe.unet.register_forward_hook(unet_hook, with_kwargs=True),
        pipe.vae.post_quant_conv.register_forward_pre_hook(vae_decode_hook),
    ]
    call = dict(
        prompt=r["prompt"],
        negative_prompt=r["negative_prompt"],
        num_inference_steps=r["steps"],
        guidance_scale=r["guidance_scale"],
        num_images_per_prompt=n,
        generator=gen(r["seed"]),
        output_type="pt",
        callback_on_step_end=on_step_end,
    )
    js_run = {k: v for k, v in r.items()}
    if r.get("img2img"):
        img = Image.open(init_png).convert("RGB")
        fed = torch.from_numpy(np.asarray(img).astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        refs.add("img2img.init", fed)
        call.update(image=img, strength=r["strength"])
        enc_in = []
        handles.append(pipe.vae.encoder.register_forward_pre_hook(lambda _m, a: enc_in.append(a[0].detach().clone())))
    else:
        latents_in = randn((n, 4, h // 8, w // 8), r["seed"] + 1)
        refs.add(f"{prefix}.latents_in", latents_in)
        call.update(height=h, width=w, latents=latents_in.clone())
        js_run["init_noise_sigma"] = None  # filled below

    recorder.start()
    with torch.no_grad():
        image = pipe(**call).images
    draws = recorder.stop()
    for hd in handles:
        hd.remove()

    if r.get("img2img"):
        assert len(enc_in) == 1 and torch.allclose((enc_in[0] + 1) / 2, fed, atol=1e-6), "img2img image preprocessing changed pixels"
    else:
        js_run["init_noise_sigma"] = float(pipe.scheduler.init_noise_sigma)

    refs.add(f"{prefix}.image", image)
    for i, t, lat in steps:
        refs.add(f"{prefix}.step{i}", lat)
    refs.add(f"{prefix}.latents_out", steps[-1][2])
    assert len(decode_in) == 1
    assert torch.allclose(decode_in[0], steps[-1][2] / pipe.vae.config.scaling_factor)
    refs.add(f"{prefix}.timesteps", torch.stack([t.float().reshape(()) for _, t, _ in steps]))
    if hasattr(pipe.scheduler, "sigmas") and pipe.scheduler.sigmas is not None:
        refs.add(f"{prefix}.sigmas", pipe.scheduler.sigmas.float())
    first = unet_calls[0]
    refs.add(f"{prefix}.add_time_ids", first["time_ids"])
    for k in ["sample", "timestep", "encoder_hidden_states", "text_embeds", "out"]:
        refs.add(f"{prefix}.unet0.{k}", first[k])
    for k, (label, x) in enumerate(draws):
        refs.add(f"{prefix}.noise{k}", x)

    js_run.update(
        prefix=prefix,
        pipeline=type(pipe).__name__,
        scheduler_class=type(pipe.scheduler).__name__,
        scheduler_config=clean_config(pipe.scheduler.config),
        generator_seed=r["seed"],
        latents_seed=None if r.get("img2img") else r["seed"] + 1,
        timesteps_used=[float(t) for _, t, _ in steps],
        unet_calls=len(unet_calls),
        noise_count=len(draws),
        noise_order=[label for label, _ in draws],
        noise_shapes=[list(x.shape) for _, x in draws],
        begin_index=getattr(pipe.scheduler, "begin_index", None),
    )
    return js_run


def clean_config(cfg):
    """dict(config) with diffusers' set-ordered `_use_default_values` sorted (reruns stay byte-identical)."""
    d = dict(cfg)
    if "_use_default_values" in d:
        d["_use_default_values"] = sorted(d["_use_default_values"])
    return d


def tensor_stats(refs):
    out = {}
    for k, v in refs.t.items():
        if v.is_floating_point() and v.numel() > 1:
            out[k] = (float(v.mean()), float(v.std()), float(v.abs().max()))
    return out


def make_refs(pipe, out_prefix, level, spec_name, counts, configs, work_dir):
    recorder = NoiseRecorder()
    refs = Refs()
    js = dict(
        about="Reference tensors recorded from diffusers by scripts/make_tiny_sdxl.py",
        model=spec_name,
        versions=dict(
            python=sys.version.split()[0],
            torch=torch.__version__,
            diffusers=diffusers.__version__,
            transformers=transformers.__version__,
            numpy=np.__version__,
        ),
        param_counts=counts,
        configs=configs,
        dtype="float32 (token ids int64)",
        notes=[
            "All pipeline runs pass latents= (latents_in), so prepare_latents draws nothing; txt2img multiplies latents_in by scheduler.init_noise_sigma (json runs[].init_noise_sigma: Euler/Euler-a with 'leading' spacing = sqrt(sigmas[0]^2+1), DPM++/DDIM = 1).",
            "CFG batches are [uncond; cond] (unet0.* and add_time_ids are the full UNet batch); noise_pred = u + g*(c-u). guidance_scale 1.0 -> no CFG, batch = images only.",
            "negative_prompt None + force_zeros_for_empty_prompt -> negative embeds and pooled are exact zeros (ddim run); negative_prompt '' is encoded like any prompt (euler_negempty).",
            "step{k} = latents after scheduler step k (callback_on_step_end); latents_out = last step; the VAE decodes latents_out / scaling_factor and image = clamp(dec/2+0.5, 0, 1).",
            "img2img: t_start = steps - int(steps*strength); timesteps = scheduler.timesteps[t_start:], set_begin_index(t_start); init = scaling_factor * (mean + exp(0.5*logvar)*noise0) from vae.encode(2*init-1); latents = init + noise1*sigmas[t_start] (Euler add_noise, no init_noise_sigma); original/target size = latent size*8.",
            "Token ids: tokenizer_2 treats its pad token '!' as a special added token, so a '!' inside a prompt is id 0 in tok2 but '!</w>' (256) in tok1.",
        ],
        randn_labels=dict(
            prepare_latents="StableDiffusionXLPipeline.prepare_latents (never fires here: latents are given)",
            vae_sample="DiagonalGaussianDistribution.sample in vae.encode (img2img: retrieve_latents, sample_mode='sample')",
            add_noise="img2img prepare_latents: noise for scheduler.add_noise(init_latents, noise, timesteps[:1])",
            scheduler_step="scheduler.step per-step noise (Euler Ancestral: one draw every step, the last is multiplied by sigma_up=0)",
        ),
    )
    ref_tokens(pipe, refs, js)
    if level == "tiny":
        ref_tokens_full_vocab(refs, js)
    ref_text(pipe, refs, js)
    unet_shape = (2, 4, 8, 8)
    ref_unet(pipe, refs, js, "unet", unet_shape, 11)
    if level == "tiny":
        ref_unet(pipe, refs, js, "unet_ns", (1, 4, 6, 8), 21)
    ref_vae(pipe, refs, js, 31)

    init_png = None
    if level == "tiny":
        runs = tiny_runs()
        init_png = os.path.join(os.path.dirname(out_prefix), "init.png")
        init_image().save(init_png, format="PNG")
        js["init_png"] = os.path.basename(init_png)
    else:
        runs = [dict(name="euler", scheduler="euler", steps=3, prompt=PROMPT, negative_prompt=NEGATIVE, width=64, height=64, guidance_scale=5.0, num_images_per_prompt=1, seed=100)]
    js["run_names"] = [r["name"] for r in runs]
    js["runs"] = []
    for r in runs:
        print(f"  run {r['name']}", flush=True)
        js["runs"].append(run_pipeline(pipe, recorder, refs, r, init_png))

    js["tensors"] = refs.listing()
    stats = tensor_stats(refs)
    js["stats_mean_std_absmax"] = {k: [round(x, 4) for x in v] for k, v in sorted(stats.items())}
    refs.save(out_prefix + ".safetensors")
    with open(out_prefix + ".json", "w", encoding="utf-8") as f:
        # Strict JSON (no NaN/Infinity literals) so any JSON parser reads it.
        json.dump(finite_json(js), f, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False)
        f.write("\n")
    return refs, js


def finite_json(x):
    """Replaces non-finite floats with the strings "inf", "-inf" and "nan"."""
    if isinstance(x, float) and x != x:
        return "nan"
    if isinstance(x, float) and x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    if isinstance(x, dict):
        return {k: finite_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite_json(v) for v in x]
    return x


def configs_of(pipe):
    return dict(
        text_encoder=pipe.text_encoder.config.to_dict(),
        text_encoder_2=pipe.text_encoder_2.config.to_dict(),
        unet=clean_config(pipe.unet.config),
        vae=clean_config(pipe.vae.config),
        scheduler=clean_config(pipe.scheduler.config),
        force_zeros_for_empty_prompt=pipe.config.force_zeros_for_empty_prompt,
    )


def jsonable(x):
    return json.loads(json.dumps(x, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


def make_model_and_refs(spec, model_dir, refs_prefix, fp16, level, refs=True):
    print(f"building {spec['name']} model -> {model_dir}", flush=True)
    pipe, vocab, merges = build_pipeline(spec, fp16=fp16)
    counts = param_counts(pipe)
    counts["total"] = sum(counts.values())
    for k, v in counts.items():
        print(f"  params {k:15s} {v:>13,d}")
    save_model(pipe, model_dir, vocab, merges, fp16)
    if not refs:
        return None
    ref_state = {k: {n: p.clone() for n, p in getattr(pipe, k).state_dict().items()} for k in ["unet", "vae"]} if level == "tiny" else None
    del pipe
    gc.collect()
    pipe = load_model(model_dir, fp16)
    if ref_state is not None:  # the reloaded model is exactly what was built
        for k, sd in ref_state.items():
            for n, p in getattr(pipe, k).state_dict().items():
                assert torch.equal(p, sd[n]), (k, n)
    print("recording references", flush=True)
    make_refs(pipe, refs_prefix, level, spec["name"], counts, jsonable(configs_of(pipe)), model_dir)
    return pipe


def meta_check(spec):
    """Instantiate the big configs on the meta device and compare with SDXL-base's known sizes."""
    with torch.device("meta"):
        counts = dict(
            text_encoder=n_params(CLIPTextModel(CLIPTextConfig(**spec["te1"]))),
            text_encoder_2=n_params(CLIPTextModelWithProjection(CLIPTextConfig(**spec["te2"]))),
            unet=n_params(UNet2DConditionModel(**spec["unet"])),
            vae=n_params(AutoencoderKL(**spec["vae"])),
        )
    for k, v in counts.items():
        ref = SDXL_BASE_PARAMS[k]
        print(f"  meta {spec['name']} {k:15s} {v:>13,d}  (SDXL-base {ref:>13,d}) {'OK' if v == ref else 'differs'}")
    return counts


def check_full_vocab():
    tok1, tok2, _, _ = build_tokenizers(49408)
    ids = tok1("a photo of an astronaut").input_ids
    print("  full vocab: 'a photo of an astronaut' ->", ids)
    assert ids == [49406, 320, 1125, 539, 550, 18376, 49407], ids
    assert tok2("!").input_ids == [49406, 0, 49407]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--full-size", metavar="DIR")
    g.add_argument("--full-size-dry", metavar="DIR")
    g.add_argument("--reduced", metavar="DIR")
    ap.add_argument("--weights-only", action="store_true", help="with --full-size/--reduced: write the model, no references (benchmarks)")
    args = ap.parse_args()

    torch.set_num_threads(2)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    diffusers.utils.logging.set_verbosity_error()

    if args.full_size or args.reduced:
        spec = spec_full() if args.full_size else spec_reduced()
        out = args.full_size or args.reduced
        os.makedirs(out, exist_ok=True)
        fp16 = bool(args.full_size)
        if args.full_size:
            meta_check(spec)
        make_model_and_refs(spec, os.path.join(out, "model"), os.path.join(out, "refs"), fp16, "big", not args.weights_only)
    elif args.full_size_dry:
        out = args.full_size_dry
        os.makedirs(out, exist_ok=True)
        meta_check(spec_full())
        meta_check(spec_reduced())
        check_full_vocab()
        # the --full-size code path (fp16 variant save/reload, fp32 refs) with the tiny shapes
        make_model_and_refs(spec_tiny(), os.path.join(out, "model"), os.path.join(out, "refs"), True, "big")
    else:
        os.makedirs(FIXTURES, exist_ok=True)
        make_model_and_refs(spec_tiny(), TINY_DIR, os.path.join(FIXTURES, "tiny_refs"), False, "tiny")
        for p in ["init.png", "tiny_refs.json", "tiny_refs.safetensors"]:
            fp = os.path.join(FIXTURES, p)
            print(f"  {p:28s} {os.path.getsize(fp):>9,d} B  sha256 {sha256(fp)[:16]}")


if __name__ == "__main__":
    main()
