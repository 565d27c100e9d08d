"""Reference data for Easel's real-checkpoint features: single-file checkpoints, A1111 prompt
weighting and long prompts, and LoRAs, recorded from diffusers/transformers on the bundled tiny
SDXL (crates/easel-sdxl/assets/tiny-sdxl). Run after scripts/make_tiny_sdxl.py, with the same venv
plus `peft` (scripts/requirements-ref.txt):

    /work/venv/ref/bin/python scripts/make_checkpoint_refs.py

Writes:
    crates/easel-sdxl/assets/sdxl-base/            Easel's shipped SDXL-base configs (config.json
                                                   values of stabilityai/stable-diffusion-xl-base-1.0,
                                                   diffusers/transformers defaults filled in)
    crates/easel-sdxl/tests/fixtures/single_file_refs.{safetensors,json}
        The tiny model converted to one LDM-layout file (f32, f16, bf16; this script's own
        diffusers->LDM mapping), loaded back with diffusers' `from_single_file` (offline, with
        `config=` the tiny folder), checked to give back exactly the folder's weights, and its
        outputs recorded. The JSON lists the file's keys/dtypes/shapes and a digest of each
        variant, so the Rust test can prove it derives the very same files.
    crates/easel-sdxl/tests/fixtures/prompt_refs.{safetensors,json}
        A1111 prompt weighting/long prompts (the rules of crates/easel-sdxl/src/prompt/mod.rs,
        implemented again here) on the tiny encoders with transformers, and one diffusers
        pipeline run fed with those embeddings.
    crates/easel-sdxl/tests/fixtures/lora_kohya.safetensors, lora_peft.safetensors
        Two tiny LoRAs (kohya layout with SGM UNet names and alphas; diffusers/PEFT layout with
        lora_alpha in the adapter metadata).
    crates/easel-sdxl/tests/fixtures/lora_refs.{safetensors,json}
        diffusers' load_lora_weights + fuse_lora(lora_scale=...) outputs for each LoRA and both.
"""

import hashlib
import json
import os
import re
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tiny_sdxl as mt  # noqa: E402  (shared helpers: paths, model loading, Refs, noise)

import diffusers  # noqa: E402
import transformers  # noqa: E402
from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel  # noqa: E402
from transformers import CLIPTextConfig  # noqa: E402

SDXL_BASE_DIR = os.path.join(mt.CRATE, "assets", "sdxl-base")
FIX = mt.FIXTURES

UNET, VAE = "model.diffusion_model.", "first_stage_model."
CLIP_L, CLIP_G = "conditioner.embedders.0.transformer.", "conditioner.embedders.1.model."


DTYPE_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}


