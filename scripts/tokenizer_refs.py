#!/usr/bin/env python3
"""Reference token ids for Easel's CLIP tokenizer (crates/easel-sdxl/src/tokenizer/).

Why this exists: the Rust tokenizer must give exactly the ids that diffusers' SDXL
pipelines get from `transformers.CLIPTokenizer`. This script builds that tokenizer from
the full CLIP vocabulary the engine embeds (assets/clip/bpe_simple_vocab_16e6.txt.gz),
laid out as SDXL's `tokenizer/` (pad "<|endoftext|>") and `tokenizer_2/` (pad "!")
folders, and records ids for a spread of awkward prompts into
crates/easel-sdxl/tests/fixtures/clip_tokens.json, which tests/tokenizer.rs checks.

Run with the reference venv (transformers installed, ftfy NOT installed):
    /work/venv/ref/bin/python scripts/tokenizer_refs.py

Note: transformers 5 has only the `tokenizers`-backed CLIPTokenizer (NFC, whitespace
runs -> " ", lowercase, CLIP's split regex, byte-level BPE with "</w>"); the ids here
are what that class produces, since that is what diffusers runs with it.
"""

import argparse
import gzip
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GZ = os.path.join(ROOT, "crates/easel-sdxl/assets/clip/bpe_simple_vocab_16e6.txt.gz")
OUT = os.path.join(ROOT, "crates/easel-sdxl/tests/fixtures/clip_tokens.json")
MAX_LEN = 77

LONG_PROMPT = (
    "masterpiece, best quality, ultra-detailed, a breathtaking panoramic view of an ancient "
    "floating city above the clouds at golden hour, intricate gothic spires, hanging gardens, "
    "waterfalls pouring into the void, airships with brass propellers, flocks of white birds, "
    "volumetric god rays, dramatic lighting, cinematic composition, by Greg Rutkowski and "
    "Alphonse Mucha, trending on ArtStation, 8k resolution, octane render, unreal engine 5, "
    "sharp focus, highly detailed textures, vibrant colors, soft shadows, depth of field, "
    "bokeh, film grain, award winning photograph, national geographic, wide angle lens"
)

PROMPTS = [
    "a photo of a cat",
    "A Photo Of A CAT, Highly Detailed, 8K",
    "",
    " ",
    "\n\t  \r\n",
    "   leading and trailing spaces   ",
    "multiple    spaces\tand\t\ttabs\nand\n\nnewlines\r\nend",
    "a\u00a0b\u2003c\u3000d\u200bz\u2028e\u1680f\u180eg\u202fh\u205fi\u0085j\u000bk\u000cl",
    "Hello, world! How's it going?... (yes) [no] {maybe} <tag> #hash @user $5 100% a+b=c ~/x\\y",
    "wow!!! amazing! (!) !a! ! !!",
    "Café crème brûlée, naïve façade, Ærøskøbing, Straße, SMØRREBRØD",
    "cafe\u0301 cre\u0300me bru\u0302le\u0301e \u1100\u1161",
    "Z\u0324\u0354\u0367\u0311\u0313a\u0308\u0356\u032d\u0308\u0307l\u036e\u0312\u036bg\u030c\u0317\u031a\u035ao",
    "a 🐱 wearing a 🎉 party hat 👍🏽 ❤️ ♥\ufe0f",
    "👨\u200d👩\u200d👧\u200d👦 family, 🏳️\u200d🌈 flag, 🇯🇵 🇫🇷",
    "東京タワー 夜景 猫犬 こんにちは",
    "안녕하세요 세계",
    "Москва, Красная площадь ЗИМОЙ, ёжик",
    "ΟΔΟΣ ΣΑΣ Οδυσσεύς",
    "İstanbul ISPARTA ıi",
    "مرحبا بالعالم שלום नमस्ते दुनिया สวัสดี",
    "1024x768 resolution, 4k, 16:9, 3.14159, 1,000,000, 2024-01-31",
    "０１２ ｆｕｌｌｗｉｄｔｈ ² ½ Ⅻ ٣ ௫ ﬁne ﬂower",
    "it's don't we're they've I'm you'll he'd",
    "IT'S DON'T WE'RE THEY'VE I'M YOU'LL HE'D",
    "rock'n'roll 'quoted' ''s o'clock 'tis '' ' 's",
    "don’t won’t “smart quotes” — dash – en…",
    "&amp; &lt;b&gt;bold&lt;/b&gt; &quot;x&quot; &#39; <b>bold</b> <br/>",
    "ctrl\x00\x01\x07\x1b[0m\x7f\x1c\x1f end",
    "soft\u00adhyphen bom\ufeffhere zwnj\u200cjoin rtl\u202etxt tag\U000e0041 pua\ue000x",
    "\ufffd replacement \U0010ffff end",
    "<|startoftext|> a <|endoftext|> b",
    "<|ENDOFTEXT|> c <|StartOfText|> d",
    "x<|endoftext|>> !<|endoftext|>! <|endoftext|<|endoftext|>|>",
    "<|endoftext|><|endoftext|><|startoftext|>",
    "(masterpiece:1.2), [bad], ((best quality)), {detail}, <lora:foo_v2:0.8>, BREAK, AND",
    "lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, fewer digits, "
    "cropped, worst quality, low quality, normal quality, jpeg artifacts, signature, watermark",
    "∑ ∞ ≠ → ★ ♥ © ® ™ °C ±5 µm Ωmega",
    "https://example.com/path?query=1&b=2#frag user@mail.org",
    "supercalifragilisticexpialidocious" * 8,
    "a" * 300,
    "pneumonoultramicroscopicsilicovolcanoconiosis " * 3,
    LONG_PROMPT,
    " ".join(["word"] * 75),
    " ".join(["word"] * 76),
    " ".join(["word"] * 74) + " !",
    "photo of a beautiful woman, portrait, 35mm, f/1.8, Kodak Portra 400",
]

