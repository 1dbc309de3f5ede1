#!/usr/bin/env bash
# One command for a GPU machine without internet: install the wheels in .gpu/, run the CUDA tests, a short
# train -> resume -> test on the built-in dataset, and scripts/gpu_benchmarks.sh if present.
#
#   bash scripts/gpu_check.sh [OUTDIR]        (OUTDIR default: $OUT, else work_dirs/gpu_check)
#
# Everything is logged under OUTDIR (one log per step, summary.txt); at most GPU_CHECK_BUDGET seconds
# in all (default 480), each step with its own timeout. Exit status: 0 when every step passed.
# Where torch sees no GPU it rehearses: the CUDA tests skip and the demo trains a few fp32 steps.
#
# Environment:
#   PYTHON            the interpreter with torch (default python3)
#   GPU_WHEELS        folder of wheels to install (default .gpu/); nothing is installed when mmcv, mmdet and
#                     mmengine already import
#   GPU_SITE          where the wheels are installed (default /tmp/rexnet-mmdet-site; put first on PYTHONPATH)
#   GPU_CHECK_BUDGET  seconds for the whole check (default 480)
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="$(realpath -m "${1:-${OUT:-work_dirs/gpu_check}}")"
mkdir -p "$out"
PYTHON="${PYTHON:-python3}"
wheels="${GPU_WHEELS:-.gpu}"
site="${GPU_SITE:-/tmp/rexnet-mmdet-site}"
budget="${GPU_CHECK_BUDGET:-480}"
start=$SECONDS
summary="$out/summary.txt"
: > "$summary"
failed=0

