#!/usr/bin/env bash
# GPU benchmark: Easel against diffusers on one NVIDIA GPU (made for an H100 with no
# network), SDXL-base-shaped random weights, 1024×1024, 25 steps, batch 1 and batch 6,
# bf16. Prints seconds per image and peak device memory side by side (ratios < 1 mean
# Easel is faster / smaller) and keeps the raw JSON under $OUT.
#
#   scripts/build-cuda.sh                      # here, on a machine without a GPU
#   scripts/bench-gpu.sh                       # there, with target/cuda/release/easel carried
#
# Needs on the GPU machine: python3 with torch (CUDA), diffusers and transformers
# (scripts/requirements-ref.txt); the weights are generated there (about 7 GB of fp16
# files, a few minutes), since no real SDXL weights exist on it.
set -euo pipefail
cd "$(dirname "$0")/.."

EASEL="${EASEL:-target/cuda/release/easel}"
PY="${PYTHON:-python3}"
MODEL_DIR="${MODEL_DIR:-/tmp/easel-sdxl-fullsize}"
OUT="${OUT:-bench-gpu}"
DTYPE="${DTYPE:-bf16}"
STEPS="${STEPS:-25}"
SIDE="${SIDE:-1024}"
mkdir -p "$OUT"

"$PY" -c 'import torch, diffusers, transformers; assert torch.cuda.is_available(), "torch sees no GPU"' \
    || { echo "error: needs python3 with CUDA torch, diffusers and transformers" >&2; exit 1; }
[ -x "$EASEL" ] || { echo "error: no CUDA easel binary at $EASEL (run scripts/build-cuda.sh and carry it)" >&2; exit 1; }

# The CUDA libraries the binary links (cuBLAS, cuRAND, NVRTC, the runtime) come with
# torch's nvidia-* wheels; the driver library is the machine's own.
LIBS="$("$PY" - <<'PY'
import glob, os
dirs = set()
try:
    import nvidia
    for root in nvidia.__path__:
        for lib in glob.glob(os.path.join(root, "**", "lib*.so*"), recursive=True):
            dirs.add(os.path.dirname(lib))
except ImportError:
    pass
import torch
dirs.add(os.path.join(os.path.dirname(torch.__file__), "lib"))
print(":".join(sorted(dirs)))
PY
)"
export LD_LIBRARY_PATH="$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
ldd "$EASEL" | grep -E "not found" && { echo "error: libraries missing for $EASEL" >&2; exit 1; }

if [ ! -f "$MODEL_DIR/model/model_index.json" ]; then
    echo "generating full-size random SDXL weights in $MODEL_DIR" >&2
    "$PY" scripts/make_tiny_sdxl.py --full-size "$MODEL_DIR" --weights-only
fi

for BATCH in 1 6; do
    "$PY" scripts/bench_compare.py --easel "$EASEL" --model "$MODEL_DIR/model" --variant fp16 \
        --device cuda --dtype "$DTYPE" --width "$SIDE" --height "$SIDE" --steps "$STEPS" \
        --batch "$BATCH" --warmup 1 --json "$OUT/batch$BATCH.json"
done
