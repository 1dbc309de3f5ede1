#!/usr/bin/env bash
# The GPU check in at most 5 minutes: CUDA tests, one-image-batch and autocast tests, the demo's
# train -> resume -> test and the NaN reproduction, under one time budget; results in OUTDIR.
#
#   bash scripts/gpu_check.sh [--budget SECONDS] [--dry-run] [OUTDIR]     (--help: every option)
#
# PYTHON: the interpreter with torch (default python3). The steps are in scripts/gpu_check.py.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root" && exec "${PYTHON:-python3}" -u scripts/gpu_check.py "$@"
