"""Inference speed of ReXNet backbones and detectors beside their MMDetection counterparts.

Every model of a comparison is built in the same process and timed in the same run by
:func:`rexnet_mmdet.utils.timing.time_interleaved`; the figure reported is the median over the
timed calls, and ratios are taken between medians of one run.

- Backbones (the paper's Table 5 setting): ReXNet against MMDetection's MobileNetV2,
  EfficientNet-B0 and ResNet-50, each up to its final feature map (no pooling, no classifier),
  on random 224x224 images at batch 1 and 64.
- Detectors: Faster R-CNN + FPN on ReXNet against the ResNet-50 version of MMDetection
  (``mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py``), random weights, eval mode,
  ``model.predict`` under ``torch.no_grad()`` on one fixed random image, normalised and padded
  by each model's data preprocessor once, before timing.

Every model, ReXNet and baseline alike, gets the same treatments (:mod:`rexnet_mmdet.deploy.treatments`):
"eager" (as built) and "fused+cl" (BatchNorm folded into the convs, channels-last backbone: what
``optimize_for_inference`` does to ReXNet, ``mmcv.cnn.fuse_conv_bn`` to the others), each on a deep
copy with the same weights; optional levers (the backbone in ONNX Runtime or OpenVINO) likewise go to all.
"""
import copy
import os.path as osp
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..deploy.treatments import TREATMENTS, treat_backbone, treat_detector
from ..models.channels import out_channels
from ..models.width_names import width_tag as width_name  # noqa: F401  (speed.width_name, as before)
from ..utils.build import (CONFIG_DIR, build_backbone, build_detector, calibration_image_size, fake_batch,
                           load_config)
from ..utils.timing import check_device, sync, time_interleaved
from .complexity import count_parameters

#: MMDetection backbones to compare with, each up to its final feature map at stride 32:
#: MobileNetV2's and EfficientNet-B0's final 1x1 conv (1280 channels, like ReXNet's
#: ``int(1280 * w)`` final conv, tap 6) and ResNet-50's last stage (2048 channels).
BASELINE_BACKBONES: Dict[str, dict] = {
    'MobileNetV2': dict(type='MobileNetV2', widen_factor=1.0, out_indices=(7,)),
    'EfficientNet-B0': dict(type='EfficientNet', arch='b0', out_indices=(6,)),
    'ResNet-50': dict(type='ResNet', depth=50, out_indices=(3,)),
}
#: ReXNet's tap for the backbone comparison: the final 1x1 conv.
REXNET_FINAL_TAP = 6
#: MMDetection's Faster R-CNN + FPN on ResNet-50, the detectors' reference.
REFERENCE_DETECTOR = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
REFERENCE_NAME = 'ResNet-50'
#: Targets set for the project: ReXNet Faster R-CNN predict time / the fused, channels-last
#: ResNet-50 detector's (:data:`TARGET_REFERENCE`), at most.
DETECTOR_TARGETS: Dict[float, float] = {0.9: 0.70, 2.2: 0.85}
#: The treatments every model gets unless told otherwise (see :mod:`rexnet_mmdet.deploy.treatments`).
DEFAULT_TREATMENTS = ('eager', 'fused+cl')
#: The row the targets are measured against.
TARGET_REFERENCE = f'{REFERENCE_NAME} (fused+cl)'
DEFAULT_BACKBONE_WIDTHS = (0.9, 1.0)
DEFAULT_DETECTOR_WIDTHS = (0.9, 2.2)


@dataclass
class Timing:
    """One timed model.

    Attributes:
        part: ``'backbones'`` or ``'detectors'``.
        name: the model (``'ReXNet x0.9'``, ``'ResNet-50'`` ...).
        mode: ``'eager'`` (as built), ``'optimized'`` (after ``optimize_for_inference``) or
            ``'stock'`` (an MMDetection model as built).
        batch: images per call.
        input: ``(W, H)`` of the images given to the model (after padding, for detectors).
        times: seconds of each timed call.
        params: number of parameters.
        ratios: this model's median over each reference's median (by reference name).
        notes: facts needed to read the row (RoIs, padding, max difference to eager ...).
    """
    part: str
    name: str
    mode: str
    batch: int
    input: Tuple[int, int]
    times: List[float]
    params: int = 0
    width: Optional[float] = None
    ratios: Dict[str, float] = field(default_factory=dict)
    notes: Dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name if self.mode == 'stock' else f'{self.name} ({self.mode})'

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def minimum(self) -> float:
        return min(self.times)

    @property
    def spread(self) -> float:
        """Interquartile range over the median: the run-to-run noise (0 for a single run)."""
        if len(self.times) < 2:
            return 0.0
        q = statistics.quantiles(self.times, n=4, method='inclusive')
        return (q[2] - q[0]) / self.median

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d.update(label=self.label, median_ms=self.median * 1e3, min_ms=self.minimum * 1e3,
                 iqr_over_median=self.spread, times_ms=[t * 1e3 for t in self.times])
        del d['times']
        return d