note() { printf '[gpu_check %s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$summary"; }
left() { echo $((budget - (SECONDS - start))); }

# step NAME SECONDS COMMAND...: runs COMMAND with a timeout (capped by the time left), output in OUTDIR/NAME.log.
step() {
    local name=$1 limit=$2; shift 2
    local remaining; remaining=$(left)
    [ "$limit" -gt "$remaining" ] && limit=$remaining
    if [ "$limit" -lt 5 ]; then
        note "$name: not run (the ${budget}s budget is spent)"; failed=1; return 1
    fi
    local t0=$SECONDS rc
    timeout --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1
    rc=$?
    local verdict=passed
    [ $rc -eq 124 ] && verdict="timed out after ${limit}s"
    [ $rc -ne 0 ] && [ $rc -ne 124 ] && verdict="failed (exit $rc)"
    note "$name: $verdict in $((SECONDS - t0))s (log: $out/$name.log)"
    if [ $rc -ne 0 ]; then failed=1; tail -n 15 "$out/$name.log" | sed 's/^/    /' | tee -a "$summary"; fi
    return $rc
}

install_wheels() {
    if "$PYTHON" -c 'import mmcv.ops, mmdet, mmengine, pycocotools' 2>/dev/null; then
        echo "mmcv, mmdet, mmengine and pycocotools already import: nothing installed"; return 0
    fi
    ls "$wheels"/*.whl >/dev/null 2>&1 || {
        echo "no wheels in $wheels/ and mmcv/mmdet do not import: copy the wheels of mmcv with" \
             "its CUDA ops (scripts/setup.sh --gpu builds one), mmengine, mmdet and pycocotools into $wheels/"; return 1; }
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$wheels"/*.whl
}

environment() {
    "$PYTHON" - <<'PYEOF'
import platform, torch, mmcv, mmdet, mmengine
import rexnet_mmdet
from mmcv.utils import ext_loader
ext = ext_loader.load_ext('_ext', ['get_compiling_cuda_version'])
print(f'python {platform.python_version()} | torch {torch.__version__} | mmcv {mmcv.__version__} (ops built with '
      f'CUDA {ext.get_compiling_cuda_version()}) | mmengine {mmengine.__version__} | mmdet {mmdet.__version__} | '
      f'rexnet_mmdet {rexnet_mmdet.__version__}')
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f'GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, compute capability {p.major}.{p.minor}, '
          f'{torch.cuda.device_count()} visible; cudnn {torch.backends.cudnn.version()}')
else:
    print('GPU: none visible to torch (CPU rehearsal: CUDA tests skip, the demo trains a few fp32 steps)')
PYEOF
    command -v nvidia-smi >/dev/null && nvidia-smi || true
}

export PYTHON wheels site
export -f install_wheels environment
note "output: $out; budget ${budget}s; python: $(command -v "$PYTHON")"
step install 90 bash -c install_wheels || { note "stopping: the packages are not there"; exit 1; }
[ -d "$site" ] && export PYTHONPATH="$site:$root${PYTHONPATH:+:$PYTHONPATH}" || export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
step environment 60 bash -c environment || { note "stopping: the project does not import"; exit 1; }
gpu=$("$PYTHON" -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo 0)

# The CUDA tests; then the tests of what a GPU run relies on (one-image batches, mixed precision with with_cp),
# which train on the GPU where there is one, and ReXNet-v1/R against timm (installed on such machines).
step cuda_tests 200 "$PYTHON" -m pytest -p no:cacheprovider --junitxml "$out/cuda_tests.xml" -m cuda tests
if [ "$gpu" = 1 ]; then
    step batch_tests 120 "$PYTHON" -m pytest -p no:cacheprovider --junitxml "$out/batch_tests.xml" \
        tests/engine/test_one_image_batch_hook.py tests/models/test_one_image_batch.py tests/models/test_rexnet_bn.py \
        tests/models/test_timm_equivalence.py
else
    note "batch_tests: left to the CPU suite where there is no GPU"
fi

# Train -> resume -> test on the built-in dataset (made under data/shapes on first use).
demo=configs/demo/faster_rcnn_rexnet_x1.0_fpn_shapes.py
common=(train_cfg.val_interval=1000 model.backbone.with_cp=True)
if [ "$gpu" = 1 ]; then
    first=40; last=60; amp=(--amp)
else  # a CPU rehearsal: two fp32 steps each, no validation (tools/test.py evaluates at the end)
    first=2; last=4; amp=(); common+=(val_cfg=None val_dataloader=None val_evaluator=None)
fi
common+=(default_hooks.checkpoint.interval=$first)
step demo_train 120 "$PYTHON" tools/train.py "$demo" --work-dir "$out/demo" "${amp[@]}" \
    --cfg-options train_cfg.max_iters=$first "${common[@]}"
step demo_resume 120 "$PYTHON" tools/train.py "$demo" --work-dir "$out/demo" "${amp[@]}" --resume \
    --cfg-options train_cfg.max_iters=$last "${common[@]}"
step demo_test 90 "$PYTHON" tools/test.py "$demo" "$out/demo/iter_$last.pth" --work-dir "$out/demo_test"

# The loss NaN once seen with Mask R-CNN x2.2 from a random backbone, SGD lr 0.01, --amp and with_cp: the same
# 30 iterations (logged every iteration, no warm-up) in mixed precision and in fp32, on the GPU only.
if [ "$gpu" = 1 ]; then
    nan_cfg="$out/mask_rcnn_rexnet_x2.2_random_sgd.py"
    cat > "$nan_cfg" <<CFGEOF
_base_ = ['$root/configs/demo/mask_rcnn_rexnet_x1.0_fpn_shapes.py']
model = dict(backbone=dict(widen_factor=2.2, with_cp=True), neck=dict(in_channels=[85, 134, 283, 406]))
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
param_scheduler = []
train_cfg = dict(max_iters=30, val_interval=1000)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1000))
CFGEOF
    for run in amp fp32; do
        args=(); [ $run = amp ] && args=(--amp)
        step "nan_$run" 120 "$PYTHON" tools/train.py "$nan_cfg" --work-dir "$out/nan_$run" "${args[@]}"
        note "nan_$run: $(grep -c 'loss: nan' "$out/nan_$run.log" 2>/dev/null || echo 0) of 30 iterations logged loss nan"
    done
fi

if [ -f scripts/gpu_benchmarks.sh ]; then
    step benchmarks "$(left)" bash scripts/gpu_benchmarks.sh "$out/benchmarks"
else
    note "benchmarks: scripts/gpu_benchmarks.sh is not in this checkout; skipped"
fi

note "done in $((SECONDS - start))s: $([ $failed = 0 ] && echo 'every step passed' || echo 'SOME STEPS FAILED')"
exit $failed