def save_sorted(tensors, path, metadata=None):
    """safetensors with a header in sorted key order (safetensors' own writer orders the
    metadata by hash, so reruns would differ byte-wise)."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = dict(sorted(metadata.items()))
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.dim() else t.reshape(1).view(torch.uint8).numpy().tobytes()
        header[name] = dict(dtype=DTYPE_NAMES[t.dtype], shape=list(t.shape), data_offsets=[offset, offset + len(raw)])
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text.encode())
        for b in blobs:
            f.write(b)


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(mt.finite_json(obj), f, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False)
        f.write("\n")


# ----------------------------------------------------------------------------------------------
# Shipped SDXL-base configs


def write_sdxl_base_configs():
    spec = mt.spec_full()
    with torch.device("meta"):
        unet = mt.clean_config(UNet2DConditionModel(**spec["unet"]).config)
        vae = mt.clean_config(AutoencoderKL(**spec["vae"]).config)
    te1 = CLIPTextConfig(**spec["te1"]).to_diff_dict()
    te1["architectures"] = ["CLIPTextModel"]
    te2 = CLIPTextConfig(**spec["te2"]).to_diff_dict()
    te2["architectures"] = ["CLIPTextModelWithProjection"]
    sched = mt.clean_config(EulerDiscreteScheduler.from_config(mt.SDXL_SCHEDULER).config)
    with open(os.path.join(mt.TINY_DIR, "model_index.json")) as f:
        index = json.load(f)
    for rel, cfg in [
        ("model_index.json", index),
        ("unet/config.json", unet),
        ("vae/config.json", vae),
        ("text_encoder/config.json", te1),
        ("text_encoder_2/config.json", te2),
        ("scheduler/scheduler_config.json", sched),
    ]:
        path = os.path.join(SDXL_BASE_DIR, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")


# ----------------------------------------------------------------------------------------------
# diffusers -> LDM (the layout of civitai single files), written from the original UNet/VAE code


RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
          ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection")]


def unet_module_map(cfg):
    """diffusers module path -> (LDM module path, is_resnet)."""
    n = len(cfg["block_out_channels"])
    lpb = cfg["layers_per_block"]
    layers = lpb if isinstance(lpb, list) else [lpb] * n
    m = {
        "conv_in": ("input_blocks.0.0", False),
        "time_embedding.linear_1": ("time_embed.0", False),
        "time_embedding.linear_2": ("time_embed.2", False),
        "add_embedding.linear_1": ("label_emb.0.0", False),
        "add_embedding.linear_2": ("label_emb.0.2", False),
        "conv_norm_out": ("out.0", False),
        "conv_out": ("out.2", False),
        "mid_block.resnets.0": ("middle_block.0", True),
        "mid_block.attentions.0": ("middle_block.1", False),
        "mid_block.resnets.1": ("middle_block.2", True),
    }
    k = 1
    for i in range(n):
        attn = cfg["down_block_types"][i].startswith("CrossAttn")
        for j in range(layers[i]):
            m[f"down_blocks.{i}.resnets.{j}"] = (f"input_blocks.{k}.0", True)
            if attn:
                m[f"down_blocks.{i}.attentions.{j}"] = (f"input_blocks.{k}.1", False)
            k += 1
        if i < n - 1:
            m[f"down_blocks.{i}.downsamplers.0.conv"] = (f"input_blocks.{k}.0.op", False)
            k += 1
    k = 0
    for i in range(n):
        attn = cfg["up_block_types"][i].startswith("CrossAttn")
        count = layers[n - 1 - i] + 1
        for j in range(count):
            m[f"up_blocks.{i}.resnets.{j}"] = (f"output_blocks.{k}.0", True)
            if attn:
                m[f"up_blocks.{i}.attentions.{j}"] = (f"output_blocks.{k}.1", False)
            if j == count - 1 and i < n - 1:
                m[f"up_blocks.{i}.upsamplers.0.conv"] = (f"output_blocks.{k}.{2 if attn else 1}.conv", False)
            k += 1
    return m


def split_module(key, modules):
    """The longest module of `modules` that `key` lies in, and the rest of the key."""
    parts = key.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        mod = ".".join(parts[:cut])
        if mod in modules:
            return mod, ".".join(parts[cut:])
    raise KeyError(key)


def unet_to_ldm(sd, cfg):
    modules = unet_module_map(cfg)
    out = {}
    for k, v in sd.items():
        mod, rest = split_module(k, modules)
        ldm, is_resnet = modules[mod]
        if is_resnet:
            for d, l in RESNET:
                if rest.startswith(d + "."):
                    rest = l + rest[len(d):]
                    break
        out[UNET + ldm + "." + rest] = v
    return out


def vae_to_ldm(sd, cfg):
    n = len(cfg["block_out_channels"])
    out = {}
    attn_names = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    for k, v in sd.items():
        new = k.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
        new = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)", r"encoder.down.\1.block.\2", new)
        new = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0", r"encoder.down.\1.downsample", new)
        new = re.sub(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)", lambda m: f"decoder.up.{n - 1 - int(m.group(1))}.block.{m.group(2)}", new)
        new = re.sub(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0", lambda m: f"decoder.up.{n - 1 - int(m.group(1))}.upsample", new)
        new = new.replace("mid_block.resnets.0", "mid.block_1").replace("mid_block.resnets.1", "mid.block_2")
        if "mid_block.attentions.0." in new:
            head, tail = new.split("mid_block.attentions.0.")
            mod, param = tail.rsplit(".", 1)
            new = f"{head}mid.attn_1.{attn_names[mod]}.{param}"
            if param == "weight" and mod != "group_norm":
                v = v[:, :, None, None]  # linear [C, C] -> 1x1 conv [C, C, 1, 1]
        out[VAE + new] = v
    return out


def clip_l_to_ldm(sd):
    out = {}
    for k, v in sd.items():
        k = k if k.startswith("text_model.") else "text_model." + k  # transformers >= 5.6 saves it flat
        out[CLIP_L + k] = v
    # real checkpoints carry the position_ids buffer; loaders must ignore it
    out[CLIP_L + "text_model.embeddings.position_ids"] = torch.arange(mt.MAX_LEN, dtype=torch.int64)[None]
    return out


def clip_g_to_ldm(sd, layers):
    out = {}
    ren = [("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj"), ("self_attn.out_proj", "attn.out_proj")]
    for k, v in sd.items():
        m = re.match(r"text_model\.encoder\.layers\.(\d+)\.(.*)$", k)
        if m:
            i, rest = m.group(1), m.group(2)
            if re.match(r"self_attn\.[qkv]_proj\.", rest):
                continue  # fused below
            for d, l in ren:
                if rest.startswith(d + "."):
                    rest = l + rest[len(d):]
            out[f"{CLIP_G}transformer.resblocks.{i}.{rest}"] = v
        elif k == "text_model.embeddings.token_embedding.weight":
            out[CLIP_G + "token_embedding.weight"] = v
        elif k == "text_model.embeddings.position_embedding.weight":
            out[CLIP_G + "positional_embedding"] = v
        elif k.startswith("text_model.final_layer_norm."):
            out[CLIP_G + "ln_final." + k.rsplit(".", 1)[1]] = v
        elif k == "text_projection.weight":
            out[CLIP_G + "text_projection"] = v.T.contiguous()
        else:
            raise KeyError(k)
    for i in range(layers):
        for p in ["weight", "bias"]:
            qkv = [sd[f"text_model.encoder.layers.{i}.self_attn.{x}_proj.{p}"] for x in "qkv"]
            out[f"{CLIP_G}transformer.resblocks.{i}.attn.in_proj_{p}"] = torch.cat(qkv, 0)
    out[CLIP_G + "logit_scale"] = torch.tensor(4.6052, dtype=torch.float32)  # unused by SDXL, present in real files
    return out


def ldm_state_dict(pipe):
    sd = {}
    sd.update(unet_to_ldm(pipe.unet.state_dict(), dict(pipe.unet.config)))
    sd.update(vae_to_ldm(pipe.vae.state_dict(), dict(pipe.vae.config)))
    sd.update(clip_l_to_ldm(pipe.text_encoder.state_dict()))
    sd.update(clip_g_to_ldm(pipe.text_encoder_2.state_dict(), pipe.text_encoder_2.config.num_hidden_layers))
    return {k: v.detach().clone().contiguous() for k, v in sd.items()}


def cast(sd, dtype):
    return {k: (v.to(dtype) if v.is_floating_point() and k != CLIP_G + "logit_scale" else v) for k, v in sd.items()}


def digest(sd):
    """sha256 over sorted keys of: key, dtype, shape, raw little-endian bytes."""
    h = hashlib.sha256()
    for k in sorted(sd):
        v = sd[k].contiguous()
        h.update(k.encode())
        h.update(str(v.dtype).replace("torch.", "").encode())
        h.update(json.dumps(list(v.shape)).encode())
        h.update(v.view(torch.uint8).numpy().tobytes() if v.dim() > 0 else v.reshape(1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def assert_same_weights(a, b, rounding):
    for comp in ["unet", "vae", "text_encoder", "text_encoder_2"]:
        sa, sb = getattr(a, comp).state_dict(), getattr(b, comp).state_dict()
        assert set(sa) == set(sb), (comp, set(sa) ^ set(sb))
        for k in sa:
            want = sb[k].to(rounding).to(torch.float32) if sb[k].is_floating_point() else sb[k]
            assert torch.equal(sa[k].float() if sa[k].is_floating_point() else sa[k], want), (comp, k)


def light_run(pipe, refs, prefix, prompt, negative, seed, steps=3, guidance=5.0, embeds=None, image=True):
    """Euler from given latents; records latents_in, latents_out and (when `image`) the image."""
    pipe = StableDiffusionXLPipeline(**pipe.components, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    latents_in = mt.randn((1, 4, 8, 8), seed)
    last = []
    call = dict(num_inference_steps=steps, guidance_scale=guidance, height=64, width=64, latents=latents_in.clone(),
                output_type="pt", callback_on_step_end=lambda _p, i, t, kw: (last.append(kw["latents"].clone()), kw)[1])
    if embeds is None:
        call.update(prompt=prompt, negative_prompt=negative)
    else:
        call.update(embeds)
    with torch.no_grad():
        images = pipe(**call).images
    refs.add(f"{prefix}.latents_in", latents_in)
    refs.add(f"{prefix}.latents_out", last[-1])
    if image:
        refs.add(f"{prefix}.image", images)
    return dict(prefix=prefix, prompt=prompt, negative_prompt=negative, steps=steps, guidance_scale=guidance, width=64, height=64, scheduler="euler")


def single_file_refs(base):
    refs, js = mt.Refs(), dict(about="scripts/make_checkpoint_refs.py: the tiny SDXL as single LDM-layout files, through diffusers' from_single_file")
    sd = ldm_state_dict(base)
    js["keys"] = {k: [str(v.dtype).replace("torch.", ""), list(v.shape)] for k, v in sorted(sd.items())}
    js["digests"], js["runs"] = {}, []
    work = tempfile.mkdtemp(prefix="easel_single_")
    for name, dtype in [("f32", torch.float32), ("f16", torch.float16), ("bf16", torch.bfloat16)]:
        variant = cast(sd, dtype)
        js["digests"][name] = digest(variant)
        path = os.path.join(work, f"tiny_{name}.safetensors")
        save_file(variant, path)
        pipe = StableDiffusionXLPipeline.from_single_file(path, config=mt.TINY_DIR, local_files_only=True, torch_dtype=torch.float32)
        assert_same_weights(pipe, base, dtype)
        with torch.no_grad():
            pe, npe, pooled, npooled = pipe.encode_prompt(mt.PROMPT, device="cpu", do_classifier_free_guidance=True, negative_prompt=mt.NEGATIVE)
        refs.add(f"sf_{name}.prompt_embeds", pe)
        refs.add(f"sf_{name}.pooled", pooled)
        js["runs"].append(dict(light_run(pipe, refs, f"sf_{name}", mt.PROMPT, mt.NEGATIVE, 501), name=name))
        print(f"  single file {name}: {os.path.getsize(path):,d} B, digest {js['digests'][name][:16]}", flush=True)
    js["prompt"], js["negative_prompt"] = mt.PROMPT, mt.NEGATIVE
    return refs, js


# ----------------------------------------------------------------------------------------------
# A1111 prompt weighting (the rules documented in crates/easel-sdxl/src/prompt/mod.rs)

ATTENTION = re.compile(r"\\\(|\\\)|\\\[|\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^\\()\[\]:]+|:")
BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)
COMMA_BACKTRACK = 20


def parse_attention(text):
    res, round_b, square_b = [], [], []

    def mul(start, by):
        for p in range(start, len(res)):
            res[p][1] *= by

    for m in ATTENTION.finditer(text):
        tok, weight = m.group(0), m.group(1)
        try:
            weight = float(weight) if weight is not None else None
        except ValueError:
            weight = None  # A1111 raises; Easel keeps the text
        if tok.startswith("\\"):
            res.append([tok[1:], 1.0])
        elif tok == "(":
            round_b.append(len(res))
        elif tok == "[":
            square_b.append(len(res))
        elif weight is not None and round_b:
            mul(round_b.pop(), weight)
        elif tok == ")" and round_b:
            mul(round_b.pop(), 1.1)
        elif tok == "]" and square_b:
            mul(square_b.pop(), 1 / 1.1)
        else:
            for i, part in enumerate(re.split(BREAK, tok)):
                if i > 0:
                    res.append(["BREAK", -1])
                res.append([part, 1.0])
    for pos in round_b:
        mul(pos, 1.1)
    for pos in square_b:
        mul(pos, 1 / 1.1)
    if not res:
        res = [["", 1.0]]
    i = 0
    while i + 1 < len(res):
        if res[i][1] == res[i + 1][1]:
            res[i][0] += res[i + 1][0]
            res.pop(i + 1)
        else:
            i += 1
    return res


def cut_chunks(tok, parsed):
    """A1111's tokenize_line: chunks of (ids, weights) of length 77, and its token count."""
    body = mt.MAX_LEN - 2
    comma = tok(",", add_special_tokens=False).input_ids
    comma = comma[0] if len(comma) == 1 else None
    bos, eos = tok.bos_token_id, tok.eos_token_id
    chunks, state = [], dict(ids=[], w=[], last_comma=-1, count=0)

    def close(is_last=False):
        state["count"] += len(state["ids"]) if is_last else body
        pad = body - len(state["ids"])
        ids = [bos] + state["ids"] + [eos] * pad + [eos]
        w = [1.0] + state["w"] + [1.0] * pad + [1.0]
        chunks.append((ids, w))
        state.update(ids=[], w=[], last_comma=-1)

    for text, weight in parsed:
        if text == "BREAK" and weight == -1:
            close()
            continue
        for t in tok(text, add_special_tokens=False).input_ids:
            if t == comma:
                state["last_comma"] = len(state["ids"])
            elif COMMA_BACKTRACK and len(state["ids"]) == body and state["last_comma"] != -1 and len(state["ids"]) - state["last_comma"] <= COMMA_BACKTRACK:
                at = state["last_comma"] + 1
                ids, w = state["ids"][at:], state["w"][at:]
                state["ids"], state["w"] = state["ids"][:at], state["w"][:at]
                close()
                state["ids"], state["w"] = ids, w
            if len(state["ids"]) == body:
                close()
            state["ids"].append(t)
            state["w"].append(weight)
    if state["ids"] or not chunks:
        close(is_last=True)
    return chunks, state["count"]


