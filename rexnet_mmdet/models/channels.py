"""The ReXNet channel rules: the one place where every channel number comes from.

Three families share one block structure (16 inverted bottlenecks, stage depths 1, 2, 2, 3, 3, 5)
and differ only in how channels are rounded and which activations and squeeze-excitation they use:

* **ReXNet-v1** (``arch='v1'``, ``channel_divisor=1``): the paper's model, :func:`linear_block_channels`.
* **ReXNet-R** (``arch='v1'``, ``channel_divisor=8`` or ``16``): timm's ``rexnetr_*``, v1 with every
  channel count rounded to a multiple of the divisor, :func:`rounded_block_channels`.
* **ReXNet-lite** (``arch='lite'``): the official ``rexnetv1_lite``, no squeeze-excitation, ReLU6
  throughout, channels in multiples of 8, :func:`lite_block_channels`.

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
#: Stages (1-based) whose blocks carry squeeze-excitation (v1 and R): stages 3-6, i.e. blocks 3-15.
SE_STAGES = (3, 4, 5, 6)
SE_REDUCTION = 12
#: Channels added per block, accumulated as a float: 180 / 16 = 11.25 (v1, R); 164 / 15 (lite).
CHANNEL_STEP = 180 / NUM_BLOCKS
LITE_CHANNEL_STEP = 164 / (NUM_BLOCKS - 1)
BASE_STEM = 32
BASE_FIRST = 16
BASE_FINAL = 1280
#: ReXNet-lite rounds every channel count to a multiple of this.
LITE_DIVISOR = 8

#: Architectures: 'v1' (ReXNet-v1, and ReXNet-R with channel_divisor > 1) and 'lite'.
ARCHS = ('v1', 'lite')
#: Published widths (ImageNet and the paper's detectors).
PUBLISHED_WIDTHS = (0.9, 1.0, 1.3, 1.5, 2.0, 2.2, 3.0)
#: Published ReXNet-lite multipliers and ReXNet-R (width, channel_divisor) pairs (timm's rexnetr_*).
PUBLISHED_LITE_WIDTHS = (1.0, 1.3, 1.5, 2.0)
PUBLISHED_R_MODELS = ((1.0, 8), (1.3, 8), (1.5, 8), (2.0, 8), (3.0, 16))


@dataclass(frozen=True)
class BlockSetting:
    """Settings of one inverted-bottleneck block (``LinearBottleneck``).

    ``hidden_channels`` is the expanded width (``in_channels * expand_ratio``, rounded for ReXNet-R),
    ``se_channels`` the squeeze-excitation width (0 without SE), ``activation`` the one after the
    1x1 expansion (``'SiLU'`` in v1 and R, ``'ReLU6'`` in lite; the depthwise conv always has ReLU6).
    """
    index: int
    stage: int  # 1-based stage number
    in_channels: int
    out_channels: int
    expand_ratio: int
    stride: int
    use_se: bool
    hidden_channels: int
    se_channels: int
    activation: str = 'SiLU'

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


# ----------------------------------------------------------------- arguments
def check_widen_factor(widen_factor) -> float:
    if isinstance(widen_factor, bool) or not isinstance(widen_factor, Real) \
            or not widen_factor > 0 or widen_factor != widen_factor or widen_factor == float('inf'):
        raise ValueError(
            f'widen_factor must be a positive finite number, got {widen_factor!r}; '
            f'the published widths are {", ".join(map(str, PUBLISHED_WIDTHS))} (ReXNet-lite: '
            f'{", ".join(map(str, PUBLISHED_LITE_WIDTHS))})')
    return float(widen_factor)


def check_family(arch: str = 'v1', channel_divisor: Optional[int] = None) -> Tuple[str, int]:
    """``(arch, channel_divisor)`` checked, with the divisor resolved (v1: 1, lite: 8 when not given)."""
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(map(repr, ARCHS))} ('v1' with channel_divisor=8 or 16 "
                         f"is ReXNet-R), got {arch!r}")
    if arch == 'lite':
        if channel_divisor not in (None, LITE_DIVISOR):
            raise ValueError(f'channel_divisor={channel_divisor!r} does not apply to ReXNet-lite: its rule rounds '
                             f'every channel to a multiple of {LITE_DIVISOR}; leave channel_divisor unset')
        return arch, LITE_DIVISOR
    if channel_divisor is None:
        return arch, 1
    if isinstance(channel_divisor, bool) or not isinstance(channel_divisor, int) or channel_divisor < 1:
        raise ValueError(f'channel_divisor must be a positive int (1 ReXNet-v1; 8 ReXNet-R as timm\'s '
                         f'rexnetr_100/130/150/200, 16 as rexnetr_300), got {channel_divisor!r}')
    return arch, channel_divisor


def family_name(arch: str = 'v1', channel_divisor: Optional[int] = None) -> str:
    """'ReXNet-v1', 'ReXNet-R (channel_divisor=8)' or 'ReXNet-lite'."""
    arch, divisor = check_family(arch, channel_divisor)
    if arch == 'lite':
        return 'ReXNet-lite'
    return 'ReXNet-v1' if divisor == 1 else f'ReXNet-R (channel_divisor={divisor})'


def check_out_indices(out_indices) -> Tuple[int, ...]:
    """``out_indices`` as a tuple, or a ``ValueError`` naming the allowed feature points."""
    allowed = f'integers in [0, {NUM_TAPS - 1}] (0 block0 /2, 1 C2 /4, 2 C3 /8, 3 C4 /16, ' \
              f'4 stride-16 expansion, 5 C5 /32, 6 final conv /32)'
    if isinstance(out_indices, (int, str)) or not isinstance(out_indices, Sequence):
        raise ValueError(f'out_indices must be a sequence of {allowed}, got {out_indices!r}')
    indices = tuple(out_indices)
    if not indices:
        raise ValueError(f'out_indices is empty; give one or more {allowed}')
    bad = [i for i in indices if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < NUM_TAPS]
    if bad:
        raise ValueError(f'out_indices {indices} has {bad} out of range; allowed: {allowed}')
    if len(set(indices)) != len(indices):
        raise ValueError(f'out_indices {indices} repeats an index; each tap may appear once')
    if list(indices) != sorted(indices):
        raise ValueError(f'out_indices {indices} must be in increasing order (the order the '
                         f'network computes them), e.g. {tuple(sorted(indices))}')
    return indices


# ----------------------------------------------------------------- the rules
def make_divisible(value: float, divisor: int) -> int:
    """Nearest multiple of ``divisor`` (halves up), at least ``divisor``, never below 90% of ``value``:
    the rounding of timm's ``rexnetr_*`` and of the official ReXNet-lite."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _start(base: float, w: float) -> float:
    # Below width 1 the stem and the first block keep their channels.
    return base / w if w < 1 else base


