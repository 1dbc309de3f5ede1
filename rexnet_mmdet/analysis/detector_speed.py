"""Faster R-CNN + FPN prediction timed: ReXNet detectors against MMDetection's ResNet-50 one
(:data:`~.speed.REFERENCE_DETECTOR`), random weights, eval mode, ``model.predict`` under
``torch.no_grad()`` on fixed random images, normalised and padded by each model's data
preprocessor once, before timing; at each batch size, treatment and precision asked for, every
model alike, with the time of each stage (:class:`StageTimer`).
"""
import copy
import os.path as osp
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..deploy.mixed_precision import fp32_post_processing
from ..deploy.treatments import treat_detector
from ..models.channels import out_channels
from ..utils.build import CONFIG_DIR, build_detector, calibration_image_size, fake_batch, load_config
from ..utils.timing import check_device, sync, time_interleaved
from .complexity import count_parameters
from .precision import autocast, reference_outputs, relative_difference, tf32_off, tolerance
from .speed import (DEFAULT_DETECTOR_WIDTHS, REFERENCE_DETECTOR, REFERENCE_NAME, Timing, add_ratios,
                    check_treatments, runnable_precisions, runnable_treatments, width_name)


def rexnet_detector_config(widen_factor: float, config_dir: str = CONFIG_DIR):
    """The Faster R-CNN + FPN config of ReXNet ``x{widen_factor}``.

    The project's config file when there is one (x0.9, x1.0, x2.2); any other width is the x1.0
    config with that width and the FPN's input channels from the channel rule.
    """
    path = osp.join(config_dir, f'faster_rcnn_rexnet_{width_name(widen_factor)}_fpn.py')
    if osp.isfile(path):
        return load_config(path)
    base = osp.join(config_dir, 'faster_rcnn_rexnet_x1.0_fpn.py')
    cfg = load_config(base)
    indices = tuple(cfg.model.backbone.out_indices)
    cfg.model.backbone.widen_factor = float(widen_factor)
    cfg.model.neck.in_channels = list(out_channels(widen_factor, indices))
    return cfg

#: The heads' last layers, whose outputs decide which boxes the later stages work on.
PREDICTION_LAYERS = ('rpn_head.rpn_cls', 'rpn_head.rpn_reg', 'roi_head.bbox_head.fc_cls',
                     'roi_head.bbox_head.fc_reg')


def equalize_heads(model: nn.Module) -> List[str]:
    """Zero the heads' last layers (:data:`PREDICTION_LAYERS`), so that the work after the neck
    no longer depends on what random weights make of the features.

    With random weights, where the RPN puts its proposals (their sizes set the RoI Align cost)
    and how many boxes pass the score threshold (the NMS cost) depend on the scale of each
    backbone's random features: between ReXNet and ResNet-50 this alone moved the RoI head's
    time by tens of percent. Zeroed, every detector scores all anchors alike, sends the same
    anchors as proposals to its RoI head (the same count and sizes for every backbone, at a given
    input size) and keeps no detection (uniform class scores stay below the threshold). The
    layers still run: the computation is that of the real detector. Returns the layers zeroed.
    """
    zeroed = []
    for path in PREDICTION_LAYERS:
        layer = model
        for attr in path.split('.'):
            layer = getattr(layer, attr, None)
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            with torch.no_grad():
                layer.weight.zero_()
                if layer.bias is not None:
                    layer.bias.zero_()
            zeroed.append(path)
    return zeroed