@torch.no_grad()
def encode_a1111(pipe, text):
    parsed = parse_attention(text)
    c1, n1 = cut_chunks(pipe.tokenizer, parsed)
    c2, _ = cut_chunks(pipe.tokenizer_2, parsed)
    n = max(len(c1), len(c2))
    empty1, empty2 = cut_chunks(pipe.tokenizer, [["", 1.0]])[0][0], cut_chunks(pipe.tokenizer_2, [["", 1.0]])[0][0]
    c1 += [empty1] * (n - len(c1))
    c2 += [empty2] * (n - len(c2))
    zs, pooled = [], None
    for enc, tok, chunks in [(pipe.text_encoder, pipe.tokenizer, c1), (pipe.text_encoder_2, pipe.tokenizer_2, c2)]:
        parts = []
        for ids, w in chunks:
            ids = list(ids)
            if tok.pad_token_id != tok.eos_token_id:  # OpenCLIP-G: pad after the first EOS
                first = ids.index(tok.eos_token_id)
                ids[first + 1:] = [tok.pad_token_id] * (len(ids) - first - 1)
            out = enc(torch.tensor([ids]), output_hidden_states=True)
            z = out.hidden_states[-2]
            mean = z.mean()
            z = z * torch.tensor(w, dtype=torch.float32)[None, :, None]
            z = z * (mean / z.mean())
            parts.append(z)
            if pooled is None and hasattr(out, "text_embeds"):
                pooled = out.text_embeds
        zs.append(torch.cat(parts, 1))
    return torch.cat(zs, -1), pooled, parsed, (c1, c2), n1


