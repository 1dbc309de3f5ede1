"""Backbones timed against each other (the paper's Table 5 setting): ReXNet against MMDetection's
MobileNetV2, EfficientNet-B0 and ResNet-50 (:data:`~.speed.BASELINE_BACKBONES`) and, where timm is
installed, timm's ReXNet of the same width and EfficientNet-B0 (:data:`TIMM_BACKBONES`), each up to
its final feature map (no pooling, no classifier), on random square images, in every treatment and
precision asked for.
"""
import copy
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..deploy.treatments import treat_backbone
from ..models.norms import reestimate_batchnorm
from ..utils.build import build_backbone
from ..utils.timing import check_device, time_interleaved
from .complexity import count_parameters
from .precision import autocast, reference_outputs, relative_difference, tf32_off, tolerance
from .speed import (BASELINE_BACKBONES, REXNET_FINAL_TAP, Timing, check_treatments, runnable_precisions,
                    runnable_treatments, width_name)

#: timm models compared with ReXNet of a width (``None``: every width), by the name the tables use.
TIMM_BACKBONES: Dict[str, Tuple[str, Optional[float]]] = {
    'timm ReXNet x1.0': ('rexnet_100', 1.0),
    'timm ReXNet x1.3': ('rexnet_130', 1.3),
    'timm ReXNet x1.5': ('rexnet_150', 1.5),
    'timm ReXNet x2.0': ('rexnet_200', 2.0),
    'timm ReXNet x3.0': ('rexnet_300', 3.0),
    'timm EfficientNet-B0': ('efficientnet_b0', None),
}


