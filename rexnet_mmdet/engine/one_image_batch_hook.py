"""``OneImageBatchHook``: a training batch of one image runs with BatchNorm on its running statistics.

The whole model's BatchNorm layers (backbone, neck and heads: SSDLite's extra layers fail on a batch of
one too) normalise with their running statistics for that iteration (forward, backward and optimizer
step); their modes are restored after it. The run goes on and the log says so once. See
:mod:`rexnet_mmdet.models.one_image_batch` for what exactly changes, and why SyncBN in a distributed
run is left alone.

Every config here lists the hook in ``custom_hooks``; ``tools/train.py`` adds it to any config that
does not (:func:`add_one_image_batch_hook`). Without the hook (a config of your own, run by mmdet's
tools) the ReXNet backbone still handles its own BatchNorm the same way.
"""
import logging
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from ..models.one_image_batch import EXPLANATION, batch_size_of, running_statistics

HOOK_TYPE = 'OneImageBatchHook'


@HOOKS.register_module()
class OneImageBatchHook(Hook):
    """Train a one-image batch with the model's BatchNorm layers on their running statistics.

    Batches of two or more images are not touched. The first one-image batch that switched any
    layer is reported (with its iteration) in the run's log, once; ``handled`` counts them all.
    """

    # Before any hook that could run the model on the batch; restored after every other hook.
    priority = 'VERY_HIGH'

    def __init__(self):
        self._context = None
        self.handled = 0

    def before_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None) -> None:
        inputs = data_batch.get('inputs') if isinstance(data_batch, dict) else None
        if batch_size_of(inputs) != 1:
            return
        self._context = running_statistics(runner.model)
        switched = self._context.__enter__()
        if not switched:  # nothing trains BatchNorm statistics (frozen, GN, SyncBN across processes)
            self._leave()
            return
        self.handled += 1
        if self.handled == 1:
            print_log(f'A training batch of 1 image at iteration {runner.iter + 1} ({len(switched)} BatchNorm '
                      f'layers): {EXPLANATION}', logger='current', level=logging.WARNING)

    def after_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        self._leave()

    def after_train(self, runner) -> None:
        self._leave()

    def _leave(self) -> None:
        if self._context is not None:
            context, self._context = self._context, None
            context.__exit__(None, None, None)


def add_one_image_batch_hook(cfg) -> None:
    """Add :class:`OneImageBatchHook` to ``cfg.custom_hooks`` unless it is there already."""
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') in (HOOK_TYPE, OneImageBatchHook) for h in hooks):
        cfg.custom_hooks = hooks + [dict(type=HOOK_TYPE)]


__all__ = ['OneImageBatchHook', 'add_one_image_batch_hook']