PROMPT_CASES = [
    ("plain", "a photo of an astronaut riding a horse, detailed"),
    ("weights", "a (photo:1.3) of an [astronaut] riding a ((horse)), detailed"),
    ("nested", "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky)))."),
    ("escaped", "a \\(literal\\) bracket and a \\[square\\] one, (weighted:0.8)"),
    ("break", "a red cat BREAK a blue dog on a (green:1.2) lawn"),
    ("long", ", ".join(["masterpiece", "best quality", "(ultra detailed:1.2)", "8k wallpaper", "[blurry]"] * 9)),
    ("long_comma", "a cat " * 34 + ", (a dog:1.4) " * 6 + "and a bird " * 10),
    ("empty", ""),
    ("unbalanced", "(unbalanced [brackets and a) stray ] (x:1.2.3)"),
]


def prompt_refs(base):
    refs, js = mt.Refs(), dict(about="scripts/make_checkpoint_refs.py: A1111 prompt weighting references on the tiny SDXL", cases=[])
    for name, text in PROMPT_CASES:
        ctx, pooled, parsed, (c1, c2), count = encode_a1111(base, text)
        refs.add(f"a1111.{name}.context", ctx)
        refs.add(f"a1111.{name}.pooled", pooled)
        js["cases"].append(dict(
            name=name, text=text, chunks=len(c1), token_count=count,
            pieces=[["BREAK", None] if (t == "BREAK" and w == -1) else [t, w] for t, w in parsed],
            ids1=[ids for ids, _ in c1], ids2=[ids for ids, _ in c2], weights1=[w for _, w in c1],
        ))
        print(f"  prompt {name}: {len(c1)} chunk(s), {count} tokens", flush=True)
    # a pipeline fed with A1111 conditioning; the negative has fewer chunks and is padded
    # with the empty prompt's encoding (A1111's pad_cond_uncond)
    prompt, negative = dict(PROMPT_CASES)["long"], "(blurry:1.3), low quality"
    ctx, pooled = encode_a1111(base, prompt)[:2]
    nctx, npooled = encode_a1111(base, negative)[:2]
    empty = encode_a1111(base, "")[0]
    while nctx.shape[1] < ctx.shape[1]:
        nctx = torch.cat([nctx, empty], 1)
    embeds = dict(prompt_embeds=ctx, negative_prompt_embeds=nctx, pooled_prompt_embeds=pooled, negative_pooled_prompt_embeds=npooled)
    js["run"] = light_run(base, refs, "a1111_run", prompt, negative, 601, embeds=embeds, image=False)
    return refs, js


