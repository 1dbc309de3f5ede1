"""Deterministic stand-ins for the official ReXNet weights, rebuilt from the key lists in tests/data.

The recipe is the one the golden tensors in ``tests/data/golden_rexnetv1_*.pt`` and
``golden_rexnet_lite_*.pt`` were made with: walk the
official keys in file order with one generator seeded 0, draw ``u = rand(shape)`` per key, and scale it by
the key's role. Loaded into a faithful ReXNet, these weights reproduce the golden outputs.
"""
import math
import os.path as osp
from typing import Dict

import torch

DATA = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data')


def read_key_list(path: str):
    for line in open(path):
        if not line.strip():
            continue
        key, shape = line.rstrip('\n').split('\t')
        dims = tuple(int(d) for d in shape.strip('()').split(',') if d.strip())
        yield key, dims


def rebuild_official_weights(width: str, model: str = 'rexnetv1') -> Dict[str, torch.Tensor]:
    """Official-format state dict: ``model`` 'rexnetv1' (width '1.0' or '0.9') or 'rexnet_lite' ('1.0' or '2.0')."""
    g = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in read_key_list(osp.join(DATA, f'official_keys_{model}_{width}.txt')):
        if key.endswith('num_batches_tracked'):
            state[key] = torch.tensor(0)
            continue
        u = torch.rand(shape, generator=g)
        if key.endswith('running_var'):
            state[key] = u + 0.5
        elif key.endswith('running_mean'):
            state[key] = (u - 0.5) * 0.2
        elif len(shape) == 1:
            state[key] = u + 0.5 if key.endswith('weight') else (u - 0.5) * 0.2
        else:
            fan_in = math.prod(shape[1:])
            state[key] = (u - 0.5) * 2 * math.sqrt(3 / fan_in)
    return state


def load_golden(width: str, model: str = 'rexnetv1') -> dict:
    return torch.load(osp.join(DATA, f'golden_{model}_{width}.pt'), weights_only=True)


def checksum(state: Dict[str, torch.Tensor]) -> float:
    return sum(float(v.double().sum()) for v in state.values())
