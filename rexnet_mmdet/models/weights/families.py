"""Which ReXNet family (v1, R with its channel divisor, lite) and width a checkpoint was made for, read
from its layers; and the refusal of weights made for another family than the backbone's."""
from typing import Dict, Iterable, List, NamedTuple, Optional

import torch

from ..channels import (PUBLISHED_LITE_WIDTHS, PUBLISHED_WIDTHS, family_block_channels, family_name, final_channels,
                        linear_block_channels, stem_channels)
from ..width_names import format_width
from .safe_load import CheckpointMismatchError


def _candidate_widths(published: Iterable[float]) -> List[float]:
    """The widths tried, in order: the published ones, then every multiple of 0.01 from 0.1 to 5.0."""
    return list(published) + [k / 100 for k in range(10, 501)]


def _block_outputs(state_dict: Dict[str, torch.Tensor]) -> List[int]:
    outs = []
    for b in range(16):
        w = state_dict.get(f'blocks.{b}.conv_pwl.conv.weight')
        if w is None:
            break
        outs.append(w.shape[0])
    return outs


def infer_widen_factor(state_dict: Dict[str, torch.Tensor]) -> Optional[float]:
    """The width a ReXNet-v1 state dict (this project's keys) was made for, or None if it follows no linear width."""
    outs = _block_outputs(state_dict)
    if not outs:
        return None
    final = state_dict.get('final_conv.conv.weight')
    for w in _candidate_widths(PUBLISHED_WIDTHS):
        if linear_block_channels(w)[:len(outs)] == outs and \
                (final is None or final_channels(w) == final.shape[0]):
            return w
    return None


class CheckpointFamily(NamedTuple):
    """The family and width a checkpoint was made for (see :func:`infer_family`)."""
    arch: str
    widen_factor: float
    channel_divisor: int

    def __str__(self) -> str:
        return f'{family_name(self.arch, self.channel_divisor)} widen_factor={format_width(self.widen_factor)}'

    def config(self) -> str:
        """The backbone arguments that build this family and width."""
        args = [f'widen_factor={format_width(self.widen_factor)}']
        if self.arch != 'v1':
            args.insert(0, f"arch='{self.arch}'")
        elif self.channel_divisor != 1:
            args.append(f'channel_divisor={self.channel_divisor}')
        return ', '.join(args)


def _fits(state_dict: Dict[str, torch.Tensor], outs: List[int], arch: str, width: float, divisor: int) -> bool:
    if family_block_channels(width, arch, divisor)[:len(outs)] != outs:
        return False
    stem, final = state_dict.get('stem.conv.weight'), state_dict.get('final_conv.conv.weight')
    return (stem is None or stem.shape[0] == stem_channels(width, arch, divisor)) and \
        (final is None or final.shape[0] == final_channels(width, arch, divisor))


def infer_family(state_dict: Dict[str, torch.Tensor]) -> Optional[CheckpointFamily]:
    """The family (ReXNet-v1, ReXNet-R and its divisor, ReXNet-lite) and width of a state dict in this
    project's keys, from its layers: ReXNet-lite has no squeeze-excitation, ReXNet-R rounds every channel.
    None when it follows no family's rule (custom ``block_channels``) or holds no block."""
    outs = _block_outputs(state_dict)
    if not outs:
        return None
    if len(outs) > 3:  # blocks 3-15 carry SE in v1 and R, never in lite
        archs = [('lite', 8)] if 'blocks.3.se.fc1.weight' not in state_dict else [('v1', 1), ('v1', 8), ('v1', 16)]
    else:
        archs = [('v1', 1), ('v1', 8), ('v1', 16), ('lite', 8)]
    for arch, divisor in archs:
        published = PUBLISHED_LITE_WIDTHS if arch == 'lite' else PUBLISHED_WIDTHS
        for w in _candidate_widths(published):
            if _fits(state_dict, outs, arch, w, divisor):
                return CheckpointFamily(arch, w, divisor)
    return None


def check_family(state: Dict[str, torch.Tensor], own: Dict[str, torch.Tensor], model: CheckpointFamily,
                  source: str) -> None:
    """Refuse, in one line naming the family the checkpoint was made for, weights of another family.

    ReXNet-lite against v1/R is told by structure (squeeze-excitation); v1 against R (and one divisor
    against another) by channels, unless every layer of the model fits (then it is the same network)."""
    ckpt = infer_family(state)
    if ckpt is None or (ckpt.arch, ckpt.channel_divisor) == (model.arch, model.channel_divisor):
        return
    fits = all(k in state and state[k].shape == v.shape for k, v in own.items()
               if not k.endswith('num_batches_tracked'))
    # Blocks 0-2 alone (a detector backbone that stops early) do not tell lite from R: shapes decide.
    if fits and (ckpt.arch == model.arch or 'blocks.3.conv_pwl.conv.weight' not in state):
        return
    raise CheckpointMismatchError(
        f'{source} holds {family_name(ckpt.arch, ckpt.channel_divisor)} weights ({ckpt}), not weights for this '
        f'{family_name(model.arch, model.channel_divisor)} backbone: build the backbone with {ckpt.config()} '
        f'to load them, or give a checkpoint made for {family_name(model.arch, model.channel_divisor)}')


__all__ = ['CheckpointFamily', 'infer_family', 'infer_widen_factor', 'check_family']