# ----------------------------------------------------------------------------------------------
# LoRAs

LORA_UNET = [
    "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
    "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_k",
    "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_v",
    "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0",
    "down_blocks.2.attentions.1.transformer_blocks.2.attn2.to_k",
    "down_blocks.2.attentions.1.transformer_blocks.2.attn2.to_v",
    "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj",
    "mid_block.attentions.0.transformer_blocks.0.ff.net.2",
    "up_blocks.0.attentions.2.proj_in",
    "up_blocks.0.attentions.2.proj_out",
    "up_blocks.1.attentions.0.transformer_blocks.1.attn1.to_q",
    "down_blocks.0.resnets.1.conv1",
    "down_blocks.1.resnets.0.time_emb_proj",
    "up_blocks.2.resnets.0.conv_shortcut",
]
LORA_TE1 = ["text_model.encoder.layers.0.self_attn.q_proj", "text_model.encoder.layers.0.self_attn.v_proj", "text_model.encoder.layers.1.mlp.fc1"]
LORA_TE2 = ["text_model.encoder.layers.0.self_attn.k_proj", "text_model.encoder.layers.1.self_attn.out_proj", "text_model.encoder.layers.2.mlp.fc2"]
# diffusers 0.42.1 drops kohya CLIP-L self-attention layers (`lora_te1_..._self_attn_q_proj`) when
# transformers >= 5.6 gives a flat CLIPTextModel (they are reported UNEXPECTED and never fused),
# so the kohya fixture targets CLIP-L's MLPs only; the PEFT fixture covers CLIP-L attention.
LORA_TE1_KOHYA = ["text_model.encoder.layers.1.mlp.fc1", "text_model.encoder.layers.0.mlp.fc2"]
LORA_PEFT_UNET = LORA_UNET[:11]
TARGETS = dict(
    kohya=dict(unet=LORA_UNET, text_encoder=LORA_TE1_KOHYA, text_encoder_2=LORA_TE2),
    peft=dict(unet=LORA_PEFT_UNET, text_encoder=LORA_TE1, text_encoder_2=LORA_TE2),
)


