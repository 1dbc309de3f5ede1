"""A built detector against its ReXNet backbone: the neck's channels, the width of the ImageNet file and the
input normalisation, each said in one line with the fix.

- **Channels** (:func:`check_neck_channels`): the neck's ``in_channels`` must be what the backbone returns
  (``rexnet_mmdet.out_channels``). A ResNet list kept in a hand-written config, or a width changed on the
  command line (``--cfg-options model.backbone.widen_factor=1.3``), would otherwise stop inside the first
  forward pass with a long error from a convolution. Stops: the model cannot run.
- **The ImageNet file's width** (:func:`weights_width_fix`): a published file of another width than
  ``widen_factor`` (the ×1.0 URL left in ``init_cfg`` after a width override) cannot load. Stops, with the
  file of this width, or ``width_transfer=True`` where none is published.
- **Input normalisation** (:func:`input_normalisation_advice`): ImageNet weights expect RGB normalised with
  ImageNet's mean and std. A recipe written for another backbone (caffe-style BGR, ``std=1``) still trains,
  from worse-matched features; the loaded weights were made for other inputs. Warns, only when ImageNet
  weights are loaded (a random start has no expectation), because the images' channel order cannot be
  known for certain from the config.
"""
import math
from typing import List, Optional, Sequence

import torch.nn as nn
from mmengine.model import is_model_wrapper

from ..models.channels import out_channels
from ..models.imagenet import IMAGENET_MEAN, IMAGENET_STD
from ..models.rexnet import ReXNet
from ..models.weights import PRETRAINED_URLS


class ChannelMismatchError(ValueError):
    """The neck expects other channels than the backbone returns."""


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if is_model_wrapper(model) else model


def _ints(value) -> Optional[List[int]]:
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, int) for v in value):
        return list(value)
    return None


def neck_in_channels(neck: nn.Module) -> Optional[List[int]]:
    """The channels a neck reads, from its ``in_channels`` (FPN, PAFPN, CSPNeXtPAFPN, YOLOXPAFPN ...) or its
    input convs (``ChannelMapper``); None where the neck does not say."""
    if isinstance(neck, nn.Sequential) and len(neck):
        neck = neck[0]
    found = _ints(getattr(neck, 'in_channels', None))
    if found is None and type(neck).__name__ == 'ChannelMapper':
        found = _ints([getattr(getattr(c, 'conv', c), 'in_channels', None) for c in neck.convs])
    return found


def _option_list(values: Sequence) -> str:
    return '[' + ','.join(str(v) for v in values) + ']'


def _rexnet(model: nn.Module) -> Optional[ReXNet]:
    backbone = getattr(_unwrap(model), 'backbone', None)
    return backbone if isinstance(backbone, ReXNet) else None


def weights_width_fix(backbone: ReXNet) -> Optional[str]:
    """The option that makes ``init_cfg`` load weights of the backbone's width, when it names a published
    ReXNet-v1 file of another width (and no ``width_transfer``); else None (a local file is checked by the
    loader when it is read)."""
    path = backbone._pretrained
    if not path or backbone._width_transfer or backbone.family != 'ReXNet-v1':
        return None
    width = next((w for w, url in PRETRAINED_URLS.items() if url == path and isinstance(w, float)), None)
    if width is None or math.isclose(width, backbone.widen_factor):
        return None
    own = PRETRAINED_URLS.get(backbone.widen_factor)
    if own:
        return f'model.backbone.init_cfg.checkpoint={own}'
    return 'model.backbone.init_cfg.width_transfer=True'


def _channel_options(model_cfg: Optional[dict], old: List[int], new: List[int]) -> List[str]:
    """``--cfg-options`` entries that put ``new`` wherever the model config repeats the neck's ``old`` input
    channels at the start of a list (SSD: the neck's ``out_channels`` and the head's ``in_channels`` too)."""
    found = []
    for part in ('neck', 'bbox_head'):
        section = (model_cfg or {}).get(part)
        for key in ('in_channels', 'out_channels') if isinstance(section, dict) else ():
            value = _ints(section.get(key))
            if value is not None and len(value) >= len(old) and value[:len(old)] == old:
                found.append(f"'model.{part}.{key}={_option_list(new + value[len(old):])}'")
    return found or [f"'model.neck.in_channels={_option_list(new)}'"]


