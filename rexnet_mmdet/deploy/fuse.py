"""Inference path for ReXNet: fold norm layers into convs and run in channels-last layout.

On a CPU the wide expansion and depthwise layers at detection resolutions are memory-bound: every
separate BatchNorm is one more read and write of a large tensor, and oneDNN runs 1x1 and depthwise
convolutions far faster on NHWC (channels-last) tensors than on NCHW ones, which it must reorder
on every call. Folding BN into the preceding conv removes those passes without changing what the
model computes (outputs agree to float rounding).
"""
import torch
import torch.nn as nn
from mmcv.cnn import ConvModule, fuse_conv_bn
from torch.nn.modules.batchnorm import _BatchNorm

from ..models.blocks import SqueezeExcite
from ..models.rexnet import ReXNet
from .backends import BACKENDS, check_backend
from .roi_align import BatchedRoIAlign, fast_roi_align


def fold_conv_bn(conv: nn.Conv2d, bn: _BatchNorm) -> None:
    """Fold an eval-mode BatchNorm that follows ``conv`` into the conv's weight and bias, in place.

    Kept beside ``mmcv.cnn.fuse_conv_bn`` because it also folds a BatchNorm without affine weights."""
    inv_std = torch.rsqrt(bn.running_var + bn.eps)
    scale = bn.weight.detach() * inv_std if bn.affine else inv_std
    shift = (bn.bias.detach() if bn.affine else 0) - bn.running_mean * scale
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
    conv.bias = nn.Parameter(bias * scale + shift, requires_grad=conv.weight.requires_grad)


def _fold_into(parent: nn.Module, conv_name: str, norm_name: str) -> None:
    """Fold ``parent.<norm_name>`` into ``parent.<conv_name>`` and put an ``nn.Identity`` in its place."""
    norm = getattr(parent, norm_name)
    if norm.affine:
        # mmcv folds each conv with the BatchNorm registered right after it among the children:
        # here exactly the pair asked for, as the callers checked their order.
        fuse_conv_bn(parent)
    else:
        # mmcv's fusion needs the BN's affine weight; a norm_cfg with affine=False has none.
        fold_conv_bn(getattr(parent, conv_name), norm)
        setattr(parent, norm_name, nn.Identity())


def fold_batchnorm(module: nn.Module) -> int:
    """Fold the BatchNorm of every conv+BN pair in ``module`` (ConvModules, SE) into its conv.

    Returns how many were folded.
    """
    folded = 0
    for cm in [m for m in module.modules() if isinstance(m, ConvModule)]:
        norm = getattr(cm, cm.norm_name, None) if cm.with_norm else None
        # mmcv's fuse_conv_bn goes by registration order (conv first in every ConvModule), not by
        # ``order``: a norm that runs before the conv must stay.
        if isinstance(norm, _BatchNorm) and cm.order.index('conv') < cm.order.index('norm'):
            _fold_into(cm, 'conv', cm.norm_name)
            folded += 1
    for se in [m for m in module.modules() if isinstance(m, SqueezeExcite)]:
        if isinstance(se.bn, _BatchNorm):
            _fold_into(se, 'fc1', 'bn')
            folded += 1
    return folded


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

    Puts the model in eval mode, folds the backbones' BatchNorms into their convs and, with
    ``channels_last``, stores their weights and runs their layers in channels-last layout (their
    outputs come back in that layout; later layers accept it). A detector's RoI Align layers are
    replaced by :class:`~rexnet_mmdet.deploy.roi_align.BatchedRoIAlign` (mmcv's numbers, batched
    and multi-threaded on CPU; :func:`~rexnet_mmdet.deploy.roi_align.fast_roi_align`). The model
    computes the same function; it can no longer be trained (rebuild it for that).

    ``backend='openvino'`` or ``'onnxruntime'`` (CPU; ``pip install openvino`` / ``onnxruntime``)
    then exports the folded backbone to ONNX (dynamic batch and image size) and runs it in that
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
        fold_batchnorm(backbone)
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