def module_of(model, path):
    flat = path.removeprefix("text_model.") if not hasattr(model, "text_model") and path.startswith("text_model.") else path
    return model.get_submodule(flat)


def lora_pair(mod, rank, g):
    """(down, up) for a Linear or Conv2d, scaled so the update is noticeable but tame."""
    w = mod.weight
    if w.dim() == 4:
        out_c, in_c, kh, kw = w.shape
        down = torch.randn((rank, in_c, kh, kw), generator=g) / (in_c * kh * kw) ** 0.5
        up = torch.randn((out_c, rank, 1, 1), generator=g) * 0.3 / rank ** 0.5
    else:
        out_c, in_c = w.shape
        down = torch.randn((rank, in_c), generator=g) / in_c ** 0.5
        up = torch.randn((out_c, rank), generator=g) * 0.3 / rank ** 0.5
    return down, up


def make_kohya_lora(base, path):
    g = torch.Generator().manual_seed(77)
    modules = unet_module_map(dict(base.unet.config))
    sd = {}
    for comp, prefix in [("unet", "lora_unet_"), ("text_encoder", "lora_te1_"), ("text_encoder_2", "lora_te2_")]:
        paths = TARGETS["kohya"][comp]
        model = getattr(base, comp)
        for p in paths:
            name = p
            if comp == "unet":  # kohya's SDXL LoRAs use the original UNet's names
                mod, rest = split_module(p + ".weight", modules)
                ldm, is_resnet = modules[mod]
                rest = rest[: -len(".weight")]
                if is_resnet:
                    rest = dict(RESNET).get(rest, rest)
                name = f"{ldm}.{rest}" if rest else ldm
            key = prefix + name.replace(".", "_")
            down, up = lora_pair(module_of(model, p), 4, g)
            sd[key + ".lora_down.weight"], sd[key + ".lora_up.weight"] = down, up
            sd[key + ".alpha"] = torch.tensor(2.0)
    save_sorted(sd, path, metadata={"ss_network_module": "networks.lora", "ss_network_dim": "4", "ss_network_alpha": "2.0"})
    return sd


