"""ReXNet backbone and detectors for MMDetection 3.x.

``import rexnet_mmdet`` registers ``type='ReXNet'``, ``SSDLiteHead`` and ``SSDLiteAnchorGenerator`` in
MMDetection's ``MODELS`` registry, the built-in ``ShapesDataset`` and the ``TrainingCurvesHook``, and
makes mmengine read local checkpoints with weights-only loading (see ``rexnet_mmdet.engine``).

What a config or a script needs is importable from here::

    from rexnet_mmdet import ReXNet, out_channels
    neck = dict(type='FPN', in_channels=out_channels(1.0, (1, 2, 3, 5)), out_channels=256, num_outs=5)
"""
__version__ = '0.1.0'

from .utils.environment import check_environment  # noqa: E402

check_environment()  # one line, before torch, mmcv or mmdet is imported, where any is outside the range

from . import models  # noqa: F401,E402  (registers the backbone and the SSDLite head)
# The built-in dataset, the training-curves hook and safe loading of training checkpoints.
from . import datasets, engine  # noqa: F401,E402
from .models.weights import PRETRAINED_URLS, load_backbone_weights  # noqa: E402
from .models.weights.safe_load import (CheckpointError, CheckpointMismatchError, CheckpointNotFoundError,  # noqa: E402
                                       CorruptCheckpointError, MalformedCheckpointError, UnsafeCheckpointError)
from .deploy import optimize_for_inference  # noqa: E402
from .models import (PUBLISHED_LITE_WIDTHS, PUBLISHED_WIDTHS, BlockSetting, ReXNet,  # noqa: E402
                     SSDLiteAnchorGenerator, SSDLiteHead, TapSpec, block_settings, linear_block_channels,
                     lite_block_channels, out_channels, rounded_block_channels, tap_specs)

__all__ = [
    # the backbone and what it returns, without building it
    'ReXNet', 'out_channels', 'tap_specs', 'TapSpec', 'block_settings', 'BlockSetting',
    'linear_block_channels', 'rounded_block_channels', 'lite_block_channels', 'PUBLISHED_WIDTHS',
    'PUBLISHED_LITE_WIDTHS',
    # ImageNet weights
    'PRETRAINED_URLS', 'load_backbone_weights',
    # the SSDLite head and anchors the paper's SSDLite uses
    'SSDLiteHead', 'SSDLiteAnchorGenerator',
    # inference
    'optimize_for_inference',
    # what reading or checking a checkpoint raises (each a CheckpointError, a ValueError)
    'CheckpointError', 'CheckpointMismatchError', 'CheckpointNotFoundError', 'CorruptCheckpointError',
    'MalformedCheckpointError', 'UnsafeCheckpointError',
]