class StageTimer:
    """Seconds spent in each stage of a detector's ``predict``: backbone, neck, RPN (head and
    proposals), RoI heads (incl. post-processing), or a one-stage detector's head. A detector whose
    backbone and neck run as one (``features_lever``, see :mod:`rexnet_mmdet.deploy.graphs`) gets
    one ``backbone+neck`` stage instead.

    Wraps the stages' methods on the model instance; while :attr:`enabled`, each stage boundary
    synchronises the device (on the CPU that costs nothing; on a GPU it stops the host from
    queueing the next stage early, so GPU totals are timed with the timer off). Call :meth:`begin`
    before and :meth:`end` after each ``predict``; :attr:`calls` holds one ``{stage: seconds}``
    per timed call.
    """

    STAGES = (('backbone', 'backbone', 'forward'), ('neck', 'neck', 'forward'),
              ('backbone+neck', None, 'extract_feat'),
              ('rpn', 'rpn_head', 'predict'), ('roi_head', 'roi_head', 'predict'),
              ('head', 'bbox_head', 'predict'))

    def __init__(self, model: nn.Module, device: torch.device = torch.device('cpu')):
        self.device = device
        self.enabled = True
        self.calls: List[Dict[str, float]] = []
        self._current: Dict[str, float] = {}
        lever = getattr(model, 'features_lever', None)
        for stage, attr, method in self.STAGES:
            if (stage == 'backbone+neck' and not lever) or (stage in ('backbone', 'neck') and lever):
                continue
            module = model if attr is None else getattr(model, attr, None)
            if isinstance(module, nn.Module) and hasattr(module, method):
                # In the instance's __dict__: shadows the class's method (and a lever's call).
                object.__setattr__(module, method, self._wrap(getattr(module, method), stage))

    def _wrap(self, fn: Callable, stage: str) -> Callable:
        def timed(*args, **kwargs):
            if not self.enabled:
                return fn(*args, **kwargs)
            sync(self.device)
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            sync(self.device)
            self._current[stage] = self._current.get(stage, 0.0) + time.perf_counter() - start
            return out
        return timed

    def begin(self) -> None:
        self._current = {}

    def end(self, total: float) -> None:
        if not self.enabled:
            return
        stages = dict(self._current)
        stages['other'] = max(0.0, total - sum(stages.values()))
        self.calls.append(stages)

    def medians(self, last: int) -> Dict[str, float]:
        """Median seconds per stage over the last ``last`` calls."""
        return self.stage_medians(self.calls, last)

    @staticmethod
    def stage_medians(calls: List[Dict[str, float]], last: int) -> Dict[str, float]:
        """Median seconds per stage over the last ``last`` of ``calls``."""
        calls = calls[-last:]
        return {k: statistics.median(c.get(k, 0.0) for c in calls) for k in calls[0]} if calls else {}


def _timed_predict(model: nn.Module, inputs: torch.Tensor, samples: list, timer: StageTimer,
                   device: torch.device, precision: str = 'fp32',
                   calls: Optional[List[Dict[str, float]]] = None) -> Callable[[], None]:
    """One timed ``predict``; its stage split goes to ``calls`` when given (one timer may serve
    several rows: the same treated model in several precisions)."""
    def run() -> None:
        timer.begin()
        start = time.perf_counter()
        with autocast(precision, device):
            model.predict(inputs, samples)
        sync(device)
        timer.end(time.perf_counter() - start)
        if calls is not None and timer.calls:
            calls.append(timer.calls.pop())
    return run


def _roi_counter(model: nn.Module) -> Tuple[Dict[str, int], list]:
    """Counts the RoIs the box head runs on (its cost scales with them)."""
    counts: Dict[str, int] = {}
    hooks = []
    extractor = getattr(getattr(model, 'roi_head', None), 'bbox_roi_extractor', None)
    if extractor is not None:
        hooks.append(extractor.register_forward_hook(
            lambda m, args, out: counts.__setitem__('rois', int(args[1].shape[0]))))
    return counts, hooks


