"""Width transfer, the plan: which source channel every target channel of every ReXNet-v1 layer takes.

How the maps are chosen (exact widening, importance-ranked narrowing, the partial residual) is
described in :mod:`.transfer`. Works on this project's key format; torch only for index tensors.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..channels import STAGE_DEPTHS, BlockSetting, block_settings, check_widen_factor, final_channels, stem_channels, tap_specs
from ..width_names import format_width
from .safe_load import CheckpointError


class WidthTransferError(CheckpointError):
    """A width transfer that cannot be done as asked."""


# ----------------------------------------------------------------- channel maps
@dataclass
class ChannelMap:
    """Where each target channel of one layer's output comes from.

    Attributes:
        name: the channel space (``stem``, ``blocks.{i}.hidden``, ``blocks.{i}.se``,
            ``blocks.{i}.out`` or ``final``).
        index: ``(n_dst,)`` long tensor, the source channel of every target channel.
        n_src: channels of the source layer.
    """
    name: str
    index: torch.Tensor
    n_src: int

    @property
    def n_dst(self) -> int:
        return int(self.index.numel())

    @property
    def counts(self) -> torch.Tensor:
        """How many target channels each source channel feeds (0 where it was dropped)."""
        return torch.bincount(self.index, minlength=self.n_src)

    @property
    def kept(self) -> int:
        return int((self.counts > 0).sum())

    @property
    def copies(self) -> int:
        return self.n_dst - self.kept

    @property
    def dropped(self) -> int:
        return self.n_src - self.kept

    @property
    def complete(self) -> bool:
        """Every source channel lives on: what exactness needs."""
        return self.dropped == 0


def _grow(candidates: torch.Tensor, n: int) -> torch.Tensor:
    """``n >= len(candidates)`` channels: the candidates in order, then copies, cycling through them."""
    reps = torch.arange(n) % candidates.numel()
    return candidates[reps]


def _select(candidates: torch.Tensor, n: int, score: torch.Tensor) -> torch.Tensor:
    """The ``n`` highest-scoring candidates, kept in source order."""
    order = torch.argsort(-score[candidates], stable=True)[:n]
    return torch.sort(candidates[order]).values


def _choose(candidates: torch.Tensor, n: int, score: torch.Tensor) -> torch.Tensor:
    if n == 0:
        return candidates[:0]
    if candidates.numel() == 0:
        raise WidthTransferError('no source channel to take')
    return _grow(candidates, n) if n >= candidates.numel() else _select(candidates, n, score)


# ----------------------------------------------------------------- layers
@dataclass(frozen=True)
class LayerSpaces:
    """One layer of ReXNet's key format (``prefix``) and the channel spaces it writes and reads."""
    prefix: str
    out_space: Optional[str]  # None: output channels fixed (classes)
    in_space: Optional[str]  # None: input channels fixed (RGB) or not a channel mixer
    kind: str  # 'conv' (dense conv or linear), 'depthwise', 'norm'


def _input_space(index: int) -> str:
    return 'stem' if index == 0 else f'blocks.{index - 1}.out'


def _hidden_space(s: BlockSetting) -> str:
    # Block 0 has no expansion: its depthwise conv works on the stem's channels.
    return _input_space(s.index) if s.expand_ratio == 1 else f'blocks.{s.index}.hidden'


def layer_spaces(settings: Sequence[BlockSetting]) -> List[LayerSpaces]:
    """Every layer of ReXNet (and the classifier), with the channel spaces it writes and reads."""
    rows = [LayerSpaces('stem.conv', 'stem', None, 'conv'), LayerSpaces('stem.bn', 'stem', None, 'norm')]
    for s in settings:
        p, prev, hidden = f'blocks.{s.index}.', _input_space(s.index), _hidden_space(s)
        if s.expand_ratio != 1:
            rows += [LayerSpaces(p + 'conv_exp.conv', hidden, prev, 'conv'), LayerSpaces(p + 'conv_exp.bn', hidden, None, 'norm')]
        rows += [LayerSpaces(p + 'conv_dw.conv', hidden, None, 'depthwise'), LayerSpaces(p + 'conv_dw.bn', hidden, None, 'norm')]
        if s.use_se:
            se = p + 'se'
            rows += [LayerSpaces(p + 'se.fc1', se, hidden, 'conv'), LayerSpaces(p + 'se.bn', se, None, 'norm'),
                     LayerSpaces(p + 'se.fc2', hidden, se, 'conv')]
        rows += [LayerSpaces(p + 'conv_pwl.conv', p + 'out', hidden, 'conv'),
                 LayerSpaces(p + 'conv_pwl.bn', p + 'out', None, 'norm')]
    last = f'blocks.{len(settings) - 1}.out'
    rows += [LayerSpaces('final_conv.conv', 'final', last, 'conv'), LayerSpaces('final_conv.bn', 'final', None, 'norm'),
             LayerSpaces('head', None, 'final', 'conv')]
    return rows


