# The GPU half of scripts/setup.sh (sourced by it with --gpu, after torch is installed in .venv):
# checks that torch is a CUDA build, finds a CUDA compiler, settles the architectures, keys the cached
# mmcv wheel by them and defines build_mmcv_cuda / check_mmcv_cuda. Uses setup.sh's py, pip, step,
# pip_install, torch_version, wheel_dir, MMCV_VERSION and MMCV_CUDA_OPS.

torch_cuda="$("$py" -c 'import torch; print(torch.version.cuda or "")')"
if [ -z "$torch_cuda" ]; then
    echo "setup.sh --gpu: the torch installed ($torch_version) is a CPU build; the GPU set-up needs a CUDA build." >&2
    echo "  Give one with TORCH_SPEC (e.g. TORCH_SPEC='torch==2.13.0+cu130') and TORCH_INDEX_URL (a CUDA wheel index)," >&2
    echo "  or remove .venv if a CPU torch was installed there before." >&2
    exit 1
fi

if grep -q 'C++20 or later' "$("$py" -c 'import torch, os; print(os.path.dirname(torch.__file__))')/include/ATen/ATen.h" 2>/dev/null; then
    echo "setup.sh --gpu: torch $torch_version compiles extensions as C++20 only, and mmcv $MMCV_VERSION's ops are" \
         "C++17: use a torch release that accepts C++17 (2.13 or older), e.g. TORCH_SPEC='torch==2.13.0'" >&2
    exit 1
fi

cuda_home_given="${CUDA_HOME:-}"
# The CUDA compiler: CUDA_HOME, else the nvcc on PATH (resolved through wrapper scripts), else
# /usr/local/cuda, else pip's nvidia-cuda-nvcc of torch's CUDA series, installed into .venv.
if [ -z "${CUDA_HOME:-}" ] && command -v nvcc >/dev/null; then
    here="$(nvcc --dryrun -c -x cu /dev/null 2>&1 | sed -n 's/^#\$ _HERE_=//p' | head -1)"
    [ -n "$here" ] && CUDA_HOME="$(cd "$here/.." && pwd)"
fi
if [ -z "${CUDA_HOME:-}" ] && [ -x /usr/local/cuda/bin/nvcc ]; then
    CUDA_HOME=/usr/local/cuda
fi
# torch's CUDA headers include the CUDA libraries' headers (cusparse.h, cublas_v2.h ...): a toolkit with the
# compiler only cannot build against them; pip's layout has them (torch installed those libraries there).
if [ -n "${CUDA_HOME:-}" ] && [ ! -f "$CUDA_HOME/include/cusparse.h" ]; then
    if [ -n "$cuda_home_given" ]; then
        echo "setup.sh --gpu: CUDA_HOME=$CUDA_HOME has no include/cusparse.h, which torch's CUDA headers include:" \
             "give a full CUDA toolkit, or unset CUDA_HOME to use pip's compiler with torch's CUDA libraries" >&2
        exit 1
    fi
    step "the CUDA toolkit in $CUDA_HOME has no cusparse.h (torch's CUDA headers include it): using pip's compiler"
    CUDA_HOME=
