"""Training on a batch of one image: BatchNorm uses its running statistics for that step.

BatchNorm in training mode estimates each channel's mean and variance from the batch. After global
pooling (ReXNet's squeeze-excitation) or on a 1x1 map (SSDLite's last extra layers) one image gives
one value per channel, and PyTorch stops with "Expected more than 1 value per channel when training".
Samplers leave such batches: mmdet's ``AspectRatioBatchSampler`` yields the leftover image of an
aspect-ratio group as a batch of one at the end of an epoch.

For such a step :func:`running_statistics` puts the model's training-mode BatchNorm layers in eval
mode: they normalise with their running statistics, their affine weights still get gradients and
their running statistics are left as they are; the previous modes are restored afterwards. Batches
of two or more images are never touched.

SyncBN is left alone in a distributed run of more than one process: its statistics come from every
process's batch together, and a process that switched alone would leave the others waiting in its
collective calls.
"""
import contextlib
from typing import Iterator, List, Optional

import torch.distributed as dist
import torch.nn as nn

from .norms import is_batch_norm, is_sync_batch_norm

#: What is logged, once per run, when a one-image batch is trained this way.
EXPLANATION = ('BatchNorm cannot estimate statistics from one image (one value per channel after pooling); '
               'for this step the BatchNorm layers normalised with their running statistics (weights still '
               'trained, running statistics unchanged). Later one-image batches are handled the same way '
               'without further messages')


def _distributed_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def switchable_norms(model: nn.Module, world_size: Optional[int] = None) -> List[nn.Module]:
    """The BatchNorm layers of ``model`` that are in training mode and may run on running statistics.

    Every training-mode BatchNorm (torch's, mmcv's) is switchable, except SyncBN layers when
    ``world_size`` (default: the initialised process group's, 1 without one) is more than 1.
    """
    world_size = _distributed_world_size() if world_size is None else world_size
    return [m for m in model.modules()
            if is_batch_norm(m) and m.training and not (world_size > 1 and is_sync_batch_norm(m))]


@contextlib.contextmanager
def running_statistics(model: nn.Module, world_size: Optional[int] = None) -> Iterator[List[nn.Module]]:
    """Within the block, ``model``'s switchable BatchNorm layers (see :func:`switchable_norms`) are in
    eval mode; yields them (empty: nothing was switched). Their modes are restored on exit."""
    norms = switchable_norms(model, world_size)
    for module in norms:
        module.train(False)
    try:
        yield norms
    finally:
        for module in norms:
            module.train(True)


def batch_size_of(inputs) -> Optional[int]:
    """The number of images in a data batch's ``inputs`` (a list of images or a stacked tensor), or None."""
    if isinstance(inputs, (list, tuple)):
        return len(inputs)
    shape = getattr(inputs, 'shape', None)
    return int(shape[0]) if shape is not None and len(shape) >= 1 else None


__all__ = ['EXPLANATION', 'switchable_norms', 'running_statistics', 'batch_size_of']
