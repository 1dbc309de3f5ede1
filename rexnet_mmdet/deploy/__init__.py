"""Inference: the optimized path (BN folding, channels-last; ``fuse``) and the backbone's ONNX export
(``onnx_backbone``, imported on use: it needs onnx and onnxruntime)."""
from .fuse import fold_batchnorm, fold_conv_bn, optimize_for_inference

__all__ = ['optimize_for_inference', 'fold_batchnorm', 'fold_conv_bn']
