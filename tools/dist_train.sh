#!/usr/bin/env bash
# Train on several GPUs (or CPU processes) and nodes with torchrun.
#
#   tools/dist_train.sh CONFIG NPROC [train.py options]
#
# NPROC processes on this node (one per GPU). Several nodes: run it on every node with
#   NNODES=2 NODE_RANK=0|1 MASTER_ADDR=<node 0 address> [PORT=29500] tools/dist_train.sh ...
# Without CUDA the processes talk over gloo (rexnet_mmdet/engine/launch.py).
# PYTHON picks the interpreter (default: the clone's .venv if present, else python).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG NPROC [train.py options]" >&2
    exit 2
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONFIG=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$root/.venv/bin/python" ]; then PYTHON="$root/.venv/bin/python"; else PYTHON=python; fi
fi

PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" --master_port="$PORT" \
    --nproc_per_node="$NPROC" \
    "$root/tools/train.py" "$CONFIG" --launcher pytorch "${@:3}"