# SDXL's tokenizer folders as transformers 5 writes them: the bos is matched after
# normalisation, eos and the "!" pad on the raw text.
def added(content, normalized):
    return {
        "content": content,
        "lstrip": False,
        "normalized": normalized,
        "rstrip": False,
        "single_word": False,
        "special": True,
    }


def sdxl_layout(pad):
    decoder = {}
    if pad == "!":
        decoder["0"] = added("!", False)
    decoder["49406"] = added("<|startoftext|>", True)
    decoder["49407"] = added("<|endoftext|>", False)
    cfg = {
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "bos_token": "<|startoftext|>",
        "clean_up_tokenization_spaces": True,
        "do_lower_case": True,
        "eos_token": "<|endoftext|>",
        "errors": "replace",
        "model_max_length": MAX_LEN,
        "pad_token": pad,
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": "<|endoftext|>",
    }
    return {"tokenizer_config.json": cfg, "special_tokens_map.json": special_map(pad)}


def special_map(pad):
    def obj(c):
        return {"content": c, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}

    return {
        "bos_token": obj("<|startoftext|>"),
        "eos_token": obj("<|endoftext|>"),
        "pad_token": pad if pad == "!" else obj(pad),
        "unk_token": obj("<|endoftext|>"),
    }


def legacy_layout(pad):
    """Pre-`added_tokens_decoder` configs (objects with normalized=true everywhere)."""

    def obj(c):
        return {"__type": "AddedToken", "content": c, "lstrip": False, "normalized": True,
                "rstrip": False, "single_word": False}

    cfg = {
        "bos_token": obj("<|startoftext|>"),
        "eos_token": obj("<|endoftext|>"),
        "unk_token": obj("<|endoftext|>"),
        "pad_token": pad,
        "model_max_length": MAX_LEN,
        "do_lower_case": True,
    }
    return {"tokenizer_config.json": cfg, "special_tokens_map.json": special_map(pad)}


# Variants of the folder layout: special tokens are matched before or after
# normalisation depending on what the config files say.
VARIANT_PROMPTS = [
    "<|startoftext|> a <|endoftext|> b !",
    "<|ENDOFTEXT|> c <|StartOfText|> d!",
    "x<|endoftext|>> <|  endoftext|>",
]
LAYOUTS = {
    "legacy_bang": ("!", legacy_layout("!")),
    "legacy_eot": ("<|endoftext|>", legacy_layout("<|endoftext|>")),
    "bare": ("<|endoftext|>", {}),
    "max_len_only": ("<|endoftext|>", {"tokenizer_config.json": {"model_max_length": MAX_LEN}}),
}


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def write_vocab(folder):
    lines = gzip.open(GZ).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
    chars = bytes_to_unicode()
    vocab = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({v: i for i, v in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")


def load(folder, files):
    from transformers import CLIPTokenizer

    write_vocab(folder)
    for name, content in files.items():
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            json.dump(content, f, ensure_ascii=False)
    tok = CLIPTokenizer.from_pretrained(folder)
    assert tok.model_max_length == MAX_LEN or not files, tok.model_max_length
    return tok


def padded(tok, text):
    return tok(text, padding="max_length", max_length=MAX_LEN, truncation=True).input_ids


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    try:
        import ftfy  # noqa: F401

        sys.exit("ftfy is installed: the references must be made without it")
    except ImportError:
        pass
    import transformers

    with tempfile.TemporaryDirectory() as tmp:
        toks = {}
        for key, pad in (("eot", "<|endoftext|>"), ("bang", "!")):
            folder = os.path.join(tmp, key)
            os.makedirs(folder)
            toks[key] = load(folder, sdxl_layout(pad))
        cases = []
        for text in PROMPTS:
            case = {"text": text}
            for key, tok in toks.items():
                case[f"ids_{key}"] = tok(text).input_ids
                case[f"padded_{key}"] = padded(tok, text)
            cases.append(case)
        layouts = {"sdxl_eot": sdxl_layout("<|endoftext|>"), "sdxl_bang": sdxl_layout("!")}
        variants = []
        for name, (pad, files) in LAYOUTS.items():
            folder = os.path.join(tmp, name)
            os.makedirs(folder)
            tok = load(folder, files)
            layouts[name] = files
            for text in VARIANT_PROMPTS:
                variants.append({"layout": name, "pad": pad, "text": text, "ids": tok(text).input_ids})
    out = {
        "_about": "made by scripts/tokenizer_refs.py with transformers "
        + transformers.__version__
        + " (no ftfy); checked by crates/easel-sdxl/tests/tokenizer.rs",
        "max_len": MAX_LEN,
        "layouts": {k: {f: json.dumps(v, ensure_ascii=False) for f, v in files.items()} for k, files in layouts.items()},
        "cases": cases,
        "variants": variants,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("{\n")
        items = list(out.items())
        for i, (k, v) in enumerate(items):
            f.write(json.dumps(k) + ": ")
            if isinstance(v, list):
                f.write("[\n" + ",\n".join(json.dumps(x, ensure_ascii=False) for x in v) + "\n]")
            else:
                f.write(json.dumps(v, ensure_ascii=False))
            f.write(",\n" if i + 1 < len(items) else "\n")
        f.write("}\n")
    print(f"wrote {len(cases)} cases, {len(variants)} variants to {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