def _add_ratios(rows: List[Timing], references: Sequence[str]) -> None:
    by_name = {r.label: r for r in rows}
    for row in rows:
        for ref in references:
            if ref in by_name and ref != row.label:
                row.ratios[ref] = row.median / by_name[ref].median


def _max_abs_diff(a, b) -> float:
    if isinstance(a, torch.Tensor):
        return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0
    return max((_max_abs_diff(x, y) for x, y in zip(a, b)), default=0.0)


def benchmark_backbones(widths: Sequence[float] = DEFAULT_BACKBONE_WIDTHS, batches: Sequence[int] = (1, 64),
                        size: int = 224, repeats: Optional[Dict[int, int]] = None,
                        warmup: Optional[Dict[int, int]] = None, device: str = 'cpu',
                        baselines: Sequence[str] = tuple(BASELINE_BACKBONES), optimize: bool = True,
                        block: Optional[Dict[int, int]] = None,
                        log: Optional[Callable[[str], None]] = print,
                        treatments: Optional[Sequence[str]] = None) -> List[Timing]:
    """Time ReXNet backbones against MMDetection's backbones at each batch size.

    Args:
        widths: ReXNet widths.
        batches: batch sizes; each is one interleaved comparison of every model.
        size: side of the square random images.
        repeats / warmup: timed and untimed calls of each model per batch size (``{batch: n}``;
            default 30/3 for batches up to 8, else 3/1).
        block: consecutive calls of one model in each round (``{batch: n}``; default 5 for
            batches up to 8, else 1). Calls in a row keep the model's weights in the CPU caches,
            as a served model's are; one call per turn would time every model from cold caches,
            which penalises small models most.
        device: ``'cpu'`` or ``'cuda'``.
        baselines: names from :data:`BASELINE_BACKBONES`.
        optimize: ``False`` times every model eager only (when ``treatments`` is not given).
        treatments: what every model, ReXNet and baselines alike, is timed with (default
            :data:`DEFAULT_TREATMENTS`); a row's mode names it.
    """
    dev = check_device(device)
    unknown = [b for b in baselines if b not in BASELINE_BACKBONES]
    if unknown:
        raise ValueError(f'unknown baseline backbones {unknown}; choose from {", ".join(BASELINE_BACKBONES)}')
    treatments = _check_treatments(treatments, optimize)
    specs = [(f'ReXNet {width_name(w)}', w, dict(type='ReXNet', widen_factor=w, out_indices=(REXNET_FINAL_TAP,)))
             for w in widths] + [(name, None, BASELINE_BACKBONES[name]) for name in baselines]
    models: Dict[str, Tuple[nn.Module, Timing]] = {}
    for name, w, cfg in specs:
        built = build_backbone(cfg, calibration_size=min(size, 224)).to(dev)
        for treatment in treatments:
            model = treat_backbone(copy.deepcopy(built), treatment)
            row = Timing('backbones', name, treatment, 0, (size, size), [], count_parameters(built), width=w)
            models[row.label] = (model, row)

    rows: List[Timing] = []
    for batch in batches:
        n_rep = (repeats or {}).get(batch, 30 if batch <= 8 else 3)
        n_warm = (warmup or {}).get(batch, 3 if batch <= 8 else 1)
        n_block = (block or {}).get(batch, 5 if batch <= 8 else 1)
        x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch)).to(dev)
        if log:
            log(f'backbones, batch {batch} at {size}x{size}: {len(models)} models, {n_warm} warm-up + '
                f'{n_rep} timed calls each, {n_block} in a row per turn')
        with torch.no_grad():
            cases = {label: (lambda m=model: m(x)) for label, (model, _) in models.items()}
            # Check once that each treated model computes what its eager model does.
            outs = {label: model(x) for label, (model, _) in models.items()}
            times = time_interleaved(cases, n_rep, n_warm, dev, log, block=n_block)
        group = []
        for label, (model, template) in models.items():
            row = copy.deepcopy(template)
            row.batch, row.times = batch, times[label]
            eager = f'{row.name} (eager)'
            if row.mode != 'eager' and eager in outs:
                row.notes['max_abs_diff_vs_eager'] = _max_abs_diff(outs[eager], outs[label])
                row.notes['output_max_abs'] = max(float(o.abs().max()) for o in outs[eager])
            group.append(row)
        # Ratios to each baseline under the same treatment (like with like).
        for row in group:
            for ref in baselines:
                ref_row = next((r for r in group if r.name == ref and r.mode == row.mode), None)
                if ref_row is not None and ref_row is not row:
                    row.ratios[ref] = row.median / ref_row.median
        rows += group
    return rows


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
    proposals), RoI heads (incl. post-processing), or a one-stage detector's head.

    Wraps the stages' methods on the model instance; on CUDA each stage boundary synchronises.
    Call :meth:`begin` before and :meth:`end` after each ``predict``; :attr:`calls` holds one
    ``{stage: seconds}`` per call.
    """

    STAGES = (('backbone', 'backbone', 'forward'), ('neck', 'neck', 'forward'),
              ('rpn', 'rpn_head', 'predict'), ('roi_head', 'roi_head', 'predict'),
              ('head', 'bbox_head', 'predict'))

    def __init__(self, model: nn.Module, device: torch.device = torch.device('cpu')):
        self.device = device
        self.calls: List[Dict[str, float]] = []
        self._current: Dict[str, float] = {}
        for stage, attr, method in self.STAGES:
            module = getattr(model, attr, None)
            if isinstance(module, nn.Module) and hasattr(module, method):
                setattr(module, method, self._wrap(getattr(module, method), stage))

    def _wrap(self, fn: Callable, stage: str) -> Callable:
        def timed(*args, **kwargs):
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
        stages = dict(self._current)
        stages['other'] = max(0.0, total - sum(stages.values()))
        self.calls.append(stages)

    def medians(self, last: int) -> Dict[str, float]:
        """Median seconds per stage over the last ``last`` calls."""
        calls = self.calls[-last:]
        return {k: statistics.median(c.get(k, 0.0) for c in calls) for k in calls[0]} if calls else {}


def _timed_predict(model: nn.Module, inputs: torch.Tensor, samples: list, timer: StageTimer,
                   device: torch.device) -> Callable[[], None]:
    def run() -> None:
        timer.begin()
        start = time.perf_counter()
        model.predict(inputs, samples)
        sync(device)
        timer.end(time.perf_counter() - start)
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


def benchmark_detectors(widths: Sequence[float] = DEFAULT_DETECTOR_WIDTHS,
                        image_size: Tuple[int, int] = (1200, 800), repeats: int = 5, warmup: int = 1,
                        device: str = 'cpu', reference: Optional[str] = REFERENCE_DETECTOR,
                        config_dir: str = CONFIG_DIR, optimize: bool = True,
                        uniform_heads: bool = True,
                        log: Optional[Callable[[str], None]] = print,
                        treatments: Optional[Sequence[str]] = None) -> List[Timing]:
    """Time ``model.predict`` of ReXNet Faster R-CNN + FPN detectors against the ResNet-50 one.

    Args:
        widths: ReXNet widths (see :func:`rexnet_detector_config`).
        image_size: ``(W, H)`` of the random image before the data preprocessor pads it
            (to a multiple of 32: 1200x800 becomes 1216x800).
        repeats / warmup: timed and untimed rounds.
        reference: the config to compare with (``None``: none).
        optimize: ``False`` times every detector eager only (when ``treatments`` is not given).
        treatments: given to every detector's backbone, the reference's included (default
            :data:`DEFAULT_TREATMENTS`); a row's mode names it.
        uniform_heads: zero the heads' last layers (:func:`equalize_heads`) so that every
            detector's RoI head and post-processing do the same work.
    """
    dev = check_device(device)
    treatments = _check_treatments(treatments, optimize)
    entries: List[Tuple[nn.Module, Timing, torch.Tensor, list]] = []
    specs = [(f'ReXNet {width_name(w)}', w, rexnet_detector_config(w, config_dir)) for w in widths]
    if reference:
        specs.append((REFERENCE_NAME if reference == REFERENCE_DETECTOR else osp.basename(reference), None,
                      load_config(reference)))
    batch = fake_batch(1, image_size)
    for name, w, cfg in specs:
        if log:
            log(f'building {name} Faster R-CNN + FPN')
        model = build_detector(cfg, calibration_size=calibration_image_size(image_size)).to(dev).eval()
        if uniform_heads:
            equalize_heads(model)
        with torch.no_grad():
            data = model.data_preprocessor(copy.deepcopy(batch), False)
            eager_feats = model.backbone(data['inputs'])
        inputs, samples = data['inputs'], data['data_samples']
        padded = (int(inputs.shape[-1]), int(inputs.shape[-2]))
        template = Timing('detectors', name, 'eager', 1, padded, [], count_parameters(model), width=w,
                          notes=dict(image=f'{image_size[0]}x{image_size[1]}', padded=f'{padded[0]}x{padded[1]}'))
        for treatment in treatments:
            treated = treat_detector(copy.deepcopy(model), treatment)
            row = copy.deepcopy(template)
            row.mode = treatment
            if treatment != 'eager':
                with torch.no_grad():
                    row.notes['max_abs_diff_vs_eager'] = _max_abs_diff(eager_feats, treated.backbone(inputs))
                row.notes['output_max_abs'] = max(float(f.abs().max()) for f in eager_feats)
            entries.append((treated, row, inputs, samples))
        del model

    cases, timers = {}, {}
    for model, row, inputs, samples in entries:
        counts, hooks = _roi_counter(model)
        with torch.no_grad():
            results = model.predict(inputs, samples)
        for hk in hooks:
            hk.remove()
        if 'rois' in counts:
            row.notes['rois'] = counts['rois']
        row.notes['detections'] = len(results[0].pred_instances)
        row.notes['uniform_heads'] = uniform_heads
        timers[row.label] = StageTimer(model, dev)
        cases[row.label] = _timed_predict(model, inputs, samples, timers[row.label], dev)
    if log:
        log(f'detectors, batch 1 at {image_size[0]}x{image_size[1]} (padded {entries[0][1].input[0]}x'
            f'{entries[0][1].input[1]}): {len(cases)} models, {warmup} warm-up + {repeats} timed rounds')
    with torch.no_grad():
        times = time_interleaved(cases, repeats, warmup, dev, log)
    rows = []
    for _, row, _, _ in entries:
        row.times = times[row.label]
        row.notes['stages_ms'] = {k: v * 1e3 for k, v in timers[row.label].medians(repeats).items()}
        rows.append(row)
    _add_ratios(rows, [r.label for r in rows if r.width is None])
    return rows


def random_rois(n: int, width: int, height: int, smallest: float = 16.0, largest: Optional[float] = None,
                images: int = 1, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``[n, 5]`` RoIs ``(image index, x1, y1, x2, y2)``: sides log-uniform between ``smallest`` and
    ``largest`` pixels (default: the image's longer side), aspect ratios 1:3 to 3:1, centred anywhere
    in a ``width`` x ``height`` image (so some reach past its edges, as unclipped boxes do)."""
    largest = float(largest or max(width, height))
    g = generator or torch.Generator().manual_seed(0)
    cx, cy = torch.rand(n, generator=g) * width, torch.rand(n, generator=g) * height
    low, high = torch.tensor([float(smallest), largest]).log().tolist()
    side = torch.empty(n).uniform_(low, high, generator=g).exp()
    ratio = torch.empty(n).uniform_(-1.1, 1.1, generator=g).exp()
    w, h = side * ratio.sqrt(), side / ratio.sqrt()
    b = torch.randint(0, images, (n,), generator=g).float()
    return torch.stack([b, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)


def benchmark_roi_align(num_rois: int = 1000, image_size: Tuple[int, int] = (1216, 800), channels: int = 256,
                        repeats: int = 20, warmup: int = 3,
                        log: Optional[Callable[[str], None]] = print) -> List[Timing]:
    """Time a Faster R-CNN + FPN's RoI feature extraction with mmcv's RoI Align and the batched one.

    mmdet's ``SingleRoIExtractor`` as the detectors configure it (7x7, adaptive sampling, aligned,
    FPN strides 4-32) maps ``num_rois`` random RoIs (:func:`random_rois`, clipped to the image as
    proposals are) to their levels and pools them from random ``channels``-channel maps of a
    ``image_size`` (W, H) image: with mmcv's layer on NCHW maps (how the eager detector runs it),
    with :class:`~rexnet_mmdet.deploy.roi_align.BatchedRoIAlign` on NCHW maps and on channels-last
    ones (how the treated detectors run it). Rows are interleaved; ``notes['max_abs_diff']`` is the
    largest difference to mmcv's output.
    """
    from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor

    from ..deploy.roi_align import fast_roi_align

    width, height = image_size
    strides = (4, 8, 16, 32)
    reference = SingleRoIExtractor(roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
                                   out_channels=channels, featmap_strides=list(strides)).eval()
    batched = copy.deepcopy(reference)
    fast_roi_align(batched)
    g = torch.Generator().manual_seed(0)
    maps = tuple(torch.randn(1, channels, -(-height // s), -(-width // s), generator=g) for s in strides)
    maps_cl = tuple(m.contiguous(memory_format=torch.channels_last) for m in maps)
    rois = random_rois(num_rois, width, height, generator=g)
    rois[:, 1::2] = rois[:, 1::2].clamp(0, width)
    rois[:, 2::2] = rois[:, 2::2].clamp(0, height)
    specs = [('mmcv RoIAlign', 'NCHW maps', reference, maps), ('batched RoI Align', 'NCHW maps', batched, maps),
             ('batched RoI Align', 'channels-last maps', batched, maps_cl)]
    rows, cases = [], {}
    with torch.no_grad():
        expected = reference(maps, rois)
        for name, mode, extractor, feats in specs:
            row = Timing('roi_align', name, mode, 1, (width, height), [],
                         notes=dict(rois=num_rois, channels=channels,
                                    max_abs_diff=float((extractor(feats, rois) - expected).abs().max())))
            cases[row.label] = (lambda e=extractor, f=feats: e(f, rois))
            rows.append(row)
        if log:
            log(f'RoI Align, {num_rois} RoIs on 4 FPN levels of a {width}x{height} image, {channels} channels: '
                f'{warmup} warm-up + {repeats} timed rounds')
        times = time_interleaved(cases, repeats, warmup, torch.device('cpu'), log)
    for row in rows:
        row.times = times[row.label]
    _add_ratios(rows, [rows[0].label])
    return rows


def target_verdicts(rows: Sequence[Timing]) -> List[str]:
    """Lines stating, for each treated ReXNet detector with a target, its ratio to the fused,
    channels-last ResNet-50 detector's time (:data:`TARGET_REFERENCE`) against the target."""
    lines = []
    for row in rows:
        target = DETECTOR_TARGETS.get(row.width) if row.width is not None else None
        ratio = row.ratios.get(TARGET_REFERENCE)
        if target is None or ratio is None or row.mode == 'eager':
            continue
        verdict = 'meets' if ratio <= target else 'misses'
        lines.append(f'{row.label}: {ratio:.3f}x the {TARGET_REFERENCE} time; target <= {target:g}x: {verdict} it')
    return lines


def _check_treatments(treatments: Optional[Sequence[str]], optimize: bool) -> Tuple[str, ...]:
    chosen = tuple(treatments or (DEFAULT_TREATMENTS if optimize else ('eager',)))
    unknown = [t for t in chosen if t not in TREATMENTS]
    if unknown:
        raise ValueError(f'unknown treatments {unknown}; choose from {", ".join(TREATMENTS)}')
    return chosen


__all__ = ['BASELINE_BACKBONES', 'REFERENCE_DETECTOR', 'REFERENCE_NAME', 'DETECTOR_TARGETS', 'DEFAULT_BACKBONE_WIDTHS',
           'DEFAULT_DETECTOR_WIDTHS', 'PREDICTION_LAYERS', 'Timing', 'StageTimer', 'width_name',
           'benchmark_backbones', 'rexnet_detector_config', 'equalize_heads', 'benchmark_detectors',
           'target_verdicts', 'DEFAULT_TREATMENTS', 'TARGET_REFERENCE', 'random_rois', 'benchmark_roi_align']
