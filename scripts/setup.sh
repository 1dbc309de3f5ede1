#!/usr/bin/env bash
# Set up everything the project needs in .venv at the repository root.
#
#   bash scripts/setup.sh          CPU: torch's CPU build, mmcv with its CPU ops
#   bash scripts/setup.sh --gpu    GPU: a CUDA build of torch, mmcv with its CUDA ops (same as REXNET_MMDET_GPU=1)
#   bash scripts/setup.sh --floor  the oldest supported stack, in .venv-floor: Python 3.8, torch 2.1.2, numpy<2,
#                                  mmcv 2.1.0 with its CPU ops: what MMDetection's get-started guide makes
#
# Idempotent: a second run checks what is installed and returns in seconds.
# The mmcv wheel (built from source with its compiled ops, ~9 minutes on 2 cores for the CPU ops)
# is cached outside the clone, in $REXNET_MMDET_CACHE (default ~/.cache/rexnet-mmdet),
# keyed by Python and torch version (and, for --gpu, by CUDA architectures and op set), so later set-ups reuse it.
#
# Environment:
#   TORCH_SPEC          torch requirement (default "torch==2.13.0", the CPU build here).
#   TORCH_INDEX_URL     extra index for torch (e.g. a CUDA wheel index on a GPU machine).
#   REXNET_MMDET_CACHE  where the built mmcv wheel is kept.
#   PYTHON              interpreter used to create the venv (default python3; --floor: a Python 3.8, found
#                       as python3.8 on PATH or through pyenv).
#   VENV                the environment's folder (default .venv; --floor: .venv-floor).
# GPU mode only:
#   TORCH_CUDA_ARCH_LIST  compute capabilities to compile mmcv's kernels for, e.g. "9.0" (H100/H200) or
#                         "8.0;9.0" (default: those of the GPUs visible; required where none is visible).
#   MMCV_CUDA_OPS         "all" (default: every mmcv CUDA kernel, long on few cores) or "detection" (nms,
#                         roi_align and the focal losses, what the detectors here call; other ops CPU-only).
#   CUDA_HOME             the CUDA toolkit to compile with (default: the nvcc on PATH, else /usr/local/cuda,
#                         else pip's nvidia-cuda-nvcc of torch's CUDA version, installed into .venv).
#   MAX_JOBS              parallel compile jobs (default: the number of cores).
set -euo pipefail

gpu="${REXNET_MMDET_GPU:-0}"
floor=0
for arg in "$@"; do
    case "$arg" in
        --gpu) gpu=1 ;;
        --floor) floor=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup.sh: unknown argument $arg (known: --gpu, --floor)" >&2; exit 2 ;;
    esac
done
[ "$gpu" = 0 ] || gpu=1

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [ "$floor" = 1 ]; then
    [ "$gpu" = 0 ] || { echo "setup.sh: --floor is the CPU floor lane; it does not combine with --gpu" >&2; exit 2; }
    if [ -z "${PYTHON:-}" ]; then
        for candidate in python3.8 "$(pyenv prefix 3.8 2>/dev/null | head -n 1)/bin/python" \
                         "$HOME"/.pyenv/versions/3.8*/bin/python; do
            # Run it: a pyenv shim on PATH exists even where that version is not selected.
            if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 8)' >/dev/null 2>&1; then
                PYTHON="$candidate"; break
            fi
        done
        [ -n "${PYTHON:-}" ] || {
            echo "setup.sh --floor: no Python 3.8 found (python3.8 on PATH, or pyenv's 3.8); install one or set PYTHON" >&2
            exit 2; }
    fi
    TORCH_SPEC="${TORCH_SPEC:-torch==2.1.2}"
    VENV="${VENV:-.venv-floor}"
    EXTRA=("numpy<2")
else
    EXTRA=()
fi
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
VENV="${VENV:-.venv}"
CACHE="${REXNET_MMDET_CACHE:-$HOME/.cache/rexnet-mmdet}"
MMCV_VERSION=2.1.0
STACK=(mmengine==0.10.7 mmdet==3.3.0 pycocotools pytest matplotlib safetensors onnx onnxruntime openvino)