def linear_block_channels(widen_factor: float) -> List[int]:
    """ReXNet-v1: output channels of the 16 blocks under the linear rule.

    Python's ``round`` rounds halves to even, as the official code does; rounding
    halves up gives other channels (38 -> 39 at block 2, width 1.0) and the
    published weights no longer load.
    """
    w = check_widen_factor(widen_factor)
    c = _start(BASE_FIRST, w)
    outs = [int(round(c * w))]
    for _ in range(1, NUM_BLOCKS):
        c += CHANNEL_STEP
        outs.append(int(round(c * w)))
    return outs


def rounded_block_channels(widen_factor: float, channel_divisor: int) -> List[int]:
    """ReXNet-R (timm's ``rexnetr_*``): the v1 rule with each block's output made divisible."""
    _, divisor = check_family('v1', channel_divisor)
    return [make_divisible(c, divisor) for c in linear_block_channels(widen_factor)]


def lite_block_channels(widen_factor: float) -> List[int]:
    """ReXNet-lite: ``16 * m`` growing by ``164 / 15 * m`` per block, each rounded half to even and
    then to a multiple of 8 (the official ``_make_divisible(int(round(x * m)), 8)``)."""
    m = check_widen_factor(widen_factor)
    c = _start(BASE_FIRST, m)
    outs = [make_divisible(int(round(c * m)), LITE_DIVISOR)]
    for _ in range(1, NUM_BLOCKS):
        c += LITE_CHANNEL_STEP
        outs.append(make_divisible(int(round(c * m)), LITE_DIVISOR))
    return outs


def stem_channels(widen_factor: float, arch: str = 'v1', channel_divisor: Optional[int] = None) -> int:
    w = check_widen_factor(widen_factor)
    arch, divisor = check_family(arch, channel_divisor)
    stem = int(round(_start(BASE_STEM, w) * w))
    return stem if divisor == 1 else make_divisible(stem, divisor)


def final_channels(widen_factor: float, arch: str = 'v1', channel_divisor: Optional[int] = None) -> int:
    """Channels of the final 1x1 conv: ``int(1280 * w)`` (v1: truncated, not rounded), made divisible
    (R: ``1280 * w`` rounded to the divisor), ``int(1280 * m)`` above 1 and 1280 otherwise (lite)."""
    w = check_widen_factor(widen_factor)
    arch, divisor = check_family(arch, channel_divisor)
    if arch == 'lite':
        return int(BASE_FINAL * w) if w > 1 else BASE_FINAL
    return int(BASE_FINAL * w) if divisor == 1 else make_divisible(BASE_FINAL * w, divisor)


