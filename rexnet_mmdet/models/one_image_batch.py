"""Training on a batch of one image: BatchNorm uses its running statistics for that step.

BatchNorm in training mode estimates each channel's mean and variance from the batch. After global
pooling (ReXNet's squeeze-excitation) or on a 1x1 map (SSDLite's last extra layers) one image gives
one value per channel, and PyTorch stops with "Expected more than 1 value per channel when training".
Samplers leave such batches: mmdet's ``AspectRatioBatchSampler`` yields the leftover image of an
aspect-ratio group as a batch of one at the end of an epoch.

For such a step :func:`one_image_step` (the one place that decides and logs) puts a module's training-mode
BatchNorm layers in eval mode (:func:`running_statistics`): they normalise with their running statistics,
their affine weights still get gradients and their running statistics are left as they are; the previous
modes are restored afterwards. Batches of two or more images are never touched. Which module it is given
decides the scope: ``ReXNetGuardHook`` (the configs' guard) gives it the whole detector for the whole
iteration; without the hook the ReXNet backbone gives it itself, for its own forward pass.

SyncBN is left alone in a distributed run of more than one process: its statistics come from every
process's batch together, and a process that switched alone would leave the others waiting in its
collective calls.
"""
import contextlib
import logging
from typing import Iterator, List, Optional

import torch.distributed as dist
import torch.nn as nn
from mmengine.logging import print_log

from .norms import is_batch_norm, is_sync_batch_norm

#: What is logged, once per run, when a one-image batch is trained this way.
EXPLANATION = ('BatchNorm cannot estimate statistics from one image (one value per channel after pooling), so '
               'these layers normalised with their running statistics for this step (weights still trained, '
               'running statistics unchanged). Later one-image batches are handled the same way without further '
               'messages')
#: Set on the module whose one-image batch was reported, so that the log says it once.
_REPORTED = '_one_image_batch_reported'


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


@contextlib.contextmanager
def one_image_step(module: nn.Module, scope: str, iteration: Optional[int] = None,
                   world_size: Optional[int] = None) -> Iterator[List[nn.Module]]:
    """A training step on a batch of one image: ``module``'s switchable BatchNorm layers run on their running
    statistics within the block (see :func:`running_statistics`; yields them). The first step that switched
    any layer is logged, once per ``module``, as "A training batch of 1 image at iteration N: K BatchNorm
    layers of SCOPE ..." (``scope``: what ``module`` is, e.g. ``'the detector'``; ``iteration``: 1-based)."""
    with running_statistics(module, world_size) as switched:
        if switched and not getattr(module, _REPORTED, False):
            object.__setattr__(module, _REPORTED, True)
            where = '' if iteration is None else f' at iteration {iteration}'
            print_log(f'A training batch of 1 image{where}: {len(switched)} BatchNorm layers of {scope}: '
                      f'{EXPLANATION}', logger='current', level=logging.WARNING)
        yield switched


def batch_size_of(inputs) -> Optional[int]:
    """The number of images in a data batch's ``inputs`` (a list of images or a stacked tensor), or None."""
    if isinstance(inputs, (list, tuple)):
        return len(inputs)
    shape = getattr(inputs, 'shape', None)
    return int(shape[0]) if shape is not None and len(shape) >= 1 else None


__all__ = ['EXPLANATION', 'switchable_norms', 'running_statistics', 'one_image_step', 'batch_size_of']
