"""The head's strides against the features it receives: a run stops before its first step when they differ.

A backbone's ``out_indices`` copied from another backbone (ResNet's ``(0, 1, 2, 3)`` into a ReXNet
RetinaNet) still builds, trains and predicts when the channels match: the neck just receives
features at half the strides its head lays its anchors out for, and nothing says so. Here the
features are measured on one small zero image (one cheap forward pass) and compared with what the
heads expect: every ``prior_generator.strides`` (anchor and point generators: RetinaNet, SSD, RPN,
RTMDet, ...) and every RoI extractor's ``featmap_strides``.

``StrideCheckHook`` runs the check before a run (training, validation or testing); the project's
configs list it in ``default_hooks``, so MMDetection's own ``tools/train.py`` runs it too, and
:func:`add_stride_check` adds it to any config (``tools/train.py`` and ``tools/test.py`` do).
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from ..models.channels import out_channels, tap_specs
from ..models.rexnet import ReXNet

#: ReXNet's tap for each stride: the C2-C5 taps FPN configs use (the SSDLite taps 4 and 6 have the
#: same strides as 3 and 5).
REXNET_TAP_FOR_STRIDE = {2: 0, 4: 1, 8: 2, 16: 3, 32: 5}


class StrideMismatchError(ValueError):
    """A head expects features at other strides than the backbone and neck give it."""


def _stride_pairs(strides: Sequence) -> List[Tuple[float, float]]:
    """``(w, h)`` strides from a generator's ``[(8, 8), ...]`` or an extractor's ``[4, 8, ...]``."""
    return [(float(s[0]), float(s[1])) if isinstance(s, (tuple, list)) else (float(s), float(s)) for s in strides]


def expected_strides(model: nn.Module) -> Dict[str, List[Tuple[float, float]]]:
    """What each part of ``model`` expects of the feature levels it reads, by name:
    ``{'bbox_head.prior_generator': [(8, 8), (16, 16), ...], 'roi_head.bbox_roi_extractor': [...]}``."""
    found = {}
    for name, module in model.named_modules():
        generator = getattr(module, 'prior_generator', None)
        if generator is not None and getattr(generator, 'strides', None) is not None:
            found[f'{name}.prior_generator' if name else 'prior_generator'] = _stride_pairs(generator.strides)
        if getattr(module, 'featmap_strides', None) is not None and hasattr(module, 'roi_layers'):
            found[name or 'roi_extractor'] = _stride_pairs(module.featmap_strides)
    return found


def _probe_size(expected: Dict[str, List[Tuple[float, float]]]) -> int:
    """A square side that is a multiple of 32 and at least the largest expected stride (SSD's 320)."""
    largest = max(max(w, h) for pairs in expected.values() for w, h in pairs)
    return max(64, int(math.ceil(largest / 32)) * 32)


def _feature_sizes(feats) -> List[Tuple[int, int]]:
    return [(int(f.shape[-1]), int(f.shape[-2])) for f in feats]


def _fits(size: int, stride: float, measured: int) -> bool:
    # SSD's last strides (107, 160, 320 at 320 px) are nominal: a level fits when its size is within
    # one cell of the image size over the stride.
    return abs(measured - size / stride) < 1


def _advice(model: nn.Module, first_stride: float) -> str:
    """What to change: for a ReXNet backbone, the out_indices whose strides fit a head whose finest
    level has ``first_stride`` (the neck's ``start_level`` skips the backbone's first outputs; each
    further output doubles the stride)."""
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, ReXNet):
        return ('choose the backbone\'s out_indices so that its features have the strides the head expects '
                '(the neck keeps the backbone\'s strides and adds coarser levels)')
    current = tuple(t.stride for t in backbone.output_shape())
    start = int(getattr(getattr(model, 'neck', None), 'start_level', 0) or 0)
    wanted = tuple(first_stride * 2 ** (i - start) for i in range(len(current)))
    taps = ', '.join(f'{t.index} {t.name} /{t.stride}' for t in tap_specs(backbone.widen_factor, backbone.block_channels))
    if not all(w in REXNET_TAP_FOR_STRIDE for w in wanted):
        return f'choose out_indices whose strides fit the head; ReXNet\'s taps: {taps}'
    indices = tuple(REXNET_TAP_FOR_STRIDE[int(w)] for w in wanted)
    channels = out_channels(backbone.widen_factor, indices, backbone.block_channels)
    return (f'ReXNet\'s out_indices={tuple(backbone.out_indices)} give strides {current}; use '
            f'out_indices={indices} (strides {tuple(int(w) for w in wanted)}) and neck in_channels={channels} '
            f'(rexnet_mmdet.out_channels). ReXNet\'s taps: {taps}')


def check_feature_strides(model: nn.Module) -> Optional[Dict[str, List[float]]]:
    """Refuse a detector whose heads expect other strides than its features have.

    The features (``model.extract_feat``) are measured on one zero image whose side is a multiple
    of 32 and at least the largest expected stride, in eval mode and without gradients; the model's
    mode is restored. Returns the measured ``{'features': [...]}`` strides, or None for a model
    without ``extract_feat`` or without strides to check. Raises :class:`StrideMismatchError` with
    one line that names the head, both stride lists and, for ReXNet, the ``out_indices`` to use.
    """
    if is_model_wrapper(model):
        model = model.module
    expected = expected_strides(model)
    if not expected or not hasattr(model, 'extract_feat'):
        return None
    size = _probe_size(expected)
    param = next(model.parameters(), None)
    x = torch.zeros(1, 3, size, size, device=param.device if param is not None else 'cpu')
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            sizes = _feature_sizes(model.extract_feat(x))
    finally:
        model.train(training)
    measured = [round(size / w, 2) for w, _ in sizes]
    for name, pairs in expected.items():
        wrong = len(pairs) > len(sizes) or not all(
            _fits(size, sw, fw) and _fits(size, sh, fh) for (sw, sh), (fw, fh) in zip(pairs, sizes))
        if wrong:
            wanted = [int(w) if w == int(w) else w for w, _ in pairs]
            got = [int(m) if m == int(m) else m for m in measured]
            raise StrideMismatchError(
                f'{name} expects feature strides {wanted}, but the features it receives have strides {got} '
                f'(measured on a {size}x{size} image): {_advice(model, pairs[0][0])}')
    return dict(features=measured)


@HOOKS.register_module()
class StrideCheckHook(Hook):
    """Stop a run, before its first step, whose heads expect other strides than the features have
    (see :func:`check_feature_strides`)."""

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        check_feature_strides(runner.model)


def add_stride_check(cfg) -> None:
    """Make ``cfg`` check its detector's strides before a run (``default_hooks.stride_check``),
    unless it already does or turned the check off (``stride_check=None``)."""
    hooks = cfg.get('default_hooks')
    if hooks is None:
        cfg.default_hooks = dict(stride_check=dict(type='StrideCheckHook'))
    elif 'stride_check' not in hooks:
        hooks['stride_check'] = dict(type='StrideCheckHook')


__all__ = ['StrideMismatchError', 'expected_strides', 'check_feature_strides', 'StrideCheckHook', 'add_stride_check']
