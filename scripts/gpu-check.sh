#!/usr/bin/env bash
# The GPU check: Easel's CUDA build against Easel's CPU f32 and diffusers, then timed beside
# diffusers at 1024², 25 steps, batch 1 and 6 (scripts/gpu_check.py says what each stage
# does and the tolerances). Made for a GPU machine that has PyTorch with CUDA but no
# diffusers and no network: what it lacks travels in .gpu/, which `pack` fills here.
#
#   scripts/build-cuda.sh                 # here: target/cuda/release/easel (CUDA + cuDNN)
#   scripts/gpu-check.sh pack             # here: .gpu/easel.xz + .gpu/wheels/ (about 20 MiB)
#   bash scripts/gpu-check.sh             # there, with .gpu carried: results under $OUT
#
#   # the dry run here, with the same packed binary, on the CPU (bf16 has no CPU path:
#   # f16), with the reference venv of scripts/requirements-ref.txt:
#   PYTHON=venv/bin/python OUT=/tmp/dry scripts/gpu-check.sh --device cpu --size tiny \
#       --dtype f16 --check-side 64 --side 128 --steps 3 --batches 1,2
#
# Extra arguments go to scripts/gpu_check.py. Exit status: 0 when every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."

PACK=.gpu
# Wheels the GPU machine's PyTorch image lacks (diffusers and its one missing need).
WHEELS=(diffusers==0.42.1 importlib_metadata==8.7.0)

if [ "${1:-}" = "pack" ]; then
    BIN="${EASEL:-target/cuda/release/easel}"
    [ -x "$BIN" ] || { echo "error: no CUDA build at $BIN (run scripts/build-cuda.sh first)" >&2; exit 1; }
    rm -rf "$PACK" && mkdir -p "$PACK/wheels"
    xz -T0 -6 -c "$BIN" > "$PACK/easel.xz"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform any --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        -d "$PACK/wheels" "${WHEELS[@]}"
    du -sch "$PACK"/*
    echo "carry [\"$PACK\"] and run: bash scripts/gpu-check.sh"
    exit 0
fi

PY="${PYTHON:-python3}"
OUT="${OUT:-gpu-check-out}"
mkdir -p "$OUT"

# The binary: $EASEL, else the packed one, else a build in this tree.
if [ -z "${EASEL:-}" ]; then
    if [ -f "$PACK/easel.xz" ]; then
        EASEL=/tmp/easel-gpu-check-bin/easel
        mkdir -p "$(dirname "$EASEL")"
        "$PY" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
            "$PACK/easel.xz" "$EASEL"
        chmod +x "$EASEL"
    else
        EASEL=target/cuda/release/easel
    fi
fi
[ -x "$EASEL" ] || { echo "error: no easel binary at $EASEL (scripts/build-cuda.sh, then pack)" >&2; exit 1; }

# diffusers: installed, or from the packed wheels.
if ! "$PY" -c 'import diffusers' 2>/dev/null; then
    [ -d "$PACK/wheels" ] || { echo "error: $PY has no diffusers and $PACK/wheels is missing" >&2; exit 1; }
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/easel-gpu-check-site "$PACK"/wheels/*.whl
    export PYTHONPATH="/tmp/easel-gpu-check-site${PYTHONPATH:+:$PYTHONPATH}"
fi

# The CUDA libraries the binary links (cuBLAS, cuRAND, NVRTC, cuDNN, the runtime) come with
# PyTorch's nvidia-* wheels; the driver library is the machine's own.
if "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
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
elif [ -d target/cuda-toolchain ]; then
    # No GPU here (the dry run): the CUDA build still runs on the CPU, with build-cuda.sh's
    # libraries and its driver stub standing in for the driver (never called on the CPU).
    CU="$(ls -d target/cuda-toolchain/venv/lib/python3*/site-packages/nvidia/cu13 | head -1)"
    STUB=/tmp/easel-gpu-check-stub
    mkdir -p "$STUB" && ln -sf "$PWD/$CU/lib/stubs/libcuda.so" "$STUB/libcuda.so.1"
    export LD_LIBRARY_PATH="$STUB:$PWD/$CU/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
if ldd "$EASEL" | grep "not found"; then
    echo "error: libraries missing for $EASEL (above)" >&2
    exit 1
fi

export PYTHONUNBUFFERED=1
exec "$PY" scripts/gpu_check.py --easel "$EASEL" --out "$OUT" "$@"
