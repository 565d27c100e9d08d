#!/usr/bin/env bash
# Builds the CUDA-enabled `easel` binary on a machine without a GPU (and without a
# system CUDA toolkit): the CUDA 13.0 compiler, headers and libraries come from PyPI
# wheels, and the driver library is replaced at link time by a stub generated from
# cuda.h (the real libcuda.so.1 of the GPU machine is used at run time).
#
#   scripts/build-cuda.sh            # → target/cuda/release/easel (features `cuda` + `cudnn`, sm_90)
#   CUDA_COMPUTE_CAP=80 scripts/build-cuda.sh   # another GPU generation
#   EASEL_CUDA_FEATURES=cuda scripts/build-cuda.sh   # without cuDNN (im2col convolutions)
#   CUDNN_LIB_OUT=/opt/easel/lib scripts/build-cuda.sh   # also copy the cuDNN 9 libraries there
#
# cuDNN 9 comes from the nvidia-cudnn-cu13 wheel and is linked like the other CUDA
# libraries: by soname (libcudnn.so.9), so at run time any cuDNN 9 for CUDA 13 will do,
# e.g. the one PyTorch's wheels install.
#
# A cold build takes about 20 minutes on 2 cores. On the GPU machine, point
# LD_LIBRARY_PATH at the CUDA libraries (e.g. torch's nvidia/cu13/lib) before running.
set -euo pipefail
cd "$(dirname "$0")/.."

# cudarc 0.19 does not know CUDA 13.5, and the GPU machines' driver (CUDA 13.0)
# cannot load its PTX: stay on 13.0.
WHEELS=(nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88
        nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cublas==13.0.2.14
        nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88)
FEATURES="${EASEL_CUDA_FEATURES:-cuda,cudnn}"
case ",$FEATURES," in
    *,cudnn,*) WHEELS+=(nvidia-cudnn-cu13==9.13.0.50) ;;
esac
TOOLS="$PWD/target/cuda-toolchain"
VENV="$TOOLS/venv"

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q "${WHEELS[@]}"

CUDA_HOME="$("$VENV/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')"
export CUDA_HOME CUDA_PATH="$CUDA_HOME"
export PATH="$CUDA_HOME/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
export CUDARC_CUDA_VERSION=13000

# cuDNN's wheel keeps its libraries in a folder of its own (nvidia/cudnn/lib); the
# linker looks for them beside the others.
CUDNN_LIB="$("$VENV/bin/python" -c 'import nvidia, os, glob; print(next(iter(sorted(glob.glob(os.path.join(list(nvidia.__path__)[0], "**", "libcudnn.so.9"), recursive=True))), ""))')"
if [ -n "$CUDNN_LIB" ] && [ "$(dirname "$CUDNN_LIB")" != "$CUDA_HOME/lib" ]; then
    ln -sf "$CUDNN_LIB" "$CUDA_HOME/lib/libcudnn.so.9"
fi

# Unversioned names for the linker (the wheels ship only libX.so.13 and the like).
for lib in "$CUDA_HOME"/lib/lib*.so.*; do
    base="${lib%%.so.*}.so"
    [ -e "$base" ] || ln -s "$(basename "$lib")" "$base"
done

# A link-time stub of the driver API: every cu* function named in cuda.h, exported
# from a library whose soname is libcuda.so.1 so the binary asks for the real one.
# cuda.h renames most entry points with macros (cuMemAlloc -> cuMemAlloc_v2), so the
# names are taken from the preprocessed header as well as from the header as written.
STUBS="$CUDA_HOME/lib/stubs"
mkdir -p "$STUBS"
if [ ! -e "$STUBS/libcuda.so" ] || [ "$STUBS/libcuda.so" -ot "$0" ]; then
    { cat "$CUDA_HOME/include/cuda.h"; gcc -E -P -I"$CUDA_HOME/include" "$CUDA_HOME/include/cuda.h"; } \
        | grep -ohE '\bcu[A-Z][A-Za-z0-9_]*\s*\(' \
        | sed -E 's/\s*\($//' | sort -u \
        | awk '{ printf "int %s(void) { return 999; }\n", $1 }' > "$TOOLS/cuda_stub.c"
    gcc -shared -fPIC -w -Wl,-soname,libcuda.so.1 -o "$STUBS/libcuda.so" "$TOOLS/cuda_stub.c"
fi
export LIBRARY_PATH="$CUDA_HOME/lib:$STUBS${LIBRARY_PATH:+:$LIBRARY_PATH}"

# A target directory of its own, so the CPU build in target/ is not thrown away.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/cuda}"
cargo build --release --locked -p easel --features "$FEATURES"
echo "features: $FEATURES"

BIN="$CARGO_TARGET_DIR/release/easel"
SIZE=$(stat -c %s "$BIN")
echo "built $BIN ($((SIZE / 1048576)) MiB)"
# The GPU machine accepts at most 64 MiB of carried files.
if [ "$SIZE" -ge $((64 * 1048576)) ]; then
    echo "error: $BIN is over 64 MiB; strip it or trim features" >&2
    exit 1
fi
if readelf -d "$BIN" | grep -q 'libcuda.so.1'; then
    echo "links libcuda.so.1 (the stub is link-time only)"
fi
case ",$FEATURES," in
    *,cudnn,*)
        readelf -d "$BIN" | grep -q 'libcudnn.so.9' \
            || { echo "error: built with cudnn but $BIN does not link libcudnn.so.9" >&2; exit 1; }
        # For an image whose CUDA runtime base has no cuDNN (deploy/docker/Dockerfile.cuda):
        # libcudnn.so.9 loads its engine libraries from its own folder at run time.
        if [ -n "${CUDNN_LIB_OUT:-}" ]; then
            mkdir -p "$CUDNN_LIB_OUT"
            cp -L "$(dirname "$CUDNN_LIB")"/libcudnn*.so.9 "$CUDNN_LIB_OUT"/
            echo "cuDNN libraries copied to $CUDNN_LIB_OUT"
        fi ;;
esac
