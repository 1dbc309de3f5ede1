#!/usr/bin/env bash
# The GPU benchmarks in one go, each step under its own time limit and all of them within a budget
# (about 4 minutes on an H200):
#   1. race        Faster R-CNN prediction, ReXNet x0.9 and x2.2 against ResNet-50, fp16, 1200x800
#                  (padded 1216x800), batch 1 and 8; as built, fused+cl and fused+cl with a CUDA graph
#                  of backbone + neck, every detector alike; with the stage table.
#   2. backbones   batch-64 backbone throughput at 224x224, fp32 and fp16: ReXNet x1.0 against timm's
#                  rexnet_100 and EfficientNet-B0, MMDetection's EfficientNet-B0, ResNet-50, MobileNetV2.
#   3. train       training images/s and peak memory: AMP and fp32, with_cp on and off, the paper's
#                  detectors against the ResNet-50 ones and MobileNetV2-SSDLite.
#   4. precisions  batch-1 prediction, fused+cl, in fp32 (TF32 off), fp16 and bf16.
#   5. compile     batch-1 prediction, fp16: fused+cl against torch.compile(mode='reduce-overhead') of
#                  backbone + neck (compilation takes the longest: it runs last).
# Each step writes OUTDIR/<step>.md (the tables), <step>.log (progress, errors), <step>.json (every
# number and setting) and, for 1 and 2, <step>.png.
#
# Usage: scripts/gpu_benchmarks.sh [--dry-run] [OUTDIR]
#   OUTDIR     where the results go (default: $OUT, else work_dirs/gpu_benchmarks).
#   --dry-run  the same steps on the CPU at tiny sizes, a few calls each: checks that everything runs
#              (fp16 and the CUDA-graph levers are reported as not run there). Not a measurement.
# Environment: PYTHON (default python3), BUDGET_S (seconds for all steps; default 240, dry run 1500).
set -u -o pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

dry=0
outdir=""
for arg in "$@"; do
    case "$arg" in
        --dry-run) dry=1 ;;
        -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "error: unknown option $arg; usage: scripts/gpu_benchmarks.sh [--dry-run] [OUTDIR]" >&2; exit 2 ;;
        *) outdir="$arg" ;;
    esac
done
outdir="${outdir:-${OUT:-work_dirs/gpu_benchmarks}}"
PY="${PYTHON:-python3}"
mkdir -p "$outdir" || { echo "error: cannot create $outdir" >&2; exit 2; }
tool=(tools/analysis_tools/benchmark.py --markdown)

if [ "$dry" = 1 ]; then
    # Tiny sizes on a CPU (fp16 and the CUDA-graph levers are refused there: bf16 stands in for fp16),
    # with generous limits: a shared CPU may be slow.
    budget="${BUDGET_S:-1500}"
    scale=5
    dev=(--device cpu)
    half=(fp16 bf16)
    race=(--widths 0.9 --det-size 128 96 --det-batches 1 2 --repeats 2 --warmup 1)
    backbones=(--widths 1.0 --batches 2 --size 64 --repeats 2 --warmup 1)
    train=(--train-detectors 'Faster R-CNN ReXNet x0.9' 'Mask R-CNN ResNet-50' 'SSDLite ReXNet x1.0'
           'SSDLite MobileNetV2' --train-batch 2 --train-size 64 64 --train-warmup 1 --train-steps 1)
    single=(--widths 0.9 --det-size 128 96 --repeats 2 --warmup 1)
else
    budget="${BUDGET_S:-240}"
    scale=1
    dev=(--device cuda --cudnn-benchmark on --tf32 off)
    half=(fp16)
    race=(--widths 0.9 2.2 --det-size 1200 800 --det-batches 1 8 --repeats 15 --warmup 3)
    backbones=(--widths 1.0 --batches 64 --size 224 --repeats 20 --warmup 3)
    train=(--train-warmup 10 --train-steps 8)
    single=(--widths 0.9 2.2 --det-size 1200 800 --repeats 15 --warmup 3)
fi

start=$SECONDS
failed=0
# step NAME LIMIT_S ARGS...: one benchmark run, cut at LIMIT_S or at what is left of the budget.
step() {
    local name="$1" limit=$(($2 * scale))
    shift 2
    local left=$((budget - (SECONDS - start)))
    if [ "$left" -lt 20 ]; then
        echo "[$name] not run: the ${budget} s budget is spent" | tee "$outdir/$name.log"
        failed=1
        return
    fi
    [ "$limit" -gt "$left" ] && limit="$left"
    local t0=$SECONDS
    echo "[$name] running (limit ${limit} s): $PY ${tool[*]} $*"
    timeout --kill-after=10 "$limit" "$PY" "${tool[@]}" "$@" --json "$outdir/$name.json" \
        >"$outdir/$name.md" 2>"$outdir/$name.log"
    local rc=$?
    if [ "$rc" = 0 ]; then
        echo "[$name] done in $((SECONDS - t0)) s: $outdir/$name.md"
    else
        [ "$rc" = 124 ] && echo "[$name] stopped at its ${limit} s limit" || echo "[$name] failed (exit $rc)"
        tail -n 5 "$outdir/$name.log" | sed "s/^/[$name]   /"
        failed=1
    fi
}

step race 110 "${dev[@]}" --part detectors "${race[@]}" --precisions "${half[@]}" \
    --treatments eager fused+cl fused+cl+cudagraph --plot "$outdir/race.png"
step backbones 60 "${dev[@]}" --part backbones "${backbones[@]}" --precisions fp32 fp16 \
    --treatments eager fused+cl --plot "$outdir/backbones.png"
step train 110 "${dev[@]}" --part train "${train[@]}"
step precisions 50 "${dev[@]}" --part detectors "${single[@]}" --precisions fp32 fp16 bf16 --treatments fused+cl
step compile 90 "${dev[@]}" --part detectors "${single[@]}" --precisions "${half[@]}" \
    --treatments fused+cl fused+cl+compile

echo "all steps: $((SECONDS - start)) s; results in $outdir"
[ "$dry" = 1 ] && echo "dry run on the CPU at tiny sizes: checks that the steps run; the numbers are not measurements"
exit "$failed"
