"""What the tools share: safe checkpoint loading, checks of checkpoints and datasets, training hooks.

Importing this package makes mmengine read every checkpoint (local paths, URLs and its other
schemes) through ``rexnet_mmdet.models.weights.safe_load`` (weights only, plus the classes
mmengine training checkpoints hold; :mod:`.mmengine_loader`), registers ``CheckpointCheckHook``,
``ReXNetGuardHook`` and ``TrainingCurvesHook`` in mmengine's HOOKS and the atomic
local file backend used to save checkpoints (:mod:`.atomic_backend`), and makes a dataset left with
no sample stop with its file's name and the reason (:mod:`.empty_dataset`).
"""
from ..models.weights.safe_load import CheckpointError, load_checkpoint, load_checkpoint_file
from .atomic_backend import ATOMIC_BACKEND, AtomicLocalBackend
from .backbone_start import check_backbone_start
from .checkpoint_config import prepare_checkpoints
from .checkpoint_content import check_training_checkpoint, check_weights_fit, checkpoint_state_dict
from .checkpoint_hook import CheckpointCheckHook
from .curves import TrainingCurvesHook, plot_training_curves, read_scalar_logs, scalar_log_file
from .data_checks import DatasetCheckError, check_run_data
from .empty_dataset import register_empty_dataset_check
from .mmengine_loader import register_safe_checkpoint_loader
from .guard_hook import ReXNetGuardHook, add_guard
from .model_checks import ChannelMismatchError
from .resume import find_resume_checkpoint, is_readable_checkpoint
from .stride_check import StrideMismatchError, check_feature_strides

register_safe_checkpoint_loader()
register_empty_dataset_check()

#: The project's errors a training or test run can raise once mmengine's Runner is built (a checkpoint that
#: does not fit or is unsafe, a dataset with no sample, a guard's stop): each message says what to change.
RUN_ERRORS = (CheckpointError, DatasetCheckError, StrideMismatchError, ChannelMismatchError)

__all__ = [
    'CheckpointCheckHook', 'check_training_checkpoint', 'check_weights_fit', 'checkpoint_state_dict', 'find_resume_checkpoint',
    'is_readable_checkpoint', 'load_checkpoint', 'load_checkpoint_file', 'prepare_checkpoints',
    'register_safe_checkpoint_loader', 'check_backbone_start', 'AtomicLocalBackend', 'ATOMIC_BACKEND',
    'ReXNetGuardHook', 'add_guard', 'ChannelMismatchError', 'TrainingCurvesHook', 'plot_training_curves',
    'read_scalar_logs', 'scalar_log_file', 'DatasetCheckError', 'check_run_data', 'register_empty_dataset_check',
    'StrideMismatchError', 'check_feature_strides', 'RUN_ERRORS'
]
