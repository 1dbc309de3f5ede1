"""BatchNorm: which layers are one (torch's, mmcv's SyncBN), and re-estimating their running statistics
from data: the one implementation that building random models (``utils.build``), carrying weights to
another width (``weights.transfer``) and the feature-rank analysis use.

- :func:`reestimate_batchnorm`: statistics of whatever a callable runs (any model, any input);
- :func:`calibrate_batchnorm`: statistics of a batch of images, fed through the model in batches.
"""
import sys
from typing import Any, Callable, Iterable, Optional

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm


def is_sync_batch_norm(module: nn.Module) -> bool:
    """torch's ``SyncBatchNorm`` or mmcv's ``MMSyncBN`` (which is not a ``_BatchNorm``)."""
    if isinstance(module, nn.SyncBatchNorm):
        return True
    # mmcv.ops is only imported when an MMSyncBN was built: look it up, do not import it.
    sync_bn = sys.modules.get('mmcv.ops.sync_bn')
    return sync_bn is not None and isinstance(module, sync_bn.SyncBatchNorm)


def is_batch_norm(module: nn.Module) -> bool:
    """BatchNorm of any kind: torch's (``BN``, ``SyncBN``) and mmcv's ``MMSyncBN``."""
    return isinstance(module, _BatchNorm) or is_sync_batch_norm(module)


def reestimate_batchnorm(model: nn.Module, run: Callable[[], Any], steps: int = 1,
                         names: Optional[Iterable[str]] = None) -> int:
    """Replace BatchNorm running statistics by their cumulative average (``momentum=None``) over the
    activations of ``steps`` calls of ``run()`` (under ``torch.no_grad()``).

    Only the norm layers named in ``names`` (module names such as ``blocks.3.conv_pwl.bn``; all when
    None) are re-estimated, in training mode for the duration; every other module keeps its mode, and
    each chosen norm gets its mode and momentum back afterwards. Returns the number re-estimated.
    """
    wanted = None if names is None else set(names)
    norms = [m for name, m in model.named_modules()
             if isinstance(m, _BatchNorm) and m.track_running_stats and (wanted is None or name in wanted)]
    saved = [(m.training, m.momentum) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        with torch.no_grad():
            for _ in range(steps):
                run()
    finally:
        for m, (training, momentum) in zip(norms, saved):
            m.train(training)
            m.momentum = momentum
    return len(norms)


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, images: torch.Tensor, norms: Optional[Iterable[str]] = None,
                        batch_size: int = 16) -> int:
    """Re-estimate BatchNorm running statistics on ``images`` (a ``(N, 3, H, W)`` batch), fed in
    batches of ``batch_size``; the model is left in eval mode.

    Randomly initialised networks keep BatchNorm's default statistics (mean 0, variance 1), which
    normalise nothing: activations vanish over ReXNet's 16 blocks. Statistics of the data give
    activations of a trained network's scale; after narrowing a trained network to another width
    they fit the channels that are left. ``norms``: as in :func:`reestimate_batchnorm`. Returns the
    number of norm layers re-estimated.
    """
    model.eval()
    batches = images.split(batch_size)
    feed = iter(batches)
    return reestimate_batchnorm(model, lambda: model(next(feed)), steps=len(batches), names=norms)


__all__ = ['is_batch_norm', 'is_sync_batch_norm', 'reestimate_batchnorm', 'calibrate_batchnorm']
