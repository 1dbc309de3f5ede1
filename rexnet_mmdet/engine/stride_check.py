"""The head's strides against the features it receives: a run stops before its first step when they differ.

A backbone's ``out_indices`` copied from another backbone (ResNet's ``(0, 1, 2, 3)`` into a ReXNet
RetinaNet) still builds, trains and predicts when the channels match: the neck just receives
features at half the strides its head lays its anchors out for, and nothing says so. Here the
features are measured on one small zero image (one cheap forward pass) and compared with what the
detector expects:

- every ``prior_generator.strides`` (anchor and point generators: RetinaNet, FCOS, ATSS, SSD, RPN,
  RTMDet, YOLOX, YOLOF ...), SSD's nominal last strides within one cell;
- every RoI extractor's ``featmap_strides`` (Faster / Mask / Cascade R-CNN, HTC, Sparse R-CNN ...);
- a pixel decoder's ``strides`` (Mask2Former, MaskFormer), against the backbone's outputs;
- DETR-like detectors (DETR, Deformable DETR, DINO ...: ``DetectionTransformer``), whose positional
  encodings and ``ChannelMapper`` record no stride: the backbone's deepest output must be at stride
  ``detr_stride`` (32, what their ResNet recipes give), unless the guard is told otherwise.

Heads that record no stride (CenterNet, CornerNet, SOLO's nominal grid strides) are not checked: a check
that cannot decide says nothing. :class:`~rexnet_mmdet.engine.guard_hook.ReXNetGuardHook` runs this
before a run.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model import is_model_wrapper

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


def _pixel_decoder_strides(model: nn.Module) -> Dict[str, List[Tuple[float, float]]]:
    """A pixel decoder's ``strides`` (MSDeformAttnPixelDecoder: the backbone outputs it reads)."""
    return {name: _stride_pairs(m.strides) for name, m in model.named_modules()
            if type(m).__name__.endswith('PixelDecoder') and isinstance(getattr(m, 'strides', None), (list, tuple))}


def is_detr_like(model: nn.Module) -> bool:
    """DETR, Deformable DETR, DINO, Conditional / DAB-DETR ...: MMDetection's ``DetectionTransformer``."""
    try:
        from mmdet.models.detectors.base_detr import DetectionTransformer
    except ImportError:  # pragma: no cover - an MMDetection without DETRs
        return False
    return isinstance(model, DetectionTransformer)


def _probe_size(expected: Dict[str, List[Tuple[float, float]]]) -> int:
    """A square side that is a multiple of 32 and at least the largest expected stride (SSD's 320)."""
    largest = max([max(w, h) for pairs in expected.values() for w, h in pairs] + [64])
    return max(64, int(math.ceil(largest / 32)) * 32)


def _feature_sizes(feats) -> List[Tuple[int, int]]:
    return [(int(f.shape[-1]), int(f.shape[-2])) for f in feats]


def _fits(size: int, stride: float, measured: int) -> bool:
    # SSD's last strides (107, 160, 320 at 320 px) are nominal: a level fits when its size is within
    # one cell of the image size over the stride.
    return abs(measured - size / stride) < 1


def _number(x: float):
    return int(x) if x == int(x) else x


def _advice(model: nn.Module, first_stride: float, start: Optional[int] = None) -> str:
    """What to change: for a ReXNet backbone, the out_indices whose strides fit a head whose finest
    level has ``first_stride`` (the neck's ``start_level`` skips the backbone's first outputs; each
    further output doubles the stride)."""
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, ReXNet):
        return ('choose the backbone\'s out_indices so that its features have the strides the head expects '
                '(the neck keeps the backbone\'s strides and adds coarser levels)')
    current = tuple(t.stride for t in backbone.output_shape())
    if start is None:
        start = int(getattr(getattr(model, 'neck', None), 'start_level', 0) or 0)
    wanted = tuple(first_stride * 2 ** (i - start) for i in range(len(current)))
    taps = ', '.join(f'{t.index} {t.name} /{t.stride}' for t in tap_specs(backbone.widen_factor, backbone.block_channels,
                                                                         backbone.arch, backbone.channel_divisor))
    if not all(w in REXNET_TAP_FOR_STRIDE for w in wanted):
        return f'choose out_indices whose strides fit the head; ReXNet\'s taps: {taps}'
    indices = tuple(REXNET_TAP_FOR_STRIDE[int(w)] for w in wanted)
    channels = out_channels(backbone.widen_factor, indices, backbone.block_channels, backbone.arch,
                            backbone.channel_divisor)
    return (f'ReXNet\'s out_indices={tuple(backbone.out_indices)} give strides {current}; use '
            f'out_indices={indices} (strides {tuple(int(w) for w in wanted)}) and {_channel_reader(model)}={channels} '
            f'(rexnet_mmdet.out_channels). ReXNet\'s taps: {taps}')