def make_peft_lora(base, path):
    from peft import LoraConfig

    g = torch.Generator().manual_seed(88)
    layers, metas = {}, {}
    for comp, rank, alpha in [("unet", 2, 4.0), ("text_encoder", 2, 1.0), ("text_encoder_2", 2, 2.0)]:
        paths = TARGETS["peft"][comp]
        model = getattr(base, comp)
        sd = {}
        for p in paths:
            key = p.removeprefix("text_model.") if comp != "unet" and not hasattr(model, "text_model") else p
            down, up = lora_pair(module_of(model, p), rank, g)
            sd[f"{key}.lora_A.weight"], sd[f"{key}.lora_B.weight"] = down, up
        layers[comp] = sd
        cfg = LoraConfig(r=rank, lora_alpha=alpha, target_modules=sorted({p.removeprefix("text_model.") for p in paths}))
        # sets (target_modules) would be listed in hash order: sort them for byte-stable reruns
        metas[comp] = {k: sorted(v) if isinstance(v, set) else v for k, v in cfg.to_dict().items()}
    d = tempfile.mkdtemp(prefix="easel_peft_")
    StableDiffusionXLPipeline.save_lora_weights(
        d,
        unet_lora_layers=layers["unet"], text_encoder_lora_layers=layers["text_encoder"], text_encoder_2_lora_layers=layers["text_encoder_2"],
        unet_lora_adapter_metadata=metas["unet"], text_encoder_lora_adapter_metadata=metas["text_encoder"],
        text_encoder_2_lora_adapter_metadata=metas["text_encoder_2"], weight_name="lora.safetensors",
    )
    from safetensors import safe_open

    written = os.path.join(d, "lora.safetensors")
    with safe_open(written, "pt") as f:
        meta = f.metadata()
    save_sorted(load_file(written), path, metadata=meta)


UNET_TIMESTEP = 517.3


def unet_inputs(pipe, seed=11):
    """One UNet call's inputs [2, 4, 8, 8], as make_tiny_sdxl.py's ref_unet draws them."""
    cross, proj = pipe.unet.config.cross_attention_dim, pipe.text_encoder_2.config.projection_dim
    return dict(
        sample=mt.randn((2, 4, 8, 8), seed),
        encoder_hidden_states=mt.randn((2, mt.MAX_LEN, cross), seed + 1),
        text_embeds=mt.randn((2, proj), seed + 2),
        time_ids=torch.tensor([[64, 64, 0, 0, 64, 64], [48, 64, 4, 2, 48, 64]], dtype=torch.float32),
    )


