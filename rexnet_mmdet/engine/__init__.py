"""What the tools share: safe checkpoint loading, dataset checks, training curves.

Importing this package makes mmengine read every checkpoint (local paths, URLs and its other
schemes) through ``rexnet_mmdet.models.weights.safe_load`` (weights only, plus the classes
mmengine training checkpoints hold), registers ``CheckpointCheckHook``, ``TrainingCurvesHook``
and ``StrideCheckHook`` in mmengine's HOOKS and the atomic local file backend used to save
checkpoints.
"""
from .checkpoint import (TRAINING_CHECKPOINT_GLOBALS, CheckpointCheckHook, CheckpointError, CheckpointMismatchError,
                         CheckpointNotFoundError, CorruptCheckpointError, MalformedCheckpointError,
                         UnsafeCheckpointError, check_training_checkpoint, check_weights_fit, find_resume_checkpoint,
                         load_checkpoint, load_checkpoint_file, prepare_checkpoints, register_safe_checkpoint_loader)
from .curves import TrainingCurvesHook, plot_training_curves, read_scalar_logs
from .data_checks import DatasetCheckError, check_run_data
from .stride_check import StrideCheckHook, StrideMismatchError, add_stride_check, check_feature_strides

register_safe_checkpoint_loader()

__all__ = [
    'TRAINING_CHECKPOINT_GLOBALS', 'CheckpointCheckHook', 'CheckpointError', 'CheckpointMismatchError',
    'CheckpointNotFoundError', 'CorruptCheckpointError', 'MalformedCheckpointError', 'UnsafeCheckpointError',
    'check_training_checkpoint', 'check_weights_fit', 'find_resume_checkpoint', 'load_checkpoint',
    'load_checkpoint_file', 'prepare_checkpoints', 'register_safe_checkpoint_loader', 'TrainingCurvesHook',
    'plot_training_curves', 'read_scalar_logs', 'DatasetCheckError', 'check_run_data', 'StrideCheckHook',
    'StrideMismatchError', 'add_stride_check', 'check_feature_strides'
]
