"""Deployment helpers: the inference path (BatchNorm fusion, channels-last, or the backbone in ONNX Runtime /
OpenVINO; batched RoI Align), the same treatments for any model, the test-time hook and ONNX export."""
from .backends import BACKENDS, RUNTIMES
from .cpu_memory import keep_freed_memory
from .fuse import contiguous_roi_features, fuse_batchnorm, optimize_for_inference
from .roi_align import BatchedRoIAlign, fast_roi_align

__all__ = ['optimize_for_inference', 'fuse_batchnorm', 'contiguous_roi_features', 'BACKENDS',
           'RUNTIMES', 'BatchedRoIAlign', 'fast_roi_align', 'keep_freed_memory']