step() { printf '\n[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
    step "creating $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi
py="$VENV/bin/python"
pip=("$py" -m pip --disable-pip-version-check)
# pip, quieter: some machines' pip configs point at local indexes and warn about every package.
pip_install() { "${pip[@]}" install -q "$@" 2>&1 | { grep -v "^WARNING: Location '.*' is ignored" || true; }; }

# Fast path: everything already in place and the package importable with its ops.
stamp="$VENV/.rexnet-mmdet-setup"
want="$(cat scripts/setup.sh setup.py 2>/dev/null | sha256sum | cut -c1-16) $TORCH_SPEC"
if [ "$gpu" = 1 ]; then
    MMCV_CUDA_OPS="${MMCV_CUDA_OPS:-all}"
    case "$MMCV_CUDA_OPS" in all|detection) ;; *)
        echo "setup.sh: MMCV_CUDA_OPS must be 'all' or 'detection', got '$MMCV_CUDA_OPS'" >&2; exit 2 ;;
    esac
    want="$want gpu ops=$MMCV_CUDA_OPS arch=${TORCH_CUDA_ARCH_LIST:-visible}"
fi
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && "$py" -c 'import torch, mmcv.ops, mmdet, rexnet_mmdet' 2>/dev/null; then
    step "already set up ($(
        "$py" -c 'import torch, mmcv, mmdet; print(f"torch {torch.__version__}, mmcv {mmcv.__version__}, mmdet {mmdet.__version__}")'))"
    exit 0
fi

step "installing $TORCH_SPEC and build tools"
torch_args=("$TORCH_SPEC")
[ -n "${TORCH_INDEX_URL:-}" ] && torch_args+=(--extra-index-url "$TORCH_INDEX_URL")
pip_install "${torch_args[@]}" "setuptools<80" wheel ninja numpy ${EXTRA[@]+"${EXTRA[@]}"}

torch_version="$("$py" -c 'import torch; print(torch.__version__)')"
py_tag="$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
wheel_dir="$CACHE/mmcv-$MMCV_VERSION-$py_tag-torch-$torch_version"
if [ "$gpu" = 1 ]; then
    # shellcheck source=scripts/setup_cuda.sh
    source scripts/setup_cuda.sh  # sets CUDA_HOME, TORCH_CUDA_ARCH_LIST and wheel_dir for the CUDA build
fi
mkdir -p "$wheel_dir"

if [ "$gpu" = 1 ] && ! ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
    build_mmcv_cuda
elif ! ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
    step "building mmcv $MMCV_VERSION with compiled ops for torch $torch_version (about 9 minutes on 2 cores)"
    step "the wheel will be cached in $wheel_dir"
    tmp="$(mktemp -d)"
    # --no-build-isolation: compile against the torch installed above, not a fresh one.
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
        "${pip[@]}" wheel -v --no-build-isolation --no-deps -w "$tmp" "mmcv==$MMCV_VERSION" 2>&1 \
        | while IFS= read -r line; do
            # Show progress without flooding the terminal with compiler lines.
            case "$line" in
                *"Building wheel"*|*"Created wheel"*|*"Successfully"*|*rror*) echo "  $line" ;;
                *"Compiling"*|*"building '"*|*"] "*) printf '.' ;;
            esac
          done
    echo
    mv "$tmp"/mmcv-*.whl "$wheel_dir"/ || { echo "mmcv build failed; see the output above" >&2; exit 1; }
    rm -rf "$tmp"
else
    step "reusing cached mmcv wheel from $wheel_dir"
fi

step "installing mmcv, mmengine, mmdet and test tools"
pip_install "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl "${STACK[@]}" "${torch_args[@]}" ${EXTRA[@]+"${EXTRA[@]}"}

step "installing rexnet_mmdet (editable)"
pip_install --no-deps --no-build-isolation -e .

"$py" -c 'import mmcv.ops, mmdet, rexnet_mmdet, torch; print("torch", torch.__version__, "| mmcv", mmcv.__version__, "with ops | mmdet", mmdet.__version__, "| rexnet_mmdet", rexnet_mmdet.__version__)'
[ "$gpu" = 0 ] || check_mmcv_cuda
echo "$want" > "$stamp"
step "done"
