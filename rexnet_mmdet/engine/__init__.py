"""What the tools share: safe checkpoint loading, dataset checks, training curves.

Importing this package makes mmengine load local checkpoints through
``load_checkpoint_file`` (weights only, plus the classes mmengine training checkpoints
hold) and registers ``TrainingCurvesHook`` in mmengine's HOOKS.
"""
from .checkpoint import (TRAINING_CHECKPOINT_GLOBALS, CorruptCheckpointError, UnsafeCheckpointError,
                         find_resume_checkpoint, load_checkpoint_file, register_safe_checkpoint_loader)
from .curves import TrainingCurvesHook, plot_training_curves, read_scalar_logs
from .data_checks import DatasetCheckError, check_run_data

register_safe_checkpoint_loader()

__all__ = [
    'TRAINING_CHECKPOINT_GLOBALS', 'CorruptCheckpointError', 'UnsafeCheckpointError', 'find_resume_checkpoint',
    'load_checkpoint_file', 'register_safe_checkpoint_loader', 'TrainingCurvesHook', 'plot_training_curves',
    'read_scalar_logs', 'DatasetCheckError', 'check_run_data'
]
