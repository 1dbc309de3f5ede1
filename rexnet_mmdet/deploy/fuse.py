"""Inference path for ReXNet: fuse BatchNorms into convs and run in channels-last layout.

On a CPU the wide expansion and depthwise layers at detection resolutions are memory-bound: every
separate BatchNorm is one more read and write of a large tensor, and oneDNN runs 1x1 and depthwise
convolutions far faster on NHWC (channels-last) tensors than on NCHW ones, which it must reorder
on every call. Fusing BN into the preceding conv removes those passes without changing what the
model computes (outputs agree to float rounding).
"""
import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from torch.nn.modules.batchnorm import _BatchNorm

from ..models.blocks import SqueezeExcite
from ..models.rexnet import ReXNet
from .backends import BACKENDS, check_backend
from .roi_align import BatchedRoIAlign, fast_roi_align


def _fuse_conv_bn(conv: nn.Conv2d, bn: _BatchNorm) -> None:
    """Fuse an eval-mode BatchNorm that follows ``conv`` into the conv's weight and bias, in place.

    The arithmetic of ``mmcv.cnn.fuse_conv_bn``, which also takes a BatchNorm without affine weights."""
    conv_bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(bn.running_mean)
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.affine:
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    with torch.no_grad():
        conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
    bias = (conv_bias - bn.running_mean) * scale + (bn.bias.detach() if bn.affine else 0)
    conv.bias = nn.Parameter(bias, requires_grad=conv.weight.requires_grad)


def _after_norm(norm: nn.Module) -> nn.Module:
    """What replaces a fused BatchNorm: ``nn.Identity``, or what the norm ran after normalising (timm's
    ``BatchNormAct2d`` carries its ``drop`` and ``act``)."""
    tail = [m for m in (getattr(norm, 'drop', None), getattr(norm, 'act', None)) if isinstance(m, nn.Module)]
    return nn.Sequential(*tail) if tail else nn.Identity()


def fuse_batchnorm(module: nn.Module) -> int:
    """Fuse every BatchNorm that follows a conv in ``module`` into that conv, in place; returns how many.

    A ``ConvModule`` fuses its norm when the norm runs after the conv (its ``order``), ReXNet's
    squeeze-excitation its ``bn`` into ``fc1``; elsewhere, as ``mmcv.cnn.fuse_conv_bn`` does, a
    BatchNorm registered right after a ``Conv2d`` among the same parent's children. Call it on a
    model in eval mode: the running statistics are what is fused.
    """
    fused, last_conv = 0, None
    for name, child in module.named_children():
        if isinstance(child, ConvModule):
            norm = getattr(child, child.norm_name, None) if child.with_norm else None
            # Its conv is registered first whatever its ``order``: a norm that runs first must stay.
            if isinstance(norm, _BatchNorm) and child.order.index('conv') < child.order.index('norm'):
                _fuse_conv_bn(child.conv, norm)
                setattr(child, child.norm_name, nn.Identity())
                fused += 1
        elif isinstance(child, SqueezeExcite) and isinstance(child.bn, _BatchNorm):
            _fuse_conv_bn(child.fc1, child.bn)
            child.bn = nn.Identity()
            fused += 1
        elif isinstance(child, _BatchNorm) and last_conv is not None:
            _fuse_conv_bn(last_conv, child)
            setattr(module, name, _after_norm(child))
            fused += 1
        elif not isinstance(child, nn.Conv2d):
            fused += fuse_batchnorm(child)
        last_conv = child if isinstance(child, nn.Conv2d) else None
    return fused


def _contiguous_feats(module: nn.Module, args):
    feats = args[0]
    if isinstance(feats, (tuple, list)) and any(isinstance(f, torch.Tensor) and not f.is_contiguous()
                                                for f in feats):
        return (tuple(f.contiguous() for f in feats),) + tuple(args[1:])
    return None


def contiguous_roi_features(model: nn.Module) -> int:
    """Give every RoI feature extractor in ``model`` NCHW-contiguous feature maps.

    mmcv's RoIAlign (and RoIPool) kernels read their input's memory as NCHW whatever its strides:
    fed channels-last maps they sample the wrong values, silently. Channels-last features (from a
    channels-last backbone, through the neck and RPN) are therefore made contiguous on the way
    into the RoI extractors only (a forward pre-hook). Extractors whose layers are all
    :class:`~rexnet_mmdet.deploy.roi_align.BatchedRoIAlign` (:func:`~rexnet_mmdet.deploy.roi_align.fast_roi_align`)
    read any layout and are left alone. Returns how many extractors were hooked.
    """
    from mmdet.models.roi_heads.roi_extractors import BaseRoIExtractor

    hooked = 0
    for m in model.modules():
        layers = getattr(m, 'roi_layers', None)
        if isinstance(layers, nn.ModuleList) and len(layers) and \
                all(isinstance(layer, BatchedRoIAlign) for layer in layers):
            continue  # reads any layout itself
        if isinstance(m, BaseRoIExtractor) and not getattr(m, '_contiguous_feats_hook', False):
            m.register_forward_pre_hook(_contiguous_feats)
            m._contiguous_feats_hook = True
            hooked += 1
    return hooked


def optimize_for_inference(model: nn.Module, channels_last: bool = True, backend: str = 'torch') -> nn.Module:
    """Prepare every ReXNet backbone in ``model`` (a backbone or a whole detector) for fast inference.

    Puts the model in eval mode, fuses the backbones' BatchNorms into their convs (:func:`fuse_batchnorm`) and, with
    ``channels_last``, stores their weights and runs their layers in channels-last layout (their
    outputs come back in that layout; later layers accept it). A detector's RoI Align layers are
    replaced by :class:`~rexnet_mmdet.deploy.roi_align.BatchedRoIAlign` (mmcv's numbers, batched
    and multi-threaded on CPU; :func:`~rexnet_mmdet.deploy.roi_align.fast_roi_align`). The model
    computes the same function; it can no longer be trained (rebuild it for that).

    ``backend='openvino'`` or ``'onnxruntime'`` (CPU; ``pip install openvino`` / ``onnxruntime``)
    then exports the fused backbone to ONNX (dynamic batch and image size) and runs it in that
    runtime, the neck and heads staying in PyTorch; outputs agree with PyTorch's to float32
    rounding; with ``channels_last`` its outputs are handed to the neck channels-last.

    Works in place and returns ``model``; for a bare backbone and a runtime ``backend`` the
    returned module replaces it (use the return value).
    """
    backend = check_backend(backend, BACKENDS)
    backbones = [m for m in model.modules() if isinstance(m, ReXNet)]
    if not backbones:
        raise ValueError(f'optimize_for_inference found no ReXNet backbone in {type(model).__name__}')
    model.eval()
    # ONNX has no memory layout: a runtime picks its own, so the export starts from NCHW (and the
    # runtime's outputs are made channels-last afterwards).
    in_torch = channels_last and backend == 'torch'
    for backbone in backbones:
        fuse_batchnorm(backbone)
        if in_torch:
            backbone.to(memory_format=torch.channels_last)
        backbone.set_inference_mode(channels_last=in_torch)
    fast_roi_align(model)
    if channels_last:
        contiguous_roi_features(model)
    if backend == 'torch':
        return model
    from .runtime_backbone import runtime_backbone
    if isinstance(model, ReXNet):
        return runtime_backbone(model, backend, channels_last=channels_last)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, ReXNet):
                setattr(parent, name, runtime_backbone(child, backend, channels_last=channels_last))
    return model
