"""What the speed comparisons share: the models compared, the timed row (:class:`Timing`) and its ratios.

Every model of a comparison is built in the same process and timed in the same run by
:func:`rexnet_mmdet.utils.timing.time_interleaved`; the figure reported is the median over the
timed calls, and ratios are taken between medians of one run. The comparisons themselves:

- :mod:`.backbone_speed`: ReXNet against MMDetection's MobileNetV2, EfficientNet-B0 and ResNet-50
  (and timm's ReXNet where timm is installed), each up to its final feature map.
- :mod:`.detector_speed`: Faster R-CNN + FPN on ReXNet against MMDetection's ResNet-50 version,
  ``model.predict`` with a stage-by-stage split.
- :mod:`.roi_align_speed`: mmcv's RoI Align against the batched one.
- :mod:`.train_speed`: images per second and peak memory of training steps.

Every model, ReXNet and baseline alike, gets the same treatments (:mod:`rexnet_mmdet.deploy.treatments`)
and the same precision (:mod:`.precision`), each on a deep copy with the same weights.
"""
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from ..deploy.treatments import TREATMENTS, treatment_unavailable
from .precision import usable_precisions
from ..models.width_names import width_tag as width_name  # noqa: F401  (speed.width_name, as before)

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
#: The treatments every model gets unless told otherwise (see :mod:`rexnet_mmdet.deploy.treatments`).
DEFAULT_TREATMENTS = ('eager', 'fused+cl')
DEFAULT_BACKBONE_WIDTHS = (0.9, 1.0)
DEFAULT_DETECTOR_WIDTHS = (0.9, 2.2)


@dataclass
class Timing:
    """One timed model.

    Attributes:
        part: ``'backbones'``, ``'detectors'`` or ``'roi_align'``.
        name: the model (``'ReXNet x0.9'``, ``'ResNet-50'`` ...).
        mode: the treatment (a key of :data:`~rexnet_mmdet.deploy.treatments.TREATMENTS`), or for
            the RoI Align rows the map layout.
        batch: images per call.
        input: ``(W, H)`` of the images given to the model (after padding, for detectors).
        times: seconds of each timed call.
        params: number of parameters.
        ratios: this model's median over each reference's median (by reference label).
        notes: facts needed to read the row (RoIs, padding, difference to the reference ...).
        precision: ``'fp32'``, ``'fp16'`` or ``'bf16'`` (see :mod:`.precision`).
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
    precision: str = 'fp32'

    @property
    def label(self) -> str:
        """``'ReXNet x0.9 (fused+cl)'``; the precision is named when it is not fp32."""
        if self.mode == 'stock':
            return self.name
        return f'{self.name} ({self.mode})' if self.precision == 'fp32' else \
            f'{self.name} ({self.mode}, {self.precision})'

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


def add_ratios(rows: List[Timing], references: Sequence[str]) -> None:
    """Give every row its median over the median of each reference row (by label) of ``rows``."""
    by_name = {r.label: r for r in rows}
    for row in rows:
        for ref in references:
            if ref in by_name and ref != row.label:
                row.ratios[ref] = row.median / by_name[ref].median


def check_treatments(treatments: Optional[Sequence[str]], optimize: bool) -> Tuple[str, ...]:
    """The treatments asked for (default :data:`DEFAULT_TREATMENTS`, or eager only when not
    ``optimize``), failing clearly on an unknown one."""
    chosen = tuple(treatments or (DEFAULT_TREATMENTS if optimize else ('eager',)))
    unknown = [t for t in chosen if t not in TREATMENTS]
    if unknown:
        raise ValueError(f'unknown treatments {unknown}; choose from {", ".join(TREATMENTS)}')
    return chosen


def runnable_treatments(treatments: Sequence[str], device: torch.device, skipped: List[str]) -> Tuple[str, ...]:
    """The treatments that run on ``device``; a line in ``skipped`` for each other, saying why.
    Fails clearly when none is left."""
    out = []
    for t in treatments:
        reason = treatment_unavailable(t, device)
        if reason:
            skipped.append(f'treatment {t}: {reason}')
        else:
            out.append(t)
    if not out:
        raise ValueError(f'none of the treatments {list(treatments)} runs on {device.type}: {"; ".join(skipped)}; '
                         f'add one that does (eager, fused+cl)')
    return tuple(out)


def runnable_precisions(precisions: Sequence[str], device: torch.device, skipped: List[str]) -> Tuple[str, ...]:
    """The precisions that run on ``device``; a line in ``skipped`` for each other, saying why.
    Fails clearly when none is left."""
    usable = usable_precisions(precisions, device)
    reasons = [f'precision {p}: {why}' for p, why in usable.items() if why]
    skipped += reasons
    out = tuple(p for p, why in usable.items() if not why)
    if not out:
        raise ValueError(f'none of the precisions {list(precisions)} runs on {device.type}: {"; ".join(reasons)}')
    return out


__all__ = ['BASELINE_BACKBONES', 'REXNET_FINAL_TAP', 'REFERENCE_DETECTOR', 'REFERENCE_NAME', 'DEFAULT_TREATMENTS',
           'DEFAULT_BACKBONE_WIDTHS', 'DEFAULT_DETECTOR_WIDTHS', 'width_name', 'Timing', 'add_ratios',
           'check_treatments', 'runnable_treatments', 'runnable_precisions']