def family_block_channels(widen_factor: float, arch: str = 'v1', channel_divisor: Optional[int] = None) -> List[int]:
    """Output channels of the 16 blocks of any family."""
    arch, divisor = check_family(arch, channel_divisor)
    if arch == 'lite':
        return lite_block_channels(widen_factor)
    return linear_block_channels(widen_factor) if divisor == 1 else rounded_block_channels(widen_factor, divisor)


def activation(arch: str = 'v1') -> str:
    """The activation after the stem, every 1x1 expansion and the final conv."""
    return 'ReLU6' if arch == 'lite' else 'SiLU'


def block_settings(widen_factor: float = 1.0,
                   block_channels: Optional[Sequence[int]] = None,
                   arch: str = 'v1', channel_divisor: Optional[int] = None) -> List[BlockSetting]:
    """Per-block settings of ReXNet at ``widen_factor``.

    Args:
        widen_factor: width multiplier ``w``.
        block_channels: optional explicit output channels of the 16 blocks, to try
            another channel configuration (e.g. stage-wise, MobileNetV2-like).
            The stem keeps its channels from ``widen_factor``. ReXNet-v1 only.
        arch, channel_divisor: the family (module docstring).
    """
    arch, divisor = check_family(arch, channel_divisor)
    if block_channels is None:
        outs = family_block_channels(widen_factor, arch, divisor)
    else:
        if (arch, divisor) != ('v1', 1):
            raise ValueError(f'block_channels does not apply to {family_name(arch, divisor)}: its channels come '
                             f'from its own rule; use block_channels with ReXNet-v1 (arch=\'v1\', channel_divisor=1)')
        outs = list(block_channels)
        if len(outs) != NUM_BLOCKS or not all(
                isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in outs):
            raise ValueError(f'block_channels must be {NUM_BLOCKS} positive integers '
                             f'(one output width per block), got {block_channels!r}')
    settings = []
    in_ch = stem_channels(widen_factor, arch, divisor)
    index = 0
    for stage, (depth, stage_stride) in enumerate(zip(STAGE_DEPTHS, STAGE_STRIDES), start=1):
        for j in range(depth):
            ratio = 1 if index == 0 else 6
            hidden = in_ch * ratio if divisor == 1 or ratio == 1 else make_divisible(in_ch * ratio, divisor)
            use_se = arch != 'lite' and stage in SE_STAGES
            # timm computes the R squeeze width as int(hidden * (1 / 12)), then makes it divisible.
            se = 0 if not use_se else hidden // SE_REDUCTION if divisor == 1 else \
                make_divisible(int(hidden * (1 / SE_REDUCTION)), divisor)
            settings.append(BlockSetting(
                index=index, stage=stage, in_channels=in_ch, out_channels=outs[index], expand_ratio=ratio,
                stride=stage_stride if j == 0 else 1, use_se=use_se, hidden_channels=hidden,
                se_channels=se, activation=activation(arch)))
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
              block_channels: Optional[Sequence[int]] = None,
              arch: str = 'v1', channel_divisor: Optional[int] = None) -> List[TapSpec]:
    """Name, channels and stride of every feature point, indexed like ``out_indices``."""
    blocks = block_settings(widen_factor, block_channels, arch, channel_divisor)
    specs = []
    for index, (name, block, stride) in enumerate(_TAPS):
        if index == EXPANSION_TAP:
            channels = blocks[block].hidden_channels
        elif index == FINAL_TAP:
            channels = final_channels(widen_factor, arch, channel_divisor)
        else:
            channels = blocks[block].out_channels
        specs.append(TapSpec(index, name, block, channels, stride))
    return specs


def out_channels(widen_factor: float = 1.0, out_indices: Sequence[int] = (1, 2, 3, 5),
                 block_channels: Optional[Sequence[int]] = None,
                 arch: str = 'v1', channel_divisor: Optional[int] = None) -> List[int]:
    """Channels the backbone returns for ``out_indices``: what a neck's ``in_channels`` must be.

    ``out_indices`` is checked as ``ReXNet`` checks it (:func:`check_out_indices`).
    """
    specs = tap_specs(widen_factor, block_channels, arch, channel_divisor)
    return [specs[i].channels for i in check_out_indices(out_indices)]
