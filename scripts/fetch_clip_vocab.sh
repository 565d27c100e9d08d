#!/usr/bin/env bash
# Regenerates crates/easel-sdxl/assets/clip/bpe_simple_vocab_16e6.txt.gz: the CLIP BPE
# merge list (OpenAI CLIP, MIT licence) as shipped in the PyPI package open-clip-torch.
# Easel embeds it so single-file checkpoints, which carry no tokenizer, work offline.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
pip download --no-deps -q -d "$tmp" "open-clip-torch==3.3.0"
python3 - "$tmp" "$here/crates/easel-sdxl/assets/clip/bpe_simple_vocab_16e6.txt.gz" <<'PY'
import glob, sys, zipfile
whl = glob.glob(sys.argv[1] + "/open_clip_torch-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    data = z.read("open_clip/bpe_simple_vocab_16e6.txt.gz")
open(sys.argv[2], "wb").write(data)
print(f"wrote {sys.argv[2]} ({len(data)} bytes)")
PY
