"""ImageNet weights into a ReXNet backbone: the published files' URLs, and loading any known format."""
from typing import Dict

import torch

from ..width_names import format_width
from .families import CheckpointFamily, check_family, infer_family
from .formats import detect_format, to_own_format
from .safe_load import CheckpointError
from .weight_files import read_state_dict

_HUB = 'https://huggingface.co/timm/{}/resolve/main/model.safetensors'
#: Published ImageNet weights with a direct URL. ReXNet-v1 by width (timm's release of the official
#: models; same tensors, timm key format); ReXNet-R by timm's name (timm format; ``sw_in12k`` heads have
#: 11,821 classes, dropped when loading). The official ReXNet-lite files have no direct URL
#: (docs/weights.md#published-weights).
PRETRAINED_URLS: Dict[object, str] = {
    1.0: 'https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-rexnet/rexnetv1_100-1b4dddf4.pth',
    1.3: 'https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-rexnet/rexnetv1_130-590d768e.pth',
    1.5: 'https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-rexnet/rexnetv1_150-bd1a6aa8.pth',
    2.0: 'https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-rexnet/rexnetv1_200-8c0b7f2d.pth',
    3.0: _HUB.format('rexnet_300.nav_in1k'),
    'rexnetr_200.sw_in12k_ft_in1k': _HUB.format('rexnetr_200.sw_in12k_ft_in1k'),
    'rexnetr_300.sw_in12k_ft_in1k': _HUB.format('rexnetr_300.sw_in12k_ft_in1k'),
    'rexnetr_200.sw_in12k': _HUB.format('rexnetr_200.sw_in12k'),
    'rexnetr_300.sw_in12k': _HUB.format('rexnetr_300.sw_in12k'),
}


def load_backbone_weights(model: torch.nn.Module, path_or_url: str, strict: bool = True) -> Dict[str, list]:
    """Load ImageNet weights of any known format into a :class:`ReXNet` backbone.

    The classifier is dropped; layers past the backbone's last tap are ignored (they are not built).
    Every layer the backbone has must be in the checkpoint with the same shape: otherwise a
    :class:`CheckpointError` names the first mismatched layer and the width the checkpoint was made for.

    Returns a dict with the ``ignored`` checkpoint keys and the ``missing`` ``num_batches_tracked`` buffers.
    """
    raw = read_state_dict(path_or_url)
    fmt = detect_format(raw, str(path_or_url))
    state = to_own_format(raw, fmt)
    own = model.state_dict()
    model_family = CheckpointFamily(getattr(model, 'arch', 'v1'), getattr(model, 'widen_factor', 1.0),
                                    getattr(model, 'channel_divisor', 1))
    check_family(state, own, model_family, f'{path_or_url} ({fmt} format)')
    ckpt = infer_family(state)
    width_note = (f'the checkpoint was made for {ckpt}' if ckpt is not None
                  else 'the checkpoint follows no ReXNet channel rule')
    model_name = f'{model_family} backbone'
    missing = []
    for key, tensor in own.items():
        if key not in state:
            if key.endswith('num_batches_tracked'):
                missing.append(key)
                continue
            if strict:
                raise CheckpointError(
                    f'{path_or_url} ({fmt} format) has no weights for layer {key!r} of the '
                    f'{model_name}; {width_note}. Is it a complete ReXNet checkpoint?')
            continue
        if tuple(state[key].shape) != tuple(tensor.shape):
            hint = (', or add width_transfer=True to init_cfg to carry these weights to this width '
                    '(docs/weights.md#widths-without-published-weights-09-and-22)' if model_family.arch == 'v1'
                    and model_family.channel_divisor == 1 else '')
            raise CheckpointError(
                f'{path_or_url} ({fmt} format) does not fit the {model_name}: '
                f'first mismatched layer {key!r} has shape {tuple(state[key].shape)} in the checkpoint but '
                f'{tuple(tensor.shape)} in the model; {width_note}. Set widen_factor to the checkpoint\'s '
                f'width, use a checkpoint of widen_factor={format_width(model_family.widen_factor)}{hint}.')
    ignored = [k for k in state if k not in own]
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    try:
        from mmengine.logging import print_log
        print_log(f'Loaded ReXNet ImageNet weights from {path_or_url} ({fmt} format'
                  + (f', {ckpt}' if ckpt is not None else '') + ')', logger='current')
    except ImportError:
        pass
    return {'ignored': ignored, 'missing': missing}


__all__ = ['PRETRAINED_URLS', 'load_backbone_weights']
