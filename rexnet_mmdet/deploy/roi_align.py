"""RoI Align for CPU inference: mmcv's numbers, in batched tensor operations on any layout.

mmcv's CPU RoIAlign walks every RoI, channel and sample point in one thread, reading the feature
map as NCHW: in a Faster R-CNN + FPN at 1216x800 it takes about a quarter of ``predict`` on a
2-core CPU, the same for every backbone. It also misreads channels-last maps (it assumes NCHW
strides), which is what a channels-last neck hands it.

Bilinear RoI Align is separable. For one RoI, the average over a bin's sample points of the
bilinearly interpolated feature is ``sum_k sum_l Ay[i, k] * F[y0 + k, x0 + l, :] * Ax[j, l]``, where
``Ay`` (pooled rows x window rows) holds each row's bilinear weight summed over the bin's sample
rows (divided by their count) and ``Ax`` the same for columns; mmcv's rule that a sample outside
``[-1, H] x [-1, W]`` counts zero is a product of a row and a column rule too. So each RoI's output
is two small matrix products with the window of the map it covers: the windows are gathered from
the map in NHWC order (each position's channels contiguous), a chunk of RoIs at a time, and the
products run batched. The arithmetic differs from mmcv's only in summation order (outputs agree to
float32 rounding: ``tests/deploy/test_roi_align.py``).

:func:`fast_roi_align` swaps the layer into every RoI extractor of a detector; it keeps mmcv's
layer for what it does not cover (max pooling, gradients, other devices).
"""
from typing import Tuple

import torch
import torch.nn as nn

#: Upper bound on the floats of gathered windows held at once (a chunk of RoIs).
CHUNK_FLOATS = 1 << 21


def _axis_windows(start: torch.Tensor, length: torch.Tensor, pooled: int, size: int,
                  grid: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                               torch.Tensor, torch.Tensor]:
    """Sample rows (or columns) of every RoI along one axis, as mmcv computes them.

    Args:
        start, length: ``[R]`` the RoIs' start and extent on this axis, in feature-map units.
        pooled: output bins on this axis; ``size``: the map's extent; ``grid``: ``[R]`` samples per bin.

    Returns ``(low, high, w_low, w_high, first)``: ``[R, pooled, G]`` the two rows each sample
    interpolates between and their weights (zero for a sample outside the map or past the RoI's
    grid, divided by the grid), and ``[R]`` the first row any sample of the RoI touches.
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
    w_low, w_high = (1.0 - frac) * keep, frac * keep
    far = torch.iinfo(low.dtype).max
    first = torch.where(valid, low, torch.full_like(low, far)).flatten(1).amin(1)
    first = torch.where(first == far, torch.zeros_like(first), first)
    return low, high, w_low, w_high, first


def _axis_matrix(low, high, w_low, w_high, first, window: int) -> torch.Tensor:
    """``[R, pooled, window]``: each bin's summed sample weight on rows ``first .. first + window - 1``."""
    r, pooled, _ = low.shape
    mat = w_low.new_zeros(r, pooled, window)
    shift = first.view(-1, 1, 1)
    mat.scatter_add_(2, (low - shift).clamp(0, window - 1), w_low)
    mat.scatter_add_(2, (high - shift).clamp(0, window - 1), w_high)
    return mat


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
    dtype = feats.dtype
    flat = feats.permute(0, 2, 3, 1).contiguous().view(n * h * w, c)  # no copy when channels-last
    rois = rois.to(dtype)
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (rois[:, k] * spatial_scale - offset for k in range(1, 5))
    rw, rh = x2 - x1, y2 - y1
    if aligned:
        if bool((rw < 0).any() or (rh < 0).any()):
            raise ValueError('RoI Align: a RoI has x2 < x1 or y2 < y1 (negative size)')
    else:
        rw, rh = rw.clamp(min=1.0), rh.clamp(min=1.0)
    if sampling_ratio > 0:
        gy = gx = torch.full((r,), int(sampling_ratio), dtype=torch.long)
    else:
        gy, gx = torch.ceil(rh / ph).long(), torch.ceil(rw / pw).long()
    ys = _axis_windows(y1, rh, ph, h, gy)
    xs = _axis_windows(x1, rw, pw, w, gx)
    # Window extents: the rows (columns) a RoI's samples touch.
    span_y = (ys[1].flatten(1).amax(1) - ys[4] + 1).clamp(min=1)
    span_x = (xs[1].flatten(1).amax(1) - xs[4] + 1).clamp(min=1)
    batch = rois[:, 0].long()
    order = torch.argsort(span_y * span_x)
    sizes_y, sizes_x = span_y[order].tolist(), span_x[order].tolist()
    start = 0
    while start < r:
        # As many RoIs (of similar window size, by the sort) as fit CHUNK_FLOATS.
        stop, ky, kx = start + 1, sizes_y[start], sizes_x[start]
        while stop < r:
            ky2, kx2 = max(ky, sizes_y[stop]), max(kx, sizes_x[stop])
            if (stop - start + 1) * ky2 * kx2 * c > CHUNK_FLOATS:
                break
            ky, kx, stop = ky2, kx2, stop + 1
        idx = order[start:stop]
        ay = _axis_matrix(*(t[idx] for t in ys), ky)
        ax = _axis_matrix(*(t[idx] for t in xs), kx)
        rows = (ys[4][idx].view(-1, 1) + torch.arange(ky)).clamp(max=h - 1)
        cols = (xs[4][idx].view(-1, 1) + torch.arange(kx)).clamp(max=w - 1)
        where = (batch[idx].view(-1, 1, 1) * h + rows.view(-1, ky, 1)) * w + cols.view(-1, 1, kx)
        windows = flat.index_select(0, where.flatten()).view(-1, ky, kx * c)
        part = torch.bmm(ay, windows).view(-1, ph, kx, c)          # rows pooled
        out[idx] = torch.einsum("rjl,rilc->rijc", ax, part)          # columns pooled: [r, ph, pw, c]
        start = stop
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
            return self.layer(feats.contiguous(), rois)  # mmcv reads NCHW whatever the strides
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