def _space_sizes(widen_factor: float, settings: Sequence[BlockSetting]) -> Dict[str, int]:
    sizes = {'stem': stem_channels(widen_factor), 'final': final_channels(widen_factor)}
    for s in settings:
        if s.expand_ratio != 1:
            sizes[f'blocks.{s.index}.hidden'] = s.hidden_channels
        if s.use_se:
            sizes[f'blocks.{s.index}.se'] = s.se_channels
        sizes[f'blocks.{s.index}.out'] = s.out_channels
    return sizes


# ----------------------------------------------------------------- importance
def channel_importance(state_dict: Dict[str, torch.Tensor], widen_factor: float) -> Dict[str, torch.Tensor]:
    """Importance of every source channel, per channel space (see the module docstring).

    A BatchNorm output has standard deviation ``|gamma|`` and carries its channel to every layer
    that reads it, so a channel's importance is the sum of ``|gamma|`` over the norms that write it;
    a block output that a partial residual adds into the next block's output carries that block's
    importance too (accumulated from the last block of a stage backwards). Missing norms count 0.
    """
    settings = block_settings(widen_factor)
    sizes = _space_sizes(widen_factor, settings)
    score = {name: torch.zeros(n) for name, n in sizes.items()}
    for layer in layer_spaces(settings):
        gamma = state_dict.get(layer.prefix + '.weight')
        if layer.kind == 'norm' and gamma is not None:
            score[layer.out_space] += gamma.detach().float().abs()
    for s in reversed(settings[1:]):
        if s.use_residual:
            score[_input_space(s.index)] += score[f'blocks.{s.index}.out'][:s.in_channels]
    return score


# ----------------------------------------------------------------- the plan
@dataclass
class TransferPlan:
    """Channel maps of every layer for a transfer from ``src_width`` to ``dst_width``."""
    src_width: float
    dst_width: float
    maps: Dict[str, ChannelMap]
    src_settings: List[BlockSetting] = field(repr=False)
    dst_settings: List[BlockSetting] = field(repr=False)

    @property
    def exact(self) -> bool:
        """Every source channel lives on in the target: the target computes the source's function."""
        return all(m.complete for m in self.maps.values())

    def tap_index(self, tap: int) -> torch.Tensor:
        """Source channel of every target channel at feature point ``tap`` (an ``out_indices`` entry)."""
        spec = tap_specs(self.dst_width)[tap]
        if spec.name == 'final_conv':
            return self.maps['final'].index
        if spec.name == 'exp16':
            return self.maps[_hidden_space(self.dst_settings[spec.block])].index
        return self.maps[f'blocks.{spec.block}.out'].index

    def changed_norms(self) -> List[str]:
        """Norm layers whose inputs differ from the source's (those downstream of a dropped channel).

        ReXNet is a chain, so that is every norm from the first layer that reads a space with a
        dropped channel on. Empty for an exact transfer.
        """
        changed, names = False, []
        for layer in layer_spaces(self.dst_settings):
            if layer.in_space is not None and not self.maps[layer.in_space].complete:
                changed = True
            if changed and layer.kind == 'norm':
                names.append(layer.prefix)
        return names

    def stage_rows(self) -> List[Tuple[str, str, str, str, str]]:
        """Per stage: (stage, blocks, output channels, all its layers' channels, what was done)."""
        groups = [('stem', '-', ['stem'])]
        start = 0
        for stage, depth in enumerate(STAGE_DEPTHS, start=1):
            blocks = self.dst_settings[start:start + depth]
            names = [n for s in blocks for n in (f'blocks.{s.index}.hidden', f'blocks.{s.index}.se',
                                                 f'blocks.{s.index}.out') if n in self.maps]
            span = f'{start}' if depth == 1 else f'{start}-{start + depth - 1}'
            groups.append((str(stage), span, names))
            start += depth
        groups.append(('final conv', '-', ['final']))
        rows = []
        for stage, span, names in groups:
            maps = [self.maps[n] for n in names]
            last = maps[-1]
            copies, dropped = sum(m.copies for m in maps), sum(m.dropped for m in maps)
            done = []
            if copies:
                done.append(f'{copies} copied')
            if dropped:
                done.append(f'{dropped} dropped (kept the most important)')
            rows.append((stage, span, f'{last.n_src} -> {last.n_dst}',
                         f'{sum(m.n_src for m in maps)} -> {sum(m.n_dst for m in maps)}',
                         ', '.join(done) or 'unchanged'))
        return rows