def _features(model: nn.Module, inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """What the neck hands the heads (``extract_feat``), as float32 copies."""
    return tuple(f.float().clone() for f in model.extract_feat(inputs))


def benchmark_detectors(widths: Sequence[float] = DEFAULT_DETECTOR_WIDTHS,
                        image_size: Tuple[int, int] = (1200, 800), repeats: int = 5, warmup: int = 1,
                        device: str = 'cpu', reference: Optional[str] = REFERENCE_DETECTOR,
                        config_dir: str = CONFIG_DIR, optimize: bool = True,
                        uniform_heads: bool = True,
                        log: Optional[Callable[[str], None]] = print,
                        treatments: Optional[Sequence[str]] = None, batches: Sequence[int] = (1,),
                        precisions: Sequence[str] = ('fp32',), numeric: Optional[dict] = None,
                        skipped: Optional[List[str]] = None,
                        on_rows: Optional[Callable[[List[Timing]], None]] = None) -> List[Timing]:
    """Time ``model.predict`` of ReXNet Faster R-CNN + FPN detectors against the ResNet-50 one.

    Args:
        widths: ReXNet widths (see :func:`rexnet_detector_config`).
        image_size: ``(W, H)`` of the random images before the data preprocessor pads them
            (to a multiple of 32: 1200x800 becomes 1216x800).
        repeats / warmup: timed and untimed rounds. Warm-up rounds run every model at each
            batch's padded shape before any timing (cuDNN's autotuning and a lever's graph
            capture, when on, fall there).
        reference: the config to compare with (``None``: none).
        optimize: ``False`` times every detector eager only (when ``treatments`` is not given).
        treatments: given to every detector, the reference's included (default
            :data:`~.speed.DEFAULT_TREATMENTS`); a row's mode names it. A treatment that cannot
            run on ``device`` (a GPU lever on the CPU) is left out with a line in ``skipped``.
        uniform_heads: zero the heads' last layers (:func:`equalize_heads`) so that every
            detector's RoI head and post-processing do the same work.
        batches: images per ``predict`` call; each batch size is one interleaved comparison.
        precisions: ``'fp32'``, ``'fp16'``, ``'bf16'`` (:mod:`.precision`), for every detector:
            ``predict`` under autocast, box post-processing in float32
            (:func:`~rexnet_mmdet.deploy.mixed_precision.fp32_post_processing`).
        numeric: what :func:`~.precision.apply_numeric_settings` returned (sets the tolerances).
        skipped: a list that gets one line per treatment or precision left out, and why.
        on_rows: called with the rows so far after each batch size's comparison.

    A row's notes are those of :func:`~.backbone_speed.benchmark_backbones` (accuracy against the
    detector as built, tolerances, the seconds of each phase), measured on the features the neck
    hands the heads; ``notes['stages_ms']`` holds the median time of each stage: on the CPU from the
    timed calls themselves, on a GPU from as many further calls with the stage boundaries synchronised.
    """
    dev = check_device(device)
    skipped = [] if skipped is None else skipped
    treatments = runnable_treatments(check_treatments(treatments, optimize), dev, skipped)
    precisions = runnable_precisions(precisions, dev, skipped)
    specs = [(f'ReXNet {width_name(w)}', w, rexnet_detector_config(w, config_dir)) for w in widths]
    if reference:
        specs.append((REFERENCE_NAME if reference == REFERENCE_DETECTOR else osp.basename(reference), None,
                      load_config(reference)))
    built = _build_detectors(specs, treatments, image_size, dev, uniform_heads, log)
    rows: List[Timing] = []
    for batch in batches:
        rows += _race(built, batch, image_size, precisions, repeats, warmup, dev, uniform_heads, numeric, log)
        if on_rows:
            on_rows(rows)
    return rows


def _build_detectors(specs, treatments: Sequence[str], image_size: Tuple[int, int], dev: torch.device,
                     uniform_heads: bool, log: Optional[Callable[[str], None]]
                     ) -> List[Tuple[str, Optional[float], nn.Module, Dict[str, nn.Module]]]:
    """(name, width, detector as built, {treatment: treated copy}) for each (name, width, config)."""
    built = []
    for name, w, cfg in specs:
        if log:
            log(f'building {name} Faster R-CNN + FPN')
        model = build_detector(cfg, calibration_size=calibration_image_size(image_size)).to(dev).eval()
        if uniform_heads:
            equalize_heads(model)
        # Box post-processing in float32 (mmcv's NMS reads float32 only), for every detector alike.
        built.append((name, w, model, {t: fp32_post_processing(treat_detector(copy.deepcopy(model), t))
                                       for t in treatments}))
    return built


def _race_entries(built, batch: int, image_size: Tuple[int, int], precisions: Sequence[str], dev: torch.device,
                  uniform_heads: bool, numeric: Optional[dict]) -> List[Tuple[Timing, nn.Module, torch.Tensor, list]]:
    """(row, treated detector, inputs, samples) of every (detector, treatment, precision) at ``batch``,
    each row holding its accuracy against the detector as built."""
    data_batch = fake_batch(batch, image_size)
    entries: List[Tuple[Timing, nn.Module, torch.Tensor, list]] = []
    for name, w, model, treated in built:
        with torch.no_grad():
            data = model.data_preprocessor(copy.deepcopy(data_batch), False)
        inputs, samples = data['inputs'], data['data_samples']
        ref = reference_outputs(model, lambda m: m.extract_feat(inputs.to(next(m.parameters()).dtype)), dev)
        padded = (int(inputs.shape[-1]), int(inputs.shape[-2]))
        rounding = {}
        for precision in precisions:  # the rounding of the detector as built in each precision
            with torch.no_grad(), autocast(precision, dev):
                rounding[precision] = relative_difference(_features(model, inputs), ref)
        with torch.no_grad(), tf32_off():  # every treatment also in true fp32, where an error stands out
            strict = {t: relative_difference(_features(d, inputs), ref) for t, d in treated.items()}
            strict_bound = tolerance('fp32', None, relative_difference(_features(model, inputs), ref))
        for treatment, detector in treated.items():
            for precision in precisions:
                row = Timing('detectors', name, treatment, batch, padded, [], count_parameters(model), width=w,
                             precision=precision,
                             notes=dict(image=f'{image_size[0]}x{image_size[1]}', padded=f'{padded[0]}x{padded[1]}',
                                        uniform_heads=uniform_heads, rel_diff_as_built=rounding[precision],
                                        tolerance=tolerance(precision, numeric, rounding[precision]),
                                        fp32_rel_diff=strict[treatment], fp32_tolerance=strict_bound))
                with torch.no_grad(), autocast(precision, dev):
                    row.notes['rel_diff'] = relative_difference(_features(detector, inputs), ref)
                entries.append((row, detector, inputs, samples))
    return entries


def _prediction_cases(entries, dev: torch.device
                      ) -> Tuple[Dict[str, Callable], Dict[str, StageTimer], Dict[str, list]]:
    """One untimed predict of each entry (its RoI and detection counts into its row's notes), then the
    timed-call closures, stage timers and per-call stage records, by row label."""
    cases, timers, calls = {}, {}, {}
    for row, model, inputs, samples in entries:
        counts, hooks = _roi_counter(model)
        with torch.no_grad(), autocast(row.precision, dev):
            results = model.predict(inputs, samples)
        for hk in hooks:
            hk.remove()
        if 'rois' in counts:
            row.notes['rois'] = counts['rois']
        row.notes['detections'] = sum(len(r.pred_instances) for r in results)
        timer = timers[row.label] = _timer(model, dev)
        calls[row.label] = []
        cases[row.label] = _timed_predict(model, inputs, samples, timer, dev, row.precision, calls[row.label])
    return cases, timers, calls


def _race(built, batch: int, image_size: Tuple[int, int], precisions: Sequence[str], repeats: int, warmup: int,
          dev: torch.device, uniform_heads: bool, numeric: Optional[dict],
          log: Optional[Callable[[str], None]]) -> List[Timing]:
    """One interleaved comparison of every (detector, treatment, precision) at one batch size."""
    started = time.perf_counter()
    entries = _race_entries(built, batch, image_size, precisions, dev, uniform_heads, numeric)
    cases, timers, calls = _prediction_cases(entries, dev)
    if log:
        log(f'detectors, batch {batch} at {image_size[0]}x{image_size[1]} (padded {entries[0][0].input[0]}x'
            f'{entries[0][0].input[1]}): {len(cases)} models, {warmup} warm-up + {repeats} timed rounds')
    separate_stages = dev.type == 'cuda'
    for timer in timers.values():
        timer.enabled = not separate_stages
    with torch.no_grad():
        phases = dict(prepare_s=time.perf_counter() - started)
        times = time_interleaved(cases, repeats, warmup, dev, log, phases=phases)
        if separate_stages:
            for timer in timers.values():
                timer.enabled = True
            time_interleaved(cases, repeats, 0, dev, None)
    rows = []
    for row, _, _, _ in entries:
        row.times = times[row.label]
        row.notes['stages_ms'] = {k: v * 1e3 for k, v in StageTimer.stage_medians(calls[row.label], repeats).items()}
        row.notes['stages_timed'] = 'separate synchronised calls' if separate_stages else 'the timed calls'
        row.notes.update(phases)
        rows.append(row)
    for precision in precisions:  # like with like: the same precision
        group = [r for r in rows if r.precision == precision]
        add_ratios(group, [r.label for r in group if r.width is None])
    return rows


def _timer(model: nn.Module, dev: torch.device) -> StageTimer:
    """The model's :class:`StageTimer`, made once (its wrappers stay on the model)."""
    timer = getattr(model, '_stage_timer', None)
    if timer is None:
        timer = StageTimer(model, dev)
        object.__setattr__(model, '_stage_timer', timer)
    return timer


__all__ = ['PREDICTION_LAYERS', 'StageTimer', 'rexnet_detector_config', 'equalize_heads', 'benchmark_detectors']
