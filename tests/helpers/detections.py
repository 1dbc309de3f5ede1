"""Comparing two models' detections where float rounding may reorder near-equal scores."""
from typing import List, Tuple

import torch


def assert_same_detections(ref, out, score_tol: float = 1e-3) -> List[Tuple[int, int]]:
    """Every detection of ``ref`` has one in ``out`` with the same label, IoU >= 0.99 and a score within
    ``score_tol``, order aside (float rounding may swap near-equal scores). Only detections whose score
    ties the last one kept (the per-image cap decides between them) may be missing. Returns the
    matched ``(ref index, out index)`` pairs."""
    from mmdet.structures.bbox import bbox_overlaps
    iou = bbox_overlaps(ref.bboxes, out.bboxes)
    close = (iou >= 0.99) & (ref.labels[:, None] == out.labels[None, :]) & \
        ((ref.scores[:, None] - out.scores[None, :]).abs() <= score_tol)
    taken = torch.zeros(len(out), dtype=torch.bool)
    cut = float(ref.scores.min())
    pairs = []
    for i in range(len(ref)):
        free = close[i] & ~taken
        if free.any():
            j = int(free.nonzero()[0])
            taken[j] = True
            pairs.append((i, j))
        else:
            assert float(ref.scores[i]) <= cut + score_tol, \
                f'detection {i} (score {float(ref.scores[i]):.4f}, box {ref.bboxes[i].tolist()}) has no match'
    return pairs
