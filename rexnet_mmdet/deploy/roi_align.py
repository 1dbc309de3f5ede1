"""RoI Align for CPU inference: mmcv's numbers, in batched tensor operations on any layout.

mmcv's CPU RoIAlign walks every RoI, channel and sample point in one thread, reading the feature
map as NCHW: in a Faster R-CNN + FPN on a CPU it is a large share of ``predict``, whatever the
backbone. It also misreads channels-last maps (it assumes NCHW strides), which is what a
channels-last neck hands it.

Each output bin is a weighted sum of the map positions its sample points interpolate from. The
bilinear weights factor into a row part and a column part, and so does mmcv's rule that a sample
outside ``[-1, H] x [-1, W]`` counts zero: summed over the bin's sample rows (divided by their
count) they give each row of a small band its weight, and likewise for columns. A bin is then the
sum, over the band's rows x columns, of row weight x column weight x the map's channel vector at
that position. All bins of all RoIs run as one ``embedding_bag`` (sum mode, per-position
weights) over the map viewed as one row of channels per position (NHWC: contiguous, no copy for a
channels-last map): a multithreaded kernel that reads each position's channels as one vector.
RoIs are grouped by their sample grid, so that the bands of a group pad little. The arithmetic
differs from mmcv's only in summation order (outputs agree to float32 rounding:
``tests/deploy/test_roi_align.py``).

:func:`fast_roi_align` swaps the layer into every RoI extractor of a detector; it keeps mmcv's
layer for what it does not cover (max pooling, gradients, other devices and dtypes).
"""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

#: Upper bound on the (position, weight) pairs built at once (a chunk of RoIs).
CHUNK_PAIRS = 1 << 22


