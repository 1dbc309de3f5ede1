#!/usr/bin/env bash
# The GPU benchmarks in at most 5 minutes: the Faster R-CNN race, training throughput, batch-64
# backbones, precisions and torch.compile, under one time budget; tables in OUTDIR, row by row.
#
#   bash scripts/gpu_benchmarks.sh [--budget SECONDS] [--dry-run] [--cudnn-benchmark] [OUTDIR]   (--help: every option)
#
# PYTHON: the interpreter with torch (default python3). The steps are in scripts/gpu_benchmarks.py.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root" && exec "${PYTHON:-python3}" -u scripts/gpu_benchmarks.py "$@"
