"""Channel configurations to compare ReXNet's linear rule against (paper §4, Figure 2, Table 1).

:func:`stagewise_block_channels` gives a MobileNetV2-like, stage-wise configuration (one channel
count per stage) with the same multiply-adds as the linear configuration of the same width, so
that the two can be built and compared at equal cost::

    from rexnet_mmdet.analysis.channel_configs import stagewise_block_channels
    backbone = dict(type='ReXNet', widen_factor=1.0, block_channels=stagewise_block_channels(1.0))

Everything here is pure Python: the multiply-adds are counted from the block settings.
"""
from typing import List, Optional, Sequence, Tuple

from rexnet_mmdet.models.width_names import format_width
from rexnet_mmdet.models.channels import (STAGE_DEPTHS, BlockSetting, block_settings,
                                          check_widen_factor, final_channels,
                                          linear_block_channels, stem_channels)

#: MobileNetV2's output channels of its first six stages (Table 1: 16-24-32-64-96-160), the
#: stage-wise convention. ReXNet's six stages have the same strides (1, 2, 2, 2, 1, 2).
MOBILENETV2_STAGE_CHANNELS: Tuple[int, ...] = (16, 24, 32, 64, 96, 160)


def _conv_out(size: int, stride: int) -> int:
    # 3x3 convs with padding 1 (and 1x1 convs, stride 1): ceil(size / stride).
    return -(-size // stride)


def backbone_macs(widen_factor: float = 1.0, block_channels: Optional[Sequence[int]] = None,
                  input_size: Tuple[int, int] = (224, 224), final_conv: bool = True,
                  num_classes: int = 0) -> int:
    """Multiply-adds of ReXNet's convolutions and linear layers at ``input_size`` (H, W).

    Counts the stem, every block (1x1 expansion, depthwise 3x3, squeeze-excite FCs, 1x1
    projection), the final 1x1 conv if ``final_conv`` and a ``num_classes``-way classifier
    if ``num_classes > 0``. Normalisation, activations, pooling and the residual additions
    are left out: they add well under 1% (the complexity counter counts them; see
    :mod:`rexnet_mmdet.analysis.complexity`).
    """
    h, w = input_size
    h, w = _conv_out(h, 2), _conv_out(w, 2)
    stem = stem_channels(widen_factor)
    macs = h * w * 3 * 9 * stem
    settings: List[BlockSetting] = block_settings(widen_factor, block_channels)
    for s in settings:
        hidden = s.hidden_channels
        if s.expand_ratio != 1:
            macs += h * w * s.in_channels * hidden
        h, w = _conv_out(h, s.stride), _conv_out(w, s.stride)
        macs += h * w * hidden * 9
        if s.use_se:
            macs += 2 * hidden * s.se_channels
        macs += h * w * hidden * s.out_channels
    if final_conv:
        final = final_channels(widen_factor)
        macs += h * w * settings[-1].out_channels * final
        if num_classes > 0:
            macs += final * num_classes
    return macs


def stagewise_block_channels(widen_factor: float = 1.0, input_size: Tuple[int, int] = (224, 224),
                             stage_channels: Sequence[int] = MOBILENETV2_STAGE_CHANNELS
                             ) -> List[int]:
    """A stage-wise (MobileNetV2-like) configuration of the 16 ReXNet blocks at the linear rule's cost.

    Every block of a stage gets the same output channels; the stages follow
    ``stage_channels`` (MobileNetV2's 16-24-32-64-96-160) times one scale factor, chosen so that
    the backbone's multiply-adds up to the final conv, at ``input_size``, are as close as the
    rounding allows to those of ``linear_block_channels(widen_factor)`` (within about 1%).
    Block 0 (stage 1) keeps the linear rule's channels, so both start from the same stem and
    first block. Pass the result as ``block_channels`` to ``ReXNet``.
    """
    w = check_widen_factor(widen_factor)
    if len(stage_channels) != len(STAGE_DEPTHS) or any(
            not isinstance(c, (int, float)) or c <= 0 for c in stage_channels):
        raise ValueError(f'stage_channels must be {len(STAGE_DEPTHS)} positive numbers (one per '
                         f'stage), got {list(stage_channels)!r}')
    pattern = tuple(stage_channels)

    def config(scale: float) -> List[int]:
        first = linear_block_channels(w)[0]
        channels = [first]
        for depth, base in zip(STAGE_DEPTHS[1:], pattern[1:]):
            channels += [max(1, int(round(base * scale)))] * depth
        return channels

    def macs(scale: float) -> int:
        return backbone_macs(w, config(scale), input_size)

    target = backbone_macs(w, None, input_size)
    lo, hi = 1e-3, 1.0
    while macs(hi) < target:  # grow until the stage-wise net is at least as costly
        hi *= 2
        if hi > 1e4:
            raise ValueError(f'no stage-wise configuration reaches the cost of width {format_width(w)}')
    for _ in range(60):  # bisection on the (step-wise increasing) cost
        mid = (lo + hi) / 2
        if macs(mid) < target:
            lo = mid
        else:
            hi = mid
    best = min((config(lo), config(hi)), key=lambda c: abs(backbone_macs(w, c, input_size) - target))
    return best