class TimmFeatures(nn.Module):
    """A timm classifier up to its final feature map (``forward_features``), as a backbone returns it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        return (self.model.forward_features(x),)


def timm_backbone(model_name: str, calibration_size: int = 224, seed: int = 0) -> nn.Module:
    """timm's ``model_name`` with random weights (no download), classifier removed, BatchNorm
    statistics set on random images as :func:`~rexnet_mmdet.utils.build.build_backbone` sets them."""
    import timm

    torch.manual_seed(seed)
    model = timm.create_model(model_name, pretrained=False)
    model.reset_classifier(0)
    features = TimmFeatures(model)
    x = torch.randn(4, 3, calibration_size, calibration_size, generator=torch.Generator().manual_seed(seed))
    reestimate_batchnorm(features, lambda: features(x))
    return features.eval()


def timm_specs(widths: Sequence[float], skipped: List[str]) -> List[Tuple[str, None, Callable[[], nn.Module]]]:
    """The timm models that match ``widths`` (and timm's EfficientNet-B0); a note in ``skipped``
    for each one that cannot be built (timm not installed, no timm model of a width)."""
    try:
        import timm  # noqa: F401
    except ImportError:
        skipped.append('timm is not installed: its ReXNet and EfficientNet-B0 are not compared')
        return []
    specs = []
    for width in widths:
        match = [name for name, (_, w) in TIMM_BACKBONES.items() if w is not None and abs(w - width) < 1e-6]
        if not match:
            skipped.append(f'timm has no ReXNet {width_name(width)}: not compared with timm at that width')
        specs += [(name, None, (lambda n=TIMM_BACKBONES[name][0]: timm_backbone(n))) for name in match]
    specs += [(name, None, (lambda n=model: timm_backbone(n))) for name, (model, w) in TIMM_BACKBONES.items()
              if w is None]
    return specs


def benchmark_backbones(widths: Sequence[float] = (0.9, 1.0), batches: Sequence[int] = (1, 64),
                        size: int = 224, repeats: Optional[Dict[int, int]] = None,
                        warmup: Optional[Dict[int, int]] = None, device: str = 'cpu',
                        baselines: Sequence[str] = tuple(BASELINE_BACKBONES), optimize: bool = True,
                        block: Optional[Dict[int, int]] = None,
                        log: Optional[Callable[[str], None]] = print,
                        treatments: Optional[Sequence[str]] = None, precisions: Sequence[str] = ('fp32',),
                        with_timm: bool = False, numeric: Optional[dict] = None,
                        skipped: Optional[List[str]] = None,
                        on_rows: Optional[Callable[[List[Timing]], None]] = None) -> List[Timing]:
    """Time ReXNet backbones against MMDetection's backbones at each batch size.

    Args:
        widths: ReXNet widths.
        batches: batch sizes; each is one interleaved comparison of every model.
        size: side of the square random images.
        repeats / warmup: timed and untimed calls of each model per batch size (``{batch: n}``;
            default 30/3 for batches up to 8, else 3/1). Warm-up calls run every model at the
            batch's shape before any timing (cuDNN's autotuning, when on, falls there).
        block: consecutive calls of one model in each round (``{batch: n}``; default 5 for batches up
            to 8, else 1): its weights stay in the CPU caches, as a served model's do.
        device: ``'cpu'`` or ``'cuda'``.
        baselines: names from :data:`BASELINE_BACKBONES`.
        optimize: ``False`` times every model eager only (when ``treatments`` is not given).
        treatments: what every model, ReXNet and baselines alike, is timed with (default
            :data:`~.speed.DEFAULT_TREATMENTS`); a row's mode names it.
        precisions: ``'fp32'``, ``'fp16'``, ``'bf16'`` (see :mod:`.precision`), for every model.
        with_timm: also time timm's models (:func:`timm_specs`).
        numeric: what :func:`~.precision.apply_numeric_settings` returned (sets the tolerances).
        skipped: a list that gets one line per treatment, precision or model left out, and why.
        on_rows: called with the rows so far after each batch size's comparison.

    Each row's ``notes['rel_diff']`` is its outputs' relative difference to the model as built in
    the most exact setting (:func:`~.precision.reference_outputs`), ``notes['rel_diff_as_built']``
    that of the model as built run in the row's precision, and ``notes['tolerance']`` the bound
    rounding explains (:func:`~.precision.tolerance`); ``notes['fp32_rel_diff']`` and
    ``notes['fp32_tolerance']`` the same for the row's treatment in fp32 with TF32 off.
    ``notes['prepare_s']``, ``notes['warmup_s']`` and ``notes['timed_s']``: the seconds its batch size's
    comparison spent on the reference and accuracy passes, the warm-up calls and the timed calls.
    """
    dev = check_device(device)
    skipped = [] if skipped is None else skipped
    unknown = [b for b in baselines if b not in BASELINE_BACKBONES]
    if unknown:
        raise ValueError(f'unknown baseline backbones {unknown}; choose from {", ".join(BASELINE_BACKBONES)}')
    treatments = runnable_treatments(check_treatments(treatments, optimize), dev, skipped)
    precisions = runnable_precisions(precisions, dev, skipped)
    specs = _backbone_specs(widths, baselines, min(size, 224), with_timm, skipped)
    built, models = _treated_models(specs, treatments, precisions, size, dev)
    rows: List[Timing] = []
    for batch in batches:
        calls = dict(repeats=(repeats or {}).get(batch, 30 if batch <= 8 else 3),
                     warmup=(warmup or {}).get(batch, 3 if batch <= 8 else 1),
                     block=(block or {}).get(batch, 5 if batch <= 8 else 1))
        group = _time_batch(built, models, batch, size, precisions, calls, numeric, dev, log)
        _ratios_to_baselines(group, baselines)
        rows += group
        if on_rows:
            on_rows(rows)
    return rows


def _backbone_specs(widths: Sequence[float], baselines: Sequence[str], calibration_size: int, with_timm: bool,
                    skipped: List[str]) -> List[Tuple[str, Optional[float], Callable[[], nn.Module]]]:
    """(name, width, build) of every model compared: ReXNet at each width, the baselines, timm's."""
    specs = [(f'ReXNet {width_name(w)}', w,
              (lambda w=w: build_backbone(dict(type='ReXNet', widen_factor=w, out_indices=(REXNET_FINAL_TAP,)),
                                          calibration_size=calibration_size))) for w in widths]
    specs += [(name, None, (lambda name=name: build_backbone(BASELINE_BACKBONES[name],
                                                             calibration_size=calibration_size)))
              for name in baselines]
    if with_timm:
        specs += timm_specs(widths, skipped)
    return specs


