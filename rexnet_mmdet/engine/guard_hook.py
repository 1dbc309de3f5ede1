"""``ReXNetGuardHook``: the checks that travel with a config, under any training script.

One line beside ``custom_imports`` in a config of your own (every config here has it; the project's
``tools/train.py`` and ``tools/test.py`` add it when missing)::

    default_hooks = dict(rexnet_guard=dict(type='ReXNetGuardHook'))

``default_hooks`` is a dict that mmengine merges with the base config's, so this line adds the guard
without touching the recipe's other hooks (``custom_hooks`` is a list: assigning it would replace the
base's EMA or pipeline-switch hooks). MMDetection's own ``tools/train.py`` builds it like any hook.

Before the run (training, validation or testing), on the built detector:

- the neck's channels against the backbone's, and the ImageNet file's width against ``widen_factor``
  (:mod:`.model_checks`): stop with one line and the options to add;
- the feature strides against what the heads expect (:mod:`.stride_check`): stop with one line and the
  ``out_indices`` to use.

Before the first training iteration, after the weights are loaded:

- the training annotations: boxes MMDetection will drop, counted and named (:mod:`.data_checks`; a
  warning; skipped when ``tools/train.py`` already checked the data);
- the input normalisation against ImageNet weights (:mod:`.model_checks`): a warning.

At every training iteration: a batch of one image runs with the detector's BatchNorm layers on their
running statistics for that iteration (:mod:`rexnet_mmdet.models.one_image_batch`; logged once).
"""
import logging
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from ..models.one_image_batch import batch_size_of, one_image_step
from .model_checks import check_neck_channels, input_normalisation_advice
from .stride_check import check_feature_strides

HOOK_TYPE = 'ReXNetGuardHook'
#: The guard's key in ``default_hooks``.
HOOK_KEY = 'rexnet_guard'
#: What a one-image batch switches under the guard.
ONE_IMAGE_SCOPE = 'the detector'


@HOOKS.register_module()
class ReXNetGuardHook(Hook):
    """Stop a run whose detector cannot train as configured, warn about what trains worse, and train
    one-image batches on running BatchNorm statistics.

    Args:
        detr_stride: the stride a DETR-like detector's deepest backbone output must have (default 32, as
            their ResNet recipes); ``None`` leaves DETR-like detectors unchecked.
        check_data: look at the training annotations before the first iteration (boxes MMDetection drops);
            the project's ``tools/train.py`` turns it off after its own, earlier data check.
    """

    # Before any hook that could run the model on the batch; restored after every other hook.
    priority = 'VERY_HIGH'

    def __init__(self, detr_stride: Optional[int] = 32, check_data: bool = True):
        self.detr_stride = detr_stride
        self.check_data = check_data
        self._step = None
        self.one_image_batches = 0

    def before_run(self, runner) -> None:
        check_neck_channels(runner.model, runner.cfg.get('model'))
        check_feature_strides(runner.model, self.detr_stride)

    def before_train(self, runner) -> None:
        if self.check_data:
            from .data_checks import report_dropped_boxes
            report_dropped_boxes(runner.cfg, ('train_dataloader',))
        cfg = runner.cfg
        if not (cfg.get('load_from') or cfg.get('resume')):  # a detector checkpoint replaces the ImageNet weights
            advice = input_normalisation_advice(runner.model)
            if advice:
                print_log(f'ReXNetGuardHook: {advice}', logger='current', level=logging.WARNING)

    def before_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None) -> None:
        inputs = data_batch.get('inputs') if isinstance(data_batch, dict) else None
        if batch_size_of(inputs) != 1:
            return
        self._step = one_image_step(runner.model, ONE_IMAGE_SCOPE, runner.iter + 1)
        if self._step.__enter__():
            self.one_image_batches += 1
        else:  # nothing trains BatchNorm statistics (frozen, GN, SyncBN across processes)
            self._leave()

    def after_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        self._leave()

    def after_train(self, runner) -> None:
        self._leave()

    def _leave(self) -> None:
        if self._step is not None:
            step, self._step = self._step, None
            step.__exit__(None, None, None)


def add_guard(cfg, check_data: Optional[bool] = None) -> None:
    """Make ``cfg`` run :class:`ReXNetGuardHook` (``default_hooks.rexnet_guard``) unless it does already;
    ``check_data`` sets its ``check_data`` where given. ``rexnet_guard=None`` (e.g. from ``--cfg-options``)
    turns it off: the entry is removed, since mmengine accepts None only for its own default hooks."""
    hooks = cfg.get('default_hooks')
    if hooks is None:
        cfg.default_hooks = hooks = dict()
    if HOOK_KEY in hooks and hooks[HOOK_KEY] is None:
        hooks.pop(HOOK_KEY)
        return
    if HOOK_KEY not in hooks:
        hooks[HOOK_KEY] = dict(type=HOOK_TYPE)
    if check_data is not None:
        hooks[HOOK_KEY]['check_data'] = check_data


__all__ = ['ReXNetGuardHook', 'add_guard', 'HOOK_KEY', 'HOOK_TYPE']