def _channel_reader(model: nn.Module) -> str:
    """What reads the backbone's channels: the neck, else the head that builds a pixel decoder
    (Mask2Former's ``panoptic_head``, whose ``in_channels`` its pixel decoder takes)."""
    if getattr(model, 'neck', None) is None:
        decoders = [name for name, m in model.named_modules()
                    if type(m).__name__.endswith('PixelDecoder') and '.' in name]
        if decoders:
            return f'model.{decoders[0].rsplit(".", 1)[0]}.in_channels'
    return 'neck in_channels'


def _measure(model: nn.Module, size: int) -> Tuple[List[float], List[float]]:
    """Strides of the backbone's outputs and of the features the heads read (``extract_feat``), on one
    zero image, in eval mode and without gradients; the model's mode is restored."""
    param = next(model.parameters(), None)
    x = torch.zeros(1, 3, size, size, device=param.device if param is not None else 'cpu')
    captured = []
    handle = model.backbone.register_forward_hook(lambda module, args, out: captured.append(out)) \
        if isinstance(getattr(model, 'backbone', None), nn.Module) else None
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            feats = model.extract_feat(x)
    finally:
        model.train(training)
        if handle is not None:
            handle.remove()
    feats = feats if isinstance(feats, (list, tuple)) else [feats]
    outs = captured[0] if captured else feats
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return ([round(size / w, 2) for w, _ in _feature_sizes(outs)],
            [round(size / w, 2) for w, _ in _feature_sizes(feats)])


def _mismatch(name: str, wanted: Sequence[float], got: Sequence[float], what: str, size: int, advice: str):
    return StrideMismatchError(
        f'{name} expects {what} strides {[_number(w) for w in wanted]}, but the {what}s it receives have strides '
        f'{[_number(g) for g in got]} (measured on a {size}x{size} image): {advice}')


def check_feature_strides(model: nn.Module, detr_stride: Optional[int] = 32) -> Optional[Dict[str, List[float]]]:
    """Refuse a detector whose heads expect other strides than its features have.

    The features (``model.extract_feat``, and the backbone's outputs within it) are measured on one zero
    image whose side is a multiple of 32 and at least the largest expected stride. ``detr_stride``: the
    stride a DETR-like detector's deepest backbone output must have (None: not checked). Returns the
    measured ``{'backbone': [...], 'features': [...]}`` strides, or None for a model without
    ``extract_feat`` or without strides to check. Raises :class:`StrideMismatchError` with one line that
    names the part, both stride lists and, for ReXNet, the ``out_indices`` to use.
    """
    if is_model_wrapper(model):
        model = model.module
    expected, decoders = expected_strides(model), _pixel_decoder_strides(model)
    detr = detr_stride is not None and is_detr_like(model)
    if not (expected or decoders or detr) or not hasattr(model, 'extract_feat'):
        return None
    size = _probe_size({**expected, **decoders, 'detr': [(float(detr_stride or 32),) * 2]})
    backbone_strides, measured = _measure(model, size)
    sizes = [size / m for m in measured]
    for name, pairs in expected.items():
        wrong = len(pairs) > len(sizes) or not all(
            _fits(size, sw, fw) and _fits(size, sh, fw) for (sw, sh), fw in zip(pairs, sizes))
        if wrong:
            raise _mismatch(name, [w for w, _ in pairs], measured, 'feature', size, _advice(model, pairs[0][0]))
    for name, pairs in decoders.items():
        if [w for w, _ in pairs] != backbone_strides[-len(pairs):] or len(pairs) > len(backbone_strides):
            raise _mismatch(name, [w for w, _ in pairs], backbone_strides, 'backbone output', size,
                            _advice(model, pairs[0][0], start=0))
    if detr and backbone_strides and backbone_strides[-1] != detr_stride:
        first = detr_stride / 2 ** (len(backbone_strides) - 1)
        raise StrideMismatchError(
            f'{type(model).__name__} (DETR-like) expects its backbone\'s deepest output at stride {detr_stride}, '
            f'but the backbone\'s outputs have strides {[_number(s) for s in backbone_strides]} (measured on a '
            f'{size}x{size} image): {_advice(model, first, start=0)}. If this detector is meant for other '
            f'strides, say so with dict(type=\'ReXNetGuardHook\', detr_stride=N)')
    return dict(backbone=backbone_strides, features=measured)


__all__ = ['StrideMismatchError', 'expected_strides', 'is_detr_like', 'check_feature_strides']
