"""ReXNet backbone and detectors for MMDetection 3.x.

``import rexnet_mmdet`` registers ``type='ReXNet'`` in MMDetection's ``MODELS`` registry.
"""
__version__ = '0.1.0'

from . import models  # noqa: F401,E402  (registers the backbone)
# The built-in dataset, the training-curves hook and safe loading of training checkpoints.
from . import datasets, engine  # noqa: F401,E402
