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


def optimize_for_inference(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """Prepare every ReXNet backbone in ``model`` (a backbone or a whole detector) for fast inference.

    Puts the model in eval mode, folds the backbones' BatchNorms into their convs and, with
    ``channels_last``, stores their weights and runs their layers in channels-last layout (their
    outputs come back in that layout; later layers accept it). The model computes the same
    function; it can no longer be trained (rebuild it for that). Works in place; returns ``model``.
    """
    backbones = [m for m in model.modules() if isinstance(m, ReXNet)]
    if not backbones:
        raise ValueError(f'optimize_for_inference found no ReXNet backbone in {type(model).__name__}')
    model.eval()
    for backbone in backbones:
        fold_batchnorm(backbone)
        if channels_last:
            backbone.to(memory_format=torch.channels_last)
        backbone.set_inference_mode(channels_last=channels_last)
    return model