@torch.no_grad()
def record_model(pipe, refs, prefix, js_runs, seed):
    pe, npe, pooled, npooled = pipe.encode_prompt(mt.PROMPT, device="cpu", do_classifier_free_guidance=True, negative_prompt=mt.NEGATIVE)
    refs.add(f"{prefix}.prompt_embeds", pe)
    refs.add(f"{prefix}.pooled", pooled)
    x = unet_inputs(pipe)
    added = {"text_embeds": x["text_embeds"], "time_ids": x["time_ids"]}
    out = pipe.unet(x["sample"], torch.tensor(UNET_TIMESTEP), encoder_hidden_states=x["encoder_hidden_states"], added_cond_kwargs=added, return_dict=False)[0]
    refs.add(f"{prefix}.unet_out", out)
    js_runs.append(light_run(pipe, refs, f"{prefix}.run", mt.PROMPT, mt.NEGATIVE, seed, image=False))


def lora_refs(base):
    kohya, peft = os.path.join(FIX, "lora_kohya.safetensors"), os.path.join(FIX, "lora_peft.safetensors")
    make_kohya_lora(base, kohya)
    make_peft_lora(base, peft)
    refs, js = mt.Refs(), dict(about="scripts/make_checkpoint_refs.py: diffusers load_lora_weights + fuse_lora(lora_scale) on the tiny SDXL", runs=[], cases=[])
    for name, files, scales in [("kohya", [kohya], [0.8]), ("peft", [peft], [0.6]), ("both", [kohya, peft], [0.8, 0.6])]:
        pipe = mt.load_model(mt.TINY_DIR, False)
        names = []
        for i, f in enumerate(files):
            pipe.load_lora_weights(f, adapter_name=f"a{i}")
            names.append(f"a{i}")
        if len(files) == 1:
            pipe.fuse_lora(lora_scale=scales[0], adapter_names=names)
        else:
            pipe.set_adapters(names, adapter_weights=scales)
            pipe.fuse_lora(adapter_names=names)
        pipe.unload_lora_weights()  # keeps the fused weights, drops the adapters
        changed = sum(int(not torch.equal(a, b)) for comp in ["unet", "text_encoder", "text_encoder_2"]
                      for (_, a), (_, b) in zip(getattr(pipe, comp).state_dict().items(), getattr(base, comp).state_dict().items()))
        kinds = ["kohya", "peft"] if name == "both" else [name]
        expected = sum(len(set().union(*[TARGETS[k][c] for k in kinds])) for c in ["unet", "text_encoder", "text_encoder_2"])
        assert changed == expected, (name, changed, expected)
        record_model(pipe, refs, f"lora_{name}", js["runs"], 701)
        js["cases"].append(dict(name=name, files=[os.path.basename(f) for f in files], scales=scales, changed_weights=changed))
        print(f"  lora {name}: {changed} weights changed", flush=True)
    record_model(base, refs, "base", js["runs"], 701)
    for k, v in unet_inputs(base).items():
        refs.add(f"unet_in.{k}", v)
    js["unet_timestep"] = UNET_TIMESTEP
    js["prompt"], js["negative_prompt"] = mt.PROMPT, mt.NEGATIVE
    return refs, js


def save(refs, js, stem):
    js["versions"] = dict(torch=torch.__version__, diffusers=diffusers.__version__, transformers=transformers.__version__, numpy=np.__version__)
    js["tensors"] = refs.listing()
    refs.save(os.path.join(FIX, stem + ".safetensors"))
    write_json(os.path.join(FIX, stem + ".json"), js)
    for ext in [".safetensors", ".json"]:
        p = os.path.join(FIX, stem + ext)
        print(f"  {stem + ext:28s} {os.path.getsize(p):>9,d} B  sha256 {mt.sha256(p)[:16]}")


def main():
    torch.set_num_threads(2)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    diffusers.utils.logging.set_verbosity_error()
    write_sdxl_base_configs()
    base = mt.load_model(mt.TINY_DIR, False)
    save(*single_file_refs(base), "single_file_refs")
    save(*prompt_refs(base), "prompt_refs")
    save(*lora_refs(base), "lora_refs")


if __name__ == "__main__":
    main()
