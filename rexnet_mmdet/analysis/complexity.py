"""Parameters and FLOPs of ReXNet backbones, classifiers and detectors.

FLOPs are counted by tracing one forward pass with mmengine's ``FlopAnalyzer`` (the fvcore
counter): one multiply-add counts as one FLOP, the convention of the paper (ReXNet-1.0 = 0.40
GFLOPs at 224x224). Convolutions, linear layers and matrix products dominate; pooling,
upsampling and GroupNorm are counted by element; elementwise activations and additions are not
counted. BatchNorm is not counted by default (``count_norm=False``): at inference it folds into
the convolution before it, and the paper's numbers leave it out (ReXNet-1.0: 0.398 GFLOPs
without BN, 0.413 with it, paper 0.40).

Parameters are every parameter of the model, trainable or frozen.

For a detector the count covers what runs from the image tensor to the heads' raw outputs
(``mode='tensor'``): backbone, neck, dense heads and, for two-stage detectors, the RoI heads on
the proposals the RPN returns (post-processing such as NMS is not counted).
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from ..utils.build import build_detector, load_config


@dataclass
class Complexity:
    """Result of a count.

    Attributes:
        flops: multiply-adds of one forward pass.
        params: number of parameters.
        input_shape: shape of the input tensor, ``(N, C, H, W)``.
        by_module: FLOPs of each top-level submodule (e.g. backbone, neck, heads).
        params_by_module: parameters of each top-level submodule.
        unsupported_ops: operators the counter skipped, with how often they ran.
        notes: facts needed to read the numbers (input padding, proposals counted ...).
    """
    flops: int
    params: int
    input_shape: Tuple[int, ...]
    by_module: Dict[str, int] = field(default_factory=dict)
    params_by_module: Dict[str, int] = field(default_factory=dict)
    unsupported_ops: Dict[str, int] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    @property
    def gflops(self) -> float:
        return self.flops / 1e9

    @property
    def params_m(self) -> float:
        return self.params / 1e6


def count_parameters(model: nn.Module) -> int:
    """All parameters (trainable or not), each shared tensor once (mmengine's ``parameter_count``)."""
    from mmengine.analysis import parameter_count

    return int(parameter_count(model)[''])


def _no_flops(inputs, outputs) -> int:
    return 0


def count_complexity(model: nn.Module, inputs: Union[torch.Tensor, Tuple],
                     count_norm: bool = False) -> Complexity:
    """FLOPs (multiply-adds) and parameters of ``model(*inputs)``, by top-level submodule too.

    The model is put in eval mode (BN uses its running statistics, dropout is off).
    ``count_norm`` also counts BatchNorm (2 FLOPs per element), which folds into the
    preceding convolution at inference and is left out by default.
    """
    from mmengine.analysis import FlopAnalyzer

    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    model.eval()
    analyzer = FlopAnalyzer(model, inputs)
    if not count_norm:
        # A zero-count handle: mmengine 0.10's set_op_handle(name, None) keeps the default handle.
        analyzer.set_op_handle('aten::batch_norm', _no_flops)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    with torch.no_grad():
        total = int(analyzer.total())
        per_module = analyzer.by_module()
    children = [name for name, _ in model.named_children()]
    return Complexity(
        flops=total, params=count_parameters(model), input_shape=tuple(inputs[0].shape),
        by_module={name: int(per_module.get(name, 0)) for name in children},
        params_by_module={name: count_parameters(getattr(model, name)) for name in children},
        unsupported_ops=dict(analyzer.unsupported_ops()))


class ReXNetClassifier(nn.Module):
    """ReXNet backbone with the ImageNet head, for counting: final 1x1 conv (inside the
    backbone, tap 6), global average pool, dropout and a ``num_classes``-way linear layer.

    Args:
        widen_factor: width multiplier.
        num_classes: classes of the head.
        block_channels: optional per-block channels instead of the linear rule.

    Input ``(N, 3, H, W)``, output ``(N, num_classes)`` logits.
    """

    def __init__(self, widen_factor: float = 1.0, num_classes: int = 1000,
                 block_channels: Optional[Sequence[int]] = None):
        super().__init__()
        from mmdet.registry import MODELS

        from ..models import ReXNet  # noqa: F401  (registers type='ReXNet')
        self.backbone = MODELS.build(dict(type='ReXNet', widen_factor=widen_factor, out_indices=(6,),
                                          block_channels=block_channels))
        channels = self.backbone.out_channels[-1]
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.backbone(x)[-1]
        return self.fc(self.dropout(self.pool(feat).flatten(1)))


def _size_hw(input_size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """``int`` -> square; ``(W, H)`` -> ``(H, W)``: sizes are given width first, as mmdet's scales."""
    if isinstance(input_size, int):
        sizes = [input_size]
    else:
        sizes = list(input_size)
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) != 2 or not all(isinstance(s, int) and s > 0 for s in sizes):
        raise ValueError(f'input size must be one positive int (square) or WIDTH HEIGHT, got {input_size!r}')
    return sizes[1], sizes[0]


def classifier_complexity(widen_factor: float = 1.0, input_size: Union[int, Sequence[int]] = 224,
                          block_channels: Optional[Sequence[int]] = None,
                          num_classes: int = 1000, count_norm: bool = False) -> Complexity:
    """Complexity of the ImageNet classifier (backbone + head), as the paper's Table 5 counts it."""
    h, w = _size_hw(input_size)
    model = ReXNetClassifier(widen_factor, num_classes, block_channels)
    return count_complexity(model, torch.zeros(1, 3, h, w), count_norm)


def backbone_complexity(widen_factor: float = 1.0, input_size: Union[int, Sequence[int]] = 224,
                        out_indices: Sequence[int] = (6,),
                        block_channels: Optional[Sequence[int]] = None,
                        count_norm: bool = False) -> Complexity:
    """Complexity of the ReXNet backbone alone, built up to the last of ``out_indices``."""
    from mmdet.registry import MODELS

    from ..models import ReXNet  # noqa: F401  (registers type='ReXNet')
    h, w = _size_hw(input_size)
    model = MODELS.build(dict(type='ReXNet', widen_factor=widen_factor, out_indices=tuple(out_indices),
                              block_channels=block_channels))
    wrapper = nn.Sequential()
    wrapper.add_module('backbone', model)
    return count_complexity(wrapper, torch.zeros(1, 3, h, w), count_norm)


# ----------------------------------------------------------------------------- detectors
def config_test_scale(cfg: Any) -> Optional[Tuple[int, int]]:
    """``(W, H)`` of the test pipeline's ``Resize`` (the size the detector sees), if any."""
    pipeline = cfg.get('test_pipeline') or cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline', [])
    for step in pipeline or []:
        if step.get('type') == 'Resize' and 'scale' in step:
            scale = step['scale']
            return int(scale[0]), int(scale[1])
    return None


class _TensorForward(nn.Module):
    """Calls ``detector`` in ``mode='tensor'`` with fixed data samples (traceable)."""

    def __init__(self, detector: nn.Module, samples: list):
        super().__init__()
        # Register the detector's parts as children so the counter reports them by name.
        for name, child in detector.named_children():
            if name != 'data_preprocessor':
                self.add_module(name, child)
        self._detector = [detector]  # a list: not a registered child (no double counting)
        self._samples = samples

    def forward(self, x: torch.Tensor):
        return self._detector[0](x, self._samples, mode='tensor')


def _image_and_padded_size(cfg: Any, input_size, pad: bool) -> Tuple[int, int, int, int, int]:
    """``(h, w, padded h, padded w, pad_size_divisor)`` of the image the detector sees."""
    if input_size is None:
        input_size = config_test_scale(cfg)
        if input_size is None:
            raise ValueError('the config has no Resize in its test pipeline; give the input size '
                             '(--shape WIDTH HEIGHT)')
    h, w = _size_hw(input_size)
    divisor = int(cfg.model.get('data_preprocessor', {}).get('pad_size_divisor', 1) or 1) if pad else 1
    return h, w, -(-h // divisor) * divisor, -(-w // divisor) * divisor, divisor


def _count_with_rois(model: nn.Module, wrapper: nn.Module, inputs: torch.Tensor,
                     count_norm: bool) -> Tuple[Complexity, Dict[str, int]]:
    """:func:`count_complexity` of ``wrapper``, and how many RoIs ``model``'s RoI heads ran on
    (their FLOPs scale with it), by part (``'bbox'``, ``'mask'``)."""
    rois: Dict[str, int] = {}
    hooks = []
    roi_head = getattr(model, 'roi_head', None)
    for part in ('bbox', 'mask'):
        extractor = getattr(roi_head, f'{part}_roi_extractor', None)
        if extractor is not None:
            hooks.append(extractor.register_forward_hook(
                lambda m, args, out, part=part: rois.__setitem__(part, int(args[1].shape[0]))))
    try:
        return count_complexity(wrapper, inputs, count_norm), rois
    finally:
        for hook in hooks:
            hook.remove()


def detector_complexity(config: Union[str, Any], input_size: Optional[Union[int, Sequence[int]]] = None,
                        pad: bool = True, cfg_options: Optional[dict] = None,
                        count_norm: bool = False) -> Complexity:
    """Complexity of a detector config on one dummy image.

    Args:
        config: path of a config file (or ``'mmdet::...'`` package config), or an
            ``mmengine.Config``.
        input_size: ``(W, H)`` or one int (square) of the image; ``None`` takes the test
            pipeline's ``Resize`` scale.
        pad: pad the image like the config's data preprocessor (``pad_size_divisor``, e.g. 32 for
            the R-CNNs: 1200x800 becomes 1216x800), as the detector sees it at test time.
        count_norm: also count BatchNorm (see :func:`count_complexity`).
    """
    from mmdet.structures import DetDataSample

    if isinstance(config, str):
        cfg = load_config(config, cfg_options)
    else:
        cfg = config
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
    h, w, ph, pw, divisor = _image_and_padded_size(cfg, input_size, pad)
    # Weights do not change the count: no init_weights, no calibration.
    model = build_detector(cfg, init_weights=False, calibration_size=None)
    model.eval()

    meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(ph, pw), batch_input_shape=(ph, pw),
                scale_factor=(1.0, 1.0), img_id=0)
    wrapper = _TensorForward(model, [DetDataSample(metainfo=meta)])
    result, rois = _count_with_rois(model, wrapper, torch.zeros(1, 3, ph, pw), count_norm)
    result.params = count_parameters(model)
    if (ph, pw) != (h, w):
        result.notes.append(f'input {w}x{h} padded to {pw}x{ph} (W x H, pad_size_divisor={divisor})')
    else:
        result.notes.append(f'input {pw}x{ph} (W x H)')
    if 'bbox' in rois:
        result.notes.append(f'box head on {rois["bbox"]} proposals')
    if 'mask' in rois:
        result.notes.append(f'mask head on {rois["mask"]} RoIs')
    return result


__all__ = ['Complexity', 'count_parameters', 'count_complexity', 'ReXNetClassifier', 'classifier_complexity',
           'backbone_complexity', 'config_test_scale', 'detector_complexity']
