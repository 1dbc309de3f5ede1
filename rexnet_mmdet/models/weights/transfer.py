"""Carry ReXNet weights from one width to another.

ReXNet's widths nest: at every layer a wider model has at least as many channels as a narrower
one, partial residuals included (a wider block's ``out - in`` never shrinks). So:

* **Widening** (every layer at least as wide as the source) is exact, Net2Net style. Each layer's
  output channels get a map ``g``: target channel ``j`` computes what source channel ``g(j)``
  computed (identity first, then copies, spread evenly). Producers copy rows (conv weights, BN
  weight, bias and running statistics); consumers split their input columns among the copies
  (column ``j`` is source column ``g(j)`` divided by the number of copies of ``g(j)``); depthwise
  convs keep the map; squeeze-excitation widens its hidden channels too. The partial residual
  (``out[:, :in] += x``) stays consistent: a block's first ``in`` target outputs use the map of
  its input, and the others map to source channels that carry no residual. The widened network
  computes the same function, ImageNet logits included, to float32 rounding.
* **Narrowing** (some layer narrower) keeps, per layer, the most important source channels, with
  importance = the ``|gamma|`` of the BatchNorm that produces the channel (the channel's output
  standard deviation), summed over every BatchNorm that shares the channel: the expansion and
  depthwise norms of a block's hidden channels, and every block output a partial residual adds
  the channel into. The residual structure decides the rest, as for widening. BatchNorm statistics
  downstream of a dropped channel no longer fit; :func:`calibrate_batchnorm` re-estimates them on
  images, and :func:`feature_drift` measures how far the narrowed features are from the source's.

Everything works on this project's own key format (``stem.conv.weight``, ``blocks.{i}.conv_exp…``,
``final_conv…``) plus an optional classifier (``head.weight`` of shape ``(classes, final)`` and
``head.bias``). Models are built through MMDetection's registry, so this module stays below
``rexnet.py``, which imports it. Width transfer applies to ReXNet-v1 only (ReXNet-R and ReXNet-lite
weights are refused with a message naming their family).

The work is split by job: :mod:`.width_plan` (the channel maps), :mod:`.width_apply` (carrying a
state dict), :mod:`.calibration` (BatchNorm re-estimation and feature drift) and this module (files,
reports and ``init_cfg`` loading); import each name from its module.
"""
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch

from ..channels import family_name
from ..width_names import format_width
from .calibration import Calibration, calibrate_transfer, load_images
from .classifiers import classifier_to_format, extract_classifier
from .families import infer_family
from .formats import detect_format, from_own_format, to_own_format
from .weight_files import read_state_dict, save_own_format, write_state_dict
from .width_apply import WidthTransfer, transfer_state_dict
from .width_plan import TransferPlan, WidthTransferError


# ----------------------------------------------------------------- files
@dataclass
class TransferReport:
    """What :func:`transfer_checkpoint` did, for printing."""
    source: str
    source_format: str
    destination: str
    destination_format: str
    plan: TransferPlan
    classifier: bool
    noise: float
    calibration: Optional[Calibration] = None

    def lines(self) -> List[str]:
        plan = self.plan
        how = 'exact widening (function-preserving)' if plan.exact else \
            'narrowing (most important channels kept; approximate)'
        lines = [f'{self.source} ({self.source_format} format, widen_factor={format_width(plan.src_width)}) -> '
                 f'{self.destination} ({self.destination_format} format, widen_factor={format_width(plan.dst_width)}): {how}']
        rows = [('stage', 'blocks', 'output channels', 'all layers', 'done')] + plan.stage_rows()
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines += ['  ' + '  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        if self.classifier:
            lines.append('  classifier kept: its inputs follow the final conv\'s channels (split among copies)')
        if self.noise:
            lines.append(f'  noise: {self.noise:g} x each conv/linear weight\'s std added (breaks copy symmetry; '
                         f'no longer exact)')
        cal = self.calibration
        if cal is not None:
            taps = list(cal.before)
            lines.append(f'  feature drift from the source (relative L2, {cal.num_images} images; '
                         f'{cal.norms} BatchNorm layers re-estimated):')
            lines.append('    ' + '  '.join(f'{t:>10}' for t in ['', *taps]))
            lines.append('    ' + '  '.join(f'{v:>10}' for v in ['before', *[f'{cal.before[t]:.4f}' for t in taps]]))
            lines.append('    ' + '  '.join(f'{v:>10}' for v in ['after', *[f'{cal.after[t]:.4f}' for t in taps]]))
        elif not plan.exact:
            lines.append('  BatchNorm statistics not re-estimated: give --calibrate-images DIR (e.g. COCO train '
                         'images) for a closer start')
        return lines


def read_source(path_or_url: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor], str]:
    """Read a checkpoint of any known format: (backbone state in this project's keys, classifier, format)."""
    raw = read_state_dict(path_or_url)
    fmt = detect_format(raw)
    family = infer_family(to_own_format(raw, fmt))
    if family is not None and (family.arch, family.channel_divisor) != ('v1', 1):
        raise WidthTransferError(f'{path_or_url} holds {family_name(family.arch, family.channel_divisor)} weights '
                                 f'({family}); width transfer carries ReXNet-v1 weights only')
    classifier = extract_classifier(raw, fmt) if 'backbone.stem.conv.weight' not in raw else {}
    state = to_own_format(raw, fmt)
    if fmt == 'rexnet_mmdet':
        state = {k: v for k, v in state.items() if not k.startswith('head.')}
    return state, classifier, fmt