def check_neck_channels(model: nn.Module, model_cfg: Optional[dict] = None) -> None:
    """Refuse a ReXNet detector whose neck expects other channels than the backbone returns, or whose
    ``init_cfg`` names the published ImageNet file of another width. One line, with both lists and the
    ``--cfg-options`` to add. ``model_cfg`` (the config's ``model``) gives the neck's ``in_channels`` where the
    built neck does not say them (``SSDNeck``), and the other lists that repeat them. Other backbones, and
    necks whose channels neither says, pass."""
    backbone = _rexnet(model)
    if backbone is None:
        return
    width = f'{backbone.widen_factor:g}'
    gives = list(backbone.out_channels)
    neck = getattr(_unwrap(model), 'neck', None)
    wanted = neck_in_channels(neck) if isinstance(neck, nn.Module) else None
    if wanted is None and isinstance((model_cfg or {}).get('neck'), dict):
        wanted = _ints(model_cfg['neck'].get('in_channels'))
    weights = weights_width_fix(backbone)
    fix = [weights] if weights else []
    if wanted is not None and wanted != gives:
        fix = _channel_options(model_cfg, wanted, gives) + fix
        raise ChannelMismatchError(
            f'the neck ({type(neck).__name__}) expects in_channels={wanted}, but ReXNet(widen_factor={width}, '
            f'out_indices={tuple(backbone.out_indices)}) returns {gives} '
            f'(rexnet_mmdet.out_channels({width}, {tuple(backbone.out_indices)})): add --cfg-options '
            f'{" ".join(fix)}, or write those numbers in the config')
    if weights:
        raise ChannelMismatchError(
            f'init_cfg loads the published ImageNet weights of another width ({backbone._pretrained}) into '
            f'ReXNet(widen_factor={width}): add --cfg-options {weights}')


def _values(tensor) -> Optional[List[float]]:
    return None if tensor is None else [round(float(v), 3) for v in tensor.flatten().tolist()]


def input_normalisation_advice(model: nn.Module) -> Optional[str]:
    """A warning when the ReXNet backbone starts from ImageNet weights and the detector's
    ``data_preprocessor`` does not give it RGB images normalised with ImageNet's mean and std; else None
    (also for a random start, another backbone, or a preprocessor that does not say what it does)."""
    backbone = _rexnet(model)
    preprocessor = getattr(_unwrap(model), 'data_preprocessor', None)
    if backbone is None or not backbone._pretrained or preprocessor is None \
            or not hasattr(preprocessor, '_enable_normalize'):
        return None
    rgb = bool(getattr(preprocessor, '_channel_conversion', False))
    normalised = bool(preprocessor._enable_normalize)
    mean, std = (_values(getattr(preprocessor, 'mean', None)), _values(getattr(preprocessor, 'std', None))) \
        if normalised else (None, None)
    if normalised and mean is None:
        return None
    close = normalised and len(mean) == 3 and len(std) == 3 and all(
        abs(a - b) <= 1.0 for a, b in zip(mean + std, IMAGENET_MEAN + IMAGENET_STD))
    if rgb and close:
        return None
    given = (f'mean={mean}, std={std}' if normalised else 'no mean/std (0-255 values)') + \
        f', bgr_to_rgb={rgb}'
    return (f'the backbone starts from ImageNet weights ({backbone._pretrained}), which expect RGB images '
            f'normalised with mean={list(IMAGENET_MEAN)}, std={list(IMAGENET_STD)}, but the data_preprocessor '
            f'gives {given}: add --cfg-options \'model.data_preprocessor.mean={_option_list(IMAGENET_MEAN)}\' '
            f'\'model.data_preprocessor.std={_option_list(IMAGENET_STD)}\' model.data_preprocessor.bgr_to_rgb=True '
            f'(or the same in the config), unless the images are already RGB')


__all__ = ['ChannelMismatchError', 'neck_in_channels', 'weights_width_fix', 'check_neck_channels',
           'input_normalisation_advice']
