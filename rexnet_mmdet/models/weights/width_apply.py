"""Width transfer, applied: a ReXNet-v1 state dict (this project's keys) carried to another width by a plan."""
from dataclasses import dataclass, field
from typing import Dict, Optional

import torch

from ..channels import check_widen_factor
from ..width_names import format_width
from .families import infer_widen_factor
from .width_plan import (ChannelMap, TransferPlan, WidthTransferError, LayerSpaces, layer_spaces, channel_importance,
                         plan_transfer)


@dataclass
class WidthTransfer:
    """The result of :func:`transfer_state_dict`."""
    state_dict: Dict[str, torch.Tensor]
    plan: TransferPlan
    classifier: Dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        return self.plan.exact


def _map_tensor(t: torch.Tensor, layer: LayerSpaces, param: str, maps: Dict[str, ChannelMap]) -> torch.Tensor:
    if param == 'num_batches_tracked':
        return t.clone()
    if layer.out_space is not None:
        t = t.index_select(0, maps[layer.out_space].index)
    if t.dim() >= 2 and layer.in_space is not None:
        m = maps[layer.in_space]
        # Each copy of an input channel gets an equal share of its weight: the sum is unchanged.
        share = (1.0 / m.counts.to(t.dtype))[m.index]
        t = t.index_select(1, m.index) * share.view(1, -1, *([1] * (t.dim() - 2)))
    return t.contiguous()


def _check_source_shapes(state_dict: Dict[str, torch.Tensor], layers: Dict[str, LayerSpaces], plan: TransferPlan) -> None:
    for key, value in state_dict.items():
        prefix, _, param = key.rpartition('.')
        layer = layers.get(prefix)
        if layer is None or param == 'num_batches_tracked':
            continue  # unknown keys are reported while mapping
        expected = [plan.maps[layer.out_space].n_src if layer.out_space else value.shape[0]]
        if value.dim() >= 2:
            expected.append(plan.maps[layer.in_space].n_src if layer.in_space else value.shape[1])
        if list(value.shape[:len(expected)]) != expected:
            raise WidthTransferError(
                f'the source weights do not follow ReXNet\'s channel rule at widen_factor='
                f'{format_width(plan.src_width)}: {key!r} has shape {tuple(value.shape)}, expected {tuple(expected)} '
                f'in its first dimensions. Width transfer needs weights made by the linear channel rule '
                f'(no custom block_channels)')


def transfer_state_dict(state_dict: Dict[str, torch.Tensor], widen_factor: float,
                        source_widen_factor: Optional[float] = None,
                        classifier: Optional[Dict[str, torch.Tensor]] = None,
                        require_exact: bool = False, noise: float = 0.0, seed: int = 0) -> WidthTransfer:
    """Carry a backbone state dict (this project's keys) to ``widen_factor``.

    Args:
        state_dict: weights of a linear-rule ReXNet; layers may be missing past the last one a
            detector's backbone built (they stay missing).
        widen_factor: the target width.
        source_widen_factor: the source width; inferred from the shapes when not given.
        classifier: optional ``{'head.weight': (classes, final), 'head.bias': (classes,)}``, carried too.
        require_exact: refuse anything but exact widening.
        noise: standard deviation of Gaussian noise added to every conv and linear weight, relative to
            that weight's standard deviation (0: exact). Breaks the symmetry between copies.
        seed: seed of the noise.
    """
    widen_factor = check_widen_factor(widen_factor)
    if source_widen_factor is None:
        source_widen_factor = infer_widen_factor(state_dict)
        if source_widen_factor is None:
            raise WidthTransferError(
                'the source weights follow no linear ReXNet width (custom block_channels?); width transfer '
                'needs weights made by the linear channel rule of some widen_factor')
    if noise < 0:
        raise ValueError(f'noise must be >= 0 (a fraction of each weight\'s standard deviation), got {noise!r}')
    if noise and require_exact:
        raise ValueError('noise and require_exact exclude each other: noise changes the function the exact '
                         'widening preserves; drop one of them')
    plan = plan_transfer(source_widen_factor, widen_factor,
                         importance=channel_importance(state_dict, source_widen_factor),
                         require_exact=require_exact)
    layers = {layer.prefix: layer for layer in layer_spaces(plan.src_settings)}
    _check_source_shapes(state_dict, layers, plan)
    generator = torch.Generator().manual_seed(seed)
    out: Dict[str, Dict[str, torch.Tensor]] = {'state': {}, 'head': {}}
    items = [('state', k, v) for k, v in state_dict.items()]
    items += [('head', k, v) for k, v in (classifier or {}).items()]
    for where, key, value in items:
        prefix, _, param = key.rpartition('.')
        layer = layers.get(prefix)
        if layer is None or (where == 'head') != (prefix == 'head'):
            raise WidthTransferError(f'unexpected key {key!r}: not a layer of ReXNet-v1 in this project\'s format')
        mapped = _map_tensor(value, layer, param, plan.maps)
        if noise and layer.kind != 'norm' and param == 'weight' and value.numel() > 1:
            std = float(value.float().std())
            mapped = mapped + noise * std * torch.randn(mapped.shape, generator=generator).to(mapped.dtype)
        out[where][key] = mapped
    return WidthTransfer(out['state'], plan, out['head'])


__all__ = ['WidthTransfer', 'transfer_state_dict']
