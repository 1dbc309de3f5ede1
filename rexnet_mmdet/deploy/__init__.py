"""Deployment helpers: the inference path (BN folding, channels-last) and ONNX export."""
from .fuse import fold_batchnorm, fold_conv_bn, optimize_for_inference

__all__ = ['optimize_for_inference', 'fold_batchnorm', 'fold_conv_bn']