def _treated_models(specs, treatments: Sequence[str], precisions: Sequence[str], size: int,
                    dev: torch.device) -> Tuple[Dict[str, nn.Module], Dict[str, Tuple[nn.Module, Timing]]]:
    """Each model as built (by name), and each treated copy with its row template (by row label)."""
    built: Dict[str, nn.Module] = {}
    models: Dict[str, Tuple[nn.Module, Timing]] = {}
    for name, w, build in specs:
        built[name] = build().to(dev)
        for treatment in treatments:
            model = treat_backbone(copy.deepcopy(built[name]), treatment)
            for precision in precisions:
                row = Timing('backbones', name, treatment, 0, (size, size), [], count_parameters(built[name]),
                             width=w, precision=precision)
                models[row.label] = (model, row)
    return built, models


def _time_batch(built: Dict[str, nn.Module], models: Dict[str, Tuple[nn.Module, Timing]], batch: int, size: int,
                precisions: Sequence[str], calls: Dict[str, int], numeric: Optional[dict], dev: torch.device,
                log: Optional[Callable[[str], None]]) -> List[Timing]:
    """One interleaved comparison of every model at ``batch``: accuracy against the references, then
    ``calls['warmup']`` untimed and ``calls['repeats']`` timed calls each (``calls['block']`` in a row)."""
    started = time.perf_counter()
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch)).to(dev)
    if log:
        log(f'backbones, batch {batch} at {size}x{size}: {len(models)} models, {calls["warmup"]} warm-up + '
            f'{calls["repeats"]} timed calls each, {calls["block"]} in a row per turn')
    with torch.no_grad():
        refs = {name: reference_outputs(m, lambda m: m(x.to(next(m.parameters()).dtype)), dev)
                for name, m in built.items()}
        # The rounding of each model as built in each precision, then each treated model against it.
        as_built = {(name, p): relative_difference(_call(m, x, p, dev)(), refs[name])
                    for name, m in built.items() for p in precisions}
        cases = {label: _call(model, x, row.precision, dev) for label, (model, row) in models.items()}
        diffs = {label: relative_difference(cases[label](), refs[row.name]) for label, (_, row) in models.items()}
        with tf32_off():  # every treatment also in true fp32, where an error stands out
            strict = {(row.name, row.mode): relative_difference(model(x), refs[row.name])
                      for model, row in models.values()}
            strict.update({(name, None): relative_difference(m(x), refs[name]) for name, m in built.items()})
        phases = dict(prepare_s=time.perf_counter() - started)
        times = time_interleaved(cases, calls['repeats'], calls['warmup'], dev, log, block=calls['block'],
                                 phases=phases)
    group = []
    for label, (model, template) in models.items():
        row = copy.deepcopy(template)
        row.batch, row.times = batch, times[label]
        rounding = as_built[row.name, row.precision]
        row.notes.update(rel_diff=diffs[label], rel_diff_as_built=rounding,
                         tolerance=tolerance(row.precision, numeric, rounding),
                         fp32_rel_diff=strict[row.name, row.mode],
                         fp32_tolerance=tolerance('fp32', None, strict[row.name, None]), **phases)
        group.append(row)
    return group


def _ratios_to_baselines(group: List[Timing], baselines: Sequence[str]) -> None:
    """Each row's median over each baseline's, under the same treatment and precision (like with like)."""
    for row in group:
        for ref in baselines:
            ref_row = next((r for r in group if r.name == ref and r.mode == row.mode
                            and r.precision == row.precision), None)
            if ref_row is not None and ref_row is not row:
                row.ratios[ref] = row.median / ref_row.median


def _call(model: nn.Module, x: torch.Tensor, precision: str, dev: torch.device) -> Callable[[], object]:
    def run():
        with autocast(precision, dev):
            return model(x)
    return run


__all__ = ['TIMM_BACKBONES', 'TimmFeatures', 'timm_backbone', 'timm_specs', 'benchmark_backbones']
