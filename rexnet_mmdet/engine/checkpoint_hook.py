"""``CheckpointCheckHook``: refuse a loaded checkpoint that is malformed or does not fit the model."""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from .checkpoint_content import check_training_checkpoint, check_weights_fit


@HOOKS.register_module()
class CheckpointCheckHook(Hook):
    """Refuse a loaded checkpoint that is malformed or does not fit the model, before it is used.

    Args:
        source: the checkpoint's name for messages (path or URL).
        resume: the checkpoint is resumed from (its meta, message hub and optimizer are checked too).
        min_fit: the fraction of the model's weights the checkpoint must provide (1.0: all of them,
            for evaluation and resuming; less for fine-tuning with another head).
    """

    priority = 'VERY_HIGH'

    def __init__(self, source: str = 'the checkpoint', resume: bool = False, min_fit: float = 1.0):
        self.source = source
        self.resume = resume
        self.min_fit = min_fit

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        check_training_checkpoint(checkpoint, self.source, resume=self.resume)
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        check_weights_fit(model, checkpoint, self.source, self.min_fit)


__all__ = ['CheckpointCheckHook']
