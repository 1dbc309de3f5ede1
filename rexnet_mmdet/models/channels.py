"""The ReXNet-v1 channel rule: the one place where every channel number comes from.

Everything here is pure Python (no torch), so configs, tools and tests can ask for
channel counts without building a network.
"""
from dataclasses import dataclass
from numbers import Real
from typing import List, Optional, Sequence, Tuple

#: Blocks per stage and the stride of each stage's first block.
STAGE_DEPTHS: Tuple[int, ...] = (1, 2, 2, 3, 3, 5)
STAGE_STRIDES: Tuple[int, ...] = (1, 2, 2, 2, 1, 2)
NUM_BLOCKS = sum(STAGE_DEPTHS)  # 16
#: Stages (1-based) whose blocks carry squeeze-excitation: stages 3-6, i.e. blocks 3-15.
SE_STAGES = (3, 4, 5, 6)
SE_REDUCTION = 12
#: Channels added per block, accumulated as a float: 180 / 16 = 11.25.
CHANNEL_STEP = 180 / NUM_BLOCKS
BASE_STEM = 32
BASE_FIRST = 16
BASE_FINAL = 1280

#: Published widths (ImageNet and the paper's detectors).
PUBLISHED_WIDTHS = (0.9, 1.0, 1.3, 1.5, 2.0, 2.2, 3.0)


@dataclass(frozen=True)
class BlockSetting:
    """Settings of one inverted-bottleneck block (``LinearBottleneck``)."""
    index: int
    stage: int  # 1-based stage number
    in_channels: int
    out_channels: int
    expand_ratio: int
    stride: int
    use_se: bool

    @property
    def hidden_channels(self) -> int:
        return self.in_channels * self.expand_ratio

    @property
    def se_channels(self) -> int:
        return self.hidden_channels // SE_REDUCTION

    @property
    def use_residual(self) -> bool:
        # Partial residual: the input is added to the first ``in_channels`` outputs.
        return self.stride == 1 and self.in_channels <= self.out_channels


@dataclass(frozen=True)
class TapSpec:
    """One feature point the backbone can return."""
    index: int
    name: str
    block: int  # block whose output (or expansion, for ``exp``) is returned; 16 = final conv
    channels: int
    stride: int


def check_widen_factor(widen_factor) -> float:
    if isinstance(widen_factor, bool) or not isinstance(widen_factor, Real) \
            or not widen_factor > 0 or widen_factor != widen_factor or widen_factor == float('inf'):
        raise ValueError(
            f'widen_factor must be a positive finite number, got {widen_factor!r}; '
            f'the published widths are {", ".join(map(str, PUBLISHED_WIDTHS))}')
    return float(widen_factor)


def stem_channels(widen_factor: float) -> int:
    w = check_widen_factor(widen_factor)
    stem = BASE_STEM / w if w < 1 else BASE_STEM
    return int(round(stem * w))


def final_channels(widen_factor: float) -> int:
    """Channels of the final 1x1 conv: truncated, not rounded (``int(1280 * w)``)."""
    return int(BASE_FINAL * check_widen_factor(widen_factor))


def linear_block_channels(widen_factor: float) -> List[int]:
    """Output channels of the 16 blocks under the linear rule.

    Python's ``round`` rounds halves to even, as the official code does; rounding
    halves up gives other channels (38 -> 39 at block 2, width 1.0) and the
    published weights no longer load.
    """
    w = check_widen_factor(widen_factor)
    c = BASE_FIRST / w if w < 1 else BASE_FIRST
    outs = [int(round(c * w))]
    for _ in range(1, NUM_BLOCKS):
        c += CHANNEL_STEP
        outs.append(int(round(c * w)))
    return outs


def block_settings(widen_factor: float = 1.0,
                   block_channels: Optional[Sequence[int]] = None) -> List[BlockSetting]:
    """Per-block settings of ReXNet at ``widen_factor``.

    Args:
        widen_factor: width multiplier ``w``.
        block_channels: optional explicit output channels of the 16 blocks, to try
            another channel configuration (e.g. stage-wise, MobileNetV2-like).
            The stem keeps its channels from ``widen_factor``.
    """
    if block_channels is None:
        outs = linear_block_channels(widen_factor)
    else:
        outs = list(block_channels)
        if len(outs) != NUM_BLOCKS or not all(
                isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in outs):
            raise ValueError(f'block_channels must be {NUM_BLOCKS} positive integers '
                             f'(one output width per block), got {block_channels!r}')
    settings = []
    in_ch = stem_channels(widen_factor)
    index = 0
    for stage, (depth, stage_stride) in enumerate(zip(STAGE_DEPTHS, STAGE_STRIDES), start=1):
        for j in range(depth):
            settings.append(BlockSetting(
                index=index, stage=stage, in_channels=in_ch, out_channels=outs[index],
                expand_ratio=1 if index == 0 else 6, stride=stage_stride if j == 0 else 1,
                use_se=stage in SE_STAGES))
            in_ch = outs[index]
            index += 1
    return settings


#: (name, block, stride) of every tap, in the order the network computes them.
#: Tap 4 is block 11's 1x1 expansion (after its activation), before the stride-2
#: depthwise conv: the stride-16 expansion SSDLite uses.
_TAPS = (('block0', 0, 2), ('C2', 2, 4), ('C3', 4, 8), ('C4', 10, 16),
         ('exp16', 11, 16), ('C5', 15, 32), ('final_conv', 16, 32))
NUM_TAPS = len(_TAPS)
EXPANSION_TAP = 4
FINAL_TAP = 6


def tap_specs(widen_factor: float = 1.0,
              block_channels: Optional[Sequence[int]] = None) -> List[TapSpec]:
    """Name, channels and stride of every feature point, indexed like ``out_indices``."""
    blocks = block_settings(widen_factor, block_channels)
    specs = []
    for index, (name, block, stride) in enumerate(_TAPS):
        if index == EXPANSION_TAP:
            channels = blocks[block].hidden_channels
        elif index == FINAL_TAP:
            channels = final_channels(widen_factor)
        else:
            channels = blocks[block].out_channels
        specs.append(TapSpec(index, name, block, channels, stride))
    return specs


def out_channels(widen_factor: float = 1.0, out_indices: Sequence[int] = (1, 2, 3, 5),
                 block_channels: Optional[Sequence[int]] = None) -> List[int]:
    """Channels the backbone returns for ``out_indices``: what a neck's ``in_channels`` must be."""
    specs = tap_specs(widen_factor, block_channels)
    return [specs[i].channels for i in out_indices]
