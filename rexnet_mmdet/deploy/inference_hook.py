"""Evaluate on the inference path: a test-time hook that calls ``optimize_for_inference``.

mmengine's ``Runner.test()`` loads the checkpoint (``load_or_resume``) before its test loop starts,
and the loop calls ``before_test`` first; so the BatchNorms this hook fuses are the checkpoint's,
not the random ones of a freshly built model.
"""
from typing import Optional

import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmdet.registry import HOOKS

from ..models.rexnet import ReXNet
from .backends import check_backend
from .fuse import optimize_for_inference
from .roi_align import BatchedRoIAlign


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a (Distributed)DataParallel-like wrapper, or ``model`` itself."""
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class InferencePathHook(Hook):
    """Run the test loop on the optimized model (``rexnet_mmdet.deploy.optimize_for_inference``).

    ``tools/test.py`` adds it unless ``--no-optimize`` is given; in a config:
    ``custom_hooks = [dict(type='InferencePathHook')]``. A model without a ReXNet backbone is
    evaluated as built (and the log says so).

    Args:
        channels_last: run the backbone channels-last (see ``optimize_for_inference``).
        backend: where the backbone runs: ``'torch'``, ``'onnxruntime'`` or ``'openvino'``
            (:data:`~rexnet_mmdet.deploy.backends.BACKENDS`).
    """

    # After every other hook's before_test: they see (and may still change) the loaded model.
    priority = 'LOWEST'

    def __init__(self, channels_last: bool = True, backend: str = 'torch'):
        self.channels_last = channels_last
        self.backend = check_backend(backend)
        self.applied: Optional[bool] = None

    def before_test(self, runner) -> None:
        model = unwrap(runner.model)
        if not any(isinstance(m, ReXNet) for m in model.modules()):
            self.applied = False
            runner.logger.info('inference path: no ReXNet backbone in the model, evaluated as built')
            return
        optimize_for_inference(model, channels_last=self.channels_last, backend=self.backend)
        self.applied = True
        roi = ', batched RoI Align' if any(isinstance(m, BatchedRoIAlign) for m in model.modules()) else ''
        where = (', backbone channels-last' if self.channels_last else '') if self.backend == 'torch' else \
            f', backbone run by {self.backend}'
        runner.logger.info('inference path: optimize_for_inference applied after loading the checkpoint '
                           f'(BatchNorm fused into convs{where}{roi}); --no-optimize evaluates the model as built')