def _axis_samples(start: torch.Tensor, length: torch.Tensor, pooled: int, size: int,
                  grid: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The sample rows (or columns) of every RoI along one axis, as mmcv computes them.

    Args:
        start, length: ``[R]`` the RoIs' start and extent on this axis, in feature-map units.
        pooled: output bins on this axis; ``size``: the map's extent; ``grid``: ``[R]`` samples per bin.

    Returns ``(low, high, w_low, w_high)``, each ``[R, pooled, G]``: the two rows each sample
    interpolates between and their weights (zero for a sample outside the map or past the RoI's
    grid, divided by the grid).
    """
    dtype = start.dtype
    g_max = max(int(grid.max()), 1)
    bins = length / pooled
    i = torch.arange(pooled, dtype=dtype).view(1, -1, 1)
    s = torch.arange(g_max, dtype=dtype).view(1, 1, -1)
    grid_f = grid.to(dtype).clamp(min=1).view(-1, 1, 1)
    # Same expression and order as mmcv: start + i * bin + (s + 0.5) * bin / grid.
    pos = start.view(-1, 1, 1) + i * bins.view(-1, 1, 1) + (s + 0.5) * bins.view(-1, 1, 1) / grid_f
    valid = (pos >= -1.0) & (pos <= size) & (s < grid.view(-1, 1, 1))
    pos = pos.clamp(min=0)
    low = pos.long()
    edge = low >= size - 1
    low = torch.where(edge, torch.full_like(low, size - 1), low)
    high = torch.where(edge, low, low + 1)
    pos = torch.where(edge, low.to(dtype), pos)
    frac = pos - low.to(dtype)
    keep = valid.to(dtype) / grid_f
    return low, high, (1.0 - frac) * keep, frac * keep


def _bands(low, high, w_low, w_high) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per RoI and bin, the first row its samples touch (``[R, pooled]``) and the weights of rows
    ``first .. first + B - 1`` (``[R, pooled, B]``, B the widest band)."""
    far = torch.iinfo(low.dtype).max
    valid = (w_low + w_high) > 0
    first = torch.where(valid, low, torch.full_like(low, far)).amin(2)
    first = torch.where(first == far, torch.zeros_like(first), first)
    last = torch.where(valid, high, torch.full_like(high, -1)).amax(2)
    band = max(int((last - first + 1).max()), 1)
    weights = w_low.new_zeros(*low.shape[:2], band)
    shift = first.unsqueeze(2)
    weights.scatter_add_(2, (low - shift).clamp(0, band - 1), w_low)
    weights.scatter_add_(2, (high - shift).clamp(0, band - 1), w_high)
    return first, weights


def roi_align_avg(feats: torch.Tensor, rois: torch.Tensor, output_size: Tuple[int, int],
                  spatial_scale: float, sampling_ratio: int = 0, aligned: bool = True) -> torch.Tensor:
    """mmcv's ``roi_align(..., pool_mode='avg')`` forward, batched.

    Args:
        feats: ``[N, C, H, W]`` in any memory layout (channels-last is read without a copy).
        rois: ``[R, 5]`` rows of ``(batch index, x1, y1, x2, y2)`` in image coordinates.
        output_size: ``(out_h, out_w)``; ``spatial_scale``: the map's scale (1 / stride);
        sampling_ratio: samples per bin and axis, ``0`` for ``ceil(roi extent / bins)``;
        aligned: shift by half a pixel (mmdet's default), as mmcv does.

    Returns ``[R, C, out_h, out_w]``, contiguous.
    """
    n, c, h, w = feats.shape
    ph, pw = int(output_size[0]), int(output_size[1])
    r = rois.shape[0]
    out = feats.new_zeros(r, ph, pw, c)
    if r == 0 or c == 0:
        return out.permute(0, 3, 1, 2).contiguous()
    table = feats.permute(0, 2, 3, 1).contiguous().view(n * h * w, c)  # no copy when channels-last
    rois = rois.to(feats.dtype)
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (rois[:, k] * spatial_scale - offset for k in range(1, 5))
    rw, rh = x2 - x1, y2 - y1
    if aligned:
        if not bool((rw >= 0).all() and (rh >= 0).all()):
            raise ValueError('RoI Align: a RoI has x2 < x1 or y2 < y1 (negative size) or a NaN coordinate')
    else:
        rw, rh = rw.clamp(min=1.0), rh.clamp(min=1.0)
    if sampling_ratio > 0:
        gy = gx = torch.full((r,), int(sampling_ratio), dtype=torch.long)
    else:
        gy, gx = torch.ceil(rh / ph).long(), torch.ceil(rw / pw).long()
    batch = rois[:, 0].long()
    # RoIs with the same sample grid have bands of about the same width: one group each.
    key = gy * (int(gx.max()) + 1) + gx
    order = torch.argsort(key)
    groups = torch.unique_consecutive(key[order], return_counts=True)[1].tolist()
    start = 0
    for count in groups:
        group = order[start:start + count]
        start += count
        first_y, weight_y = _bands(*_axis_samples(y1[group], rh[group], ph, h, gy[group]))
        first_x, weight_x = _bands(*_axis_samples(x1[group], rw[group], pw, w, gx[group]))
        by, bx = weight_y.shape[2], weight_x.shape[2]
        rows = (first_y.unsqueeze(2) + torch.arange(by)).clamp(max=h - 1)       # [g, ph, by]
        cols = (first_x.unsqueeze(2) + torch.arange(bx)).clamp(max=w - 1)       # [g, pw, bx]
        step = max(1, CHUNK_PAIRS // (ph * pw * by * bx))
        for k in range(0, count, step):
            part = slice(k, k + step)
            where = ((batch[group[part]].view(-1, 1, 1, 1, 1) * h + rows[part].view(-1, ph, 1, by, 1)) * w
                     + cols[part].view(-1, 1, pw, 1, bx))
            weight = weight_y[part].view(-1, ph, 1, by, 1) * weight_x[part].view(-1, 1, pw, 1, bx)
            pooled = F.embedding_bag(where.reshape(-1, by * bx), table,
                                     per_sample_weights=weight.reshape(-1, by * bx), mode='sum')
            out[group[part]] = pooled.view(-1, ph, pw, c)
    return out.permute(0, 3, 1, 2).contiguous()


class BatchedRoIAlign(nn.Module):
    """A drop-in for ``mmcv.ops.RoIAlign`` at inference on CPU (see the module docstring).

    Average pooling on CPU without gradients runs :func:`roi_align_avg`; anything else (max
    pooling, a tensor that needs gradients, another device) runs the wrapped mmcv layer.
    """

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer
        self.output_size = tuple(layer.output_size)
        self.spatial_scale = float(layer.spatial_scale)
        self.sampling_ratio = int(layer.sampling_ratio)
        self.aligned = bool(layer.aligned)
        self.pool_mode = layer.pool_mode

    def forward(self, feats: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        batched = (self.pool_mode == 'avg' and feats.device.type == 'cpu' and feats.dtype == torch.float32
                   and not (torch.is_grad_enabled() and (feats.requires_grad or rois.requires_grad)))
        if not batched:
            # mmcv's kernels read both through raw pointers: NCHW and (R, 5) rows, whatever the strides.
            return self.layer(feats.contiguous(), rois.contiguous())
        return roi_align_avg(feats, rois, self.output_size, self.spatial_scale, self.sampling_ratio,
                             self.aligned)

    def extra_repr(self) -> str:
        return (f'output_size={self.output_size}, spatial_scale={self.spatial_scale}, '
                f'sampling_ratio={self.sampling_ratio}, aligned={self.aligned}, pool_mode={self.pool_mode!r}')


def fast_roi_align(model: nn.Module) -> int:
    """Replace every ``mmcv.ops.RoIAlign`` in ``model``'s RoI extractors by :class:`BatchedRoIAlign`,
    in place. Returns how many were replaced."""
    from mmcv.ops import RoIAlign

    replaced = 0
    for parent in list(model.modules()):
        layers = getattr(parent, 'roi_layers', None)
        if isinstance(layers, nn.ModuleList):
            for k, layer in enumerate(layers):
                if type(layer) is RoIAlign:
                    layers[k] = BatchedRoIAlign(layer)
                    replaced += 1
    return replaced
