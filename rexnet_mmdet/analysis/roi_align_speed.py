"""mmcv's RoI Align against the batched one (:mod:`rexnet_mmdet.deploy.roi_align`), as a Faster R-CNN + FPN
runs it: random RoIs (:func:`random_rois`) on random FPN maps, timed interleaved."""
import copy
from typing import Callable, List, Optional, Tuple

import torch

from ..utils.timing import time_interleaved
from .speed import Timing, add_ratios


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
    add_ratios(rows, [rows[0].label])
    return rows


__all__ = ['random_rois', 'benchmark_roi_align']