def _residual_error(s: BlockSetting, d: BlockSetting, src_width: float, dst_width: float, what: str) -> str:
    return (f'block {s.index}: {what} (source widen_factor={format_width(src_width)}: in {s.in_channels}, out '
            f'{s.out_channels}; target {format_width(dst_width)}: in {d.in_channels}, out {d.out_channels}). ReXNet\'s '
            f'linear channel rule keeps this for its published widths; this pair of widths cannot be '
            f'transferred consistently through the partial residual')


def _check_widens(src_sizes: Dict[str, int], dst_sizes: Dict[str, int], src_width: float, dst_width: float) -> None:
    """Refuse a transfer that narrows some layer (exact widening was asked for)."""
    for name, n in dst_sizes.items():
        if n < src_sizes[name]:
            raise WidthTransferError(
                f'exact (function-preserving) widening needs a target at least as wide as the source at '
                f'every layer, but {name} has {src_sizes[name]} channels at widen_factor={format_width(src_width)} '
                f'and {n} at {format_width(dst_width)}. Use a source of widen_factor <= {format_width(dst_width)}, '
                f'or allow narrowing (approximate; re-estimate BatchNorm on images afterwards)')


def plan_transfer(src_width: float, dst_width: float,
                  importance: Optional[Dict[str, torch.Tensor]] = None,
                  require_exact: bool = False) -> TransferPlan:
    """Channel maps from ``src_width`` to ``dst_width``.

    Args:
        src_width, dst_width: the widths (linear channel rule).
        importance: per-space source channel scores (:func:`channel_importance`), used where a
            layer narrows; without them the first channels are kept.
        require_exact: raise :class:`WidthTransferError` unless every layer widens (the transfer
            is then function-preserving).
    """
    src_width, dst_width = check_widen_factor(src_width), check_widen_factor(dst_width)
    src, dst = block_settings(src_width), block_settings(dst_width)
    src_sizes, dst_sizes = _space_sizes(src_width, src), _space_sizes(dst_width, dst)
    if require_exact:
        _check_widens(src_sizes, dst_sizes, src_width, dst_width)
    importance = importance or {}

    def score(name: str) -> torch.Tensor:
        return importance.get(name, torch.zeros(src_sizes[name]))

    maps: Dict[str, ChannelMap] = {}

    def plain(name: str) -> None:
        n_src = src_sizes[name]
        maps[name] = ChannelMap(name, _choose(torch.arange(n_src), dst_sizes[name], score(name)), n_src)

    plain('stem')
    for s, d in zip(src, dst):
        if s.expand_ratio != 1:
            plain(f'blocks.{s.index}.hidden')
        if s.use_se:
            plain(f'blocks.{s.index}.se')
        out = f'blocks.{s.index}.out'
        if s.use_residual != d.use_residual:
            raise WidthTransferError(_residual_error(s, d, src_width, dst_width,
                                                     'one width has a partial residual here and the other not'))
        if not s.use_residual:
            plain(out)
            continue
        # Residual channels follow the block input; the rest map to source channels without one.
        through = maps[_input_space(s.index)].index
        extra_src, extra_dst = s.out_channels - s.in_channels, d.out_channels - d.in_channels
        if require_exact and extra_dst < extra_src:
            raise WidthTransferError(_residual_error(
                s, d, src_width, dst_width, f'out - in shrinks from {extra_src} to {extra_dst}, so exact '
                                            f'widening is impossible'))
        if extra_dst and not extra_src:
            raise WidthTransferError(_residual_error(
                s, d, src_width, dst_width, 'the target has channels without residual and the source none'))
        rest = _choose(torch.arange(s.in_channels, s.out_channels), extra_dst, score(out))
        maps[out] = ChannelMap(out, torch.cat([through, rest]), s.out_channels)
    plain('final')
    return TransferPlan(src_width, dst_width, maps, src, dst)


__all__ = ['WidthTransferError', 'ChannelMap', 'LayerSpaces', 'TransferPlan', 'channel_importance', 'layer_spaces',
           'plan_transfer']