def transfer_checkpoint(src: str, dst: str, widen_factor: float, fmt: str = 'rexnet_mmdet',
                        require_exact: bool = False, noise: float = 0.0, seed: int = 0,
                        calibrate_images: Optional[str] = None, num_images: int = 64,
                        image_size: int = 224) -> TransferReport:
    """Write the weights of ``src`` (any known format, any width) carried to ``widen_factor`` at ``dst``.

    ``fmt`` 'official' or 'timm' keeps the source's classifier (carried exactly when widening);
    'rexnet_mmdet' writes the backbone only. ``calibrate_images``: a folder of images on which the
    BatchNorm statistics a narrowing changed are re-estimated (first ``num_images``, sorted by name).
    """
    from .formats import FORMATS
    if fmt not in FORMATS:
        raise ValueError(f'format must be one of {", ".join(FORMATS)}, got {fmt!r}')
    state, classifier, src_fmt = read_source(src)
    result = transfer_state_dict(state, widen_factor, classifier=classifier, require_exact=require_exact,
                                 noise=noise, seed=seed)
    calibration = None
    if calibrate_images is not None:
        images = load_images(calibrate_images, num_images, image_size)
        calibration = calibrate_transfer(result, images, state)
    note = (f'{osp.basename(src)} ({src_fmt}, widen_factor={format_width(result.plan.src_width)}), '
            + ('widened exactly' if result.exact else 'narrowed'))
    if fmt == 'rexnet_mmdet':
        save_own_format(result.state_dict, dst, result.plan.dst_width, source=note)
    else:
        out = from_own_format(result.state_dict, fmt)
        out.update(classifier_to_format(result.classifier, fmt))
        write_state_dict(out, dst)
    return TransferReport(src, src_fmt, dst, fmt, result.plan, bool(result.classifier) and fmt != 'rexnet_mmdet',
                          noise, calibration)


# ----------------------------------------------------------------- from a config
def load_transferred_weights(model: torch.nn.Module, path_or_url: str, noise: float = 0.0) -> Optional[WidthTransfer]:
    """Load weights of any width into a :class:`ReXNet` ``model``, carried to its width.

    A checkpoint already at the model's width loads directly (no transfer). Otherwise it is widened
    exactly or narrowed (without BatchNorm re-estimation: no images at this point), and one log line
    says what was done. Used by ``init_cfg=dict(type='Pretrained', checkpoint=..., width_transfer=True)``;
    ``noise`` (``width_transfer_noise``) is as in :func:`transfer_state_dict`.
    """
    from mmengine.logging import print_log

    from .pretrained import load_backbone_weights
    if getattr(model, 'block_channels', None) is not None:
        raise WidthTransferError('width_transfer needs a backbone that follows the linear channel rule; this '
                                 'one has explicit block_channels')
    state, _, fmt = read_source(path_or_url)
    own = model.state_dict()
    if all(k in state and state[k].shape == v.shape for k, v in own.items() if not k.endswith('num_batches_tracked')):
        load_backbone_weights(model, path_or_url)  # already at this width
        return None
    result = transfer_state_dict(state, model.widen_factor, noise=noise)
    missing = [k for k in own if k not in result.state_dict and not k.endswith('num_batches_tracked')]
    if missing:
        raise WidthTransferError(f'{path_or_url} ({fmt} format) has no weights for layer {missing[0]!r} of '
                                 f'ReXNet(widen_factor={format_width(model.widen_factor)}) (a detector backbone that stops '
                                 f'earlier?); give a complete ImageNet checkpoint')
    model.load_state_dict({k: v for k, v in result.state_dict.items() if k in own}, strict=False)
    plan = result.plan
    if result.exact:
        how = 'widened exactly (the same function and ImageNet accuracy as the source)'
    else:
        dropped = sum(m.dropped for m in plan.maps.values())
        how = (f'narrowed ({dropped} channels dropped, the most important kept by BatchNorm |gamma|; BatchNorm '
               f'statistics NOT re-estimated, there are no images at init time: for a closer start run '
               f'tools/model_converters/convert_weights.py SRC DST --widen-factor {format_width(plan.dst_width)} --calibrate-images DIR '
               f'and give DST as init_cfg.checkpoint)')
    if noise:
        how += f', then noise of {noise:g} x each weight\'s std added to break the symmetry of copies'
    print_log(f'ReXNet ImageNet weights: widen_factor {format_width(plan.src_width)} -> {format_width(plan.dst_width)}, {how}; source '
              f'{path_or_url} ({fmt} format)', logger='current')
    return result


__all__ = ['TransferReport', 'read_source', 'transfer_checkpoint', 'load_transferred_weights']