fi
if [ -z "${CUDA_HOME:-}" ]; then
    series="$(echo "$torch_cuda" | cut -d. -f1,2)"
    step "installing pip's CUDA $series compiler into .venv"
    pip_install "nvidia-cuda-nvcc==$series.*" "nvidia-cuda-cccl==$series.*" "nvidia-cuda-crt==$series.*" \
        "nvidia-nvvm==$series.*" "nvidia-cuda-runtime==$series.*"
    nv="$("$py" -c "import nvidia, os; print(os.path.join(nvidia.__path__[0], 'cu${torch_cuda%%.*}'))")"
    [ -x "$nv/bin/nvcc" ] || { echo "setup.sh --gpu: pip's nvcc not found in $nv/bin (pip's layout of CUDA 13+" \
        "is expected); install a CUDA $series toolkit and set CUDA_HOME to it" >&2; exit 1; }
    # torch's extension builder expects CUDA_HOME/{bin,include,lib64}: a folder of links to pip's layout.
    CUDA_HOME="$PWD/.venv/cuda-home"
    mkdir -p "$CUDA_HOME/lib64"
    ln -sfn "$nv/bin" "$CUDA_HOME/bin"; ln -sfn "$nv/include" "$CUDA_HOME/include"; ln -sfn "$nv/nvvm" "$CUDA_HOME/nvvm"
    for f in "$nv"/lib/*; do ln -sf "$f" "$CUDA_HOME/lib64/"; done
    [ -e "$CUDA_HOME/lib64/libcudart.so" ] || ln -sf "$(ls "$nv"/lib/libcudart.so.* | head -1)" "$CUDA_HOME/lib64/libcudart.so"
fi
export CUDA_HOME
nvcc_version="$("$CUDA_HOME/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p')"
if [ "${nvcc_version%%.*}" != "${torch_cuda%%.*}" ]; then
    echo "setup.sh --gpu: torch $torch_version was built with CUDA $torch_cuda but the compiler in $CUDA_HOME is" \
         "CUDA $nvcc_version; mmcv's kernels need the same major version: set CUDA_HOME to a CUDA ${torch_cuda%%.*}.x" \
         "toolkit, or unset it to use pip's compiler" >&2
    exit 1
fi

if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
    TORCH_CUDA_ARCH_LIST="$("$py" -c 'import torch
caps = sorted({"%d.%d" % torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}) \
    if torch.cuda.is_available() else []
print(";".join(caps))')"
    if [ -z "$TORCH_CUDA_ARCH_LIST" ]; then
        echo "setup.sh --gpu: no GPU is visible here, so the CUDA architectures to compile for are unknown:" \
             "set TORCH_CUDA_ARCH_LIST to your GPUs' compute capabilities, e.g. TORCH_CUDA_ARCH_LIST=9.0 (H100/H200)," \
             "8.0 (A100), 8.6 (RTX 30xx/A40), 8.9 (L4/L40/RTX 40xx); several as \"8.0;9.0\"" >&2
        exit 1
    fi
fi
export TORCH_CUDA_ARCH_LIST
wheel_dir="$wheel_dir-sm-$(echo "$TORCH_CUDA_ARCH_LIST" | tr -c '0-9A-Za-z.\n' '_')-ops-$MMCV_CUDA_OPS"

build_mmcv_cuda() {
    local what="every CUDA kernel"
    [ "$MMCV_CUDA_OPS" = detection ] && what="the CUDA kernels of nms, roi_align and the focal losses"
    step "building mmcv $MMCV_VERSION with $what for torch $torch_version, CUDA $nvcc_version from $CUDA_HOME," \
         "architectures $TORCH_CUDA_ARCH_LIST ($(nproc) cores, MAX_JOBS=${MAX_JOBS:-$(nproc)})"
    step "the wheel will be cached in $wheel_dir"
    local tmp
    tmp="$(mktemp -d)"
    # The source, not the package: --no-build-isolation makes pip read its metadata against this torch.
    "${pip[@]}" download -q --no-deps --no-binary :all: --no-build-isolation -d "$tmp/sdist" "mmcv==$MMCV_VERSION"
    tar xzf "$tmp"/sdist/mmcv-"$MMCV_VERSION".tar.gz -C "$tmp"
    [ "$MMCV_CUDA_OPS" = detection ] && "$py" scripts/mmcv_cuda_ops.py "$tmp/mmcv-$MMCV_VERSION"
    local log="$tmp/build.log"
    FORCE_CUDA=1 MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" PATH="$CUDA_HOME/bin:$PATH" \
        "${pip[@]}" wheel -v --no-build-isolation --no-deps -w "$tmp/dist" "$tmp/mmcv-$MMCV_VERSION" >"$log" 2>&1 &
    local builder=$!
    # Progress: one dot per compiled file, from the log (the compiler's own lines stay in the log).
    local shown=0 done_files
    while kill -0 "$builder" 2>/dev/null; do
        sleep 10
        done_files=$(grep -c -E '^\[[0-9]+/[0-9]+\]' "$log" || true)
        while [ "$shown" -lt "$done_files" ]; do printf '.'; shown=$((shown + 1)); done
    done
    echo
    if ! wait "$builder" || ! ls "$tmp"/dist/mmcv-*.whl >/dev/null 2>&1; then
        grep -E -m 20 'error|Error' "$log" >&2 || tail -n 20 "$log" >&2
        echo "mmcv CUDA build failed; the full log is $log" >&2
        exit 1
    fi
    mv "$tmp"/dist/mmcv-*.whl "$wheel_dir"/
    rm -rf "$tmp"
}

# mmcv's compiled ops must know CUDA (a wheel built without CUDA imports fine and fails on the first GPU tensor).
check_mmcv_cuda() {
    "$py" - <<'PYEOF'
import torch
from mmcv.utils import ext_loader
ext = ext_loader.load_ext('_ext', ['get_compiling_cuda_version'])
compiled = ext.get_compiling_cuda_version()
if compiled in ('', 'not available'):
    raise SystemExit('mmcv was built without CUDA ops: remove the cached wheel and run setup.sh --gpu again')
where = torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU visible here (compile-only set-up)'
print(f'mmcv ops compiled with CUDA {compiled}; torch CUDA {torch.version.cuda}; {where}')
PYEOF
}
