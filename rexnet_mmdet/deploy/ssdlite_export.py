"""SSD / SSDLite detectors end to end in ONNX: network, box decoding, score filtering and NMS in one graph.

The exported graph computes what MMDetection's ``model.predict`` computes for one image with the
config's ``test_cfg`` (``BaseDenseHead.predict_by_feat`` followed by ``_bbox_post_process``):

1. backbone, neck and head, with every BatchNorm fused into its convolution;
2. softmax over the ``num_classes + 1`` logits of each anchor, background (the last) dropped;
3. per feature level, the ``nms_pre`` highest (anchor, class) scores above ``score_thr``;
4. boxes decoded from the priors of the fixed input size (``DeltaXYWHBBoxCoder``: means, stds,
   the log-ratio clamp, clipping to the input), then divided by the resize factor: boxes are in
   the pixels of the image given to the preprocessing, as ``predict(..., rescale=True)`` returns them;
5. boxes of zero width or height dropped (``min_bbox_size``), per-class NMS with ONNX's own
   ``NonMaxSuppression`` at ``nms.iou_threshold``, the ``max_per_img`` best kept, highest score first.

Inputs: ``input``, float32 ``(1, 3, H, W)``, the image resized to the config's size and normalised
as the data preprocessor does (mean, std, RGB order); ``scale_factor``, float32 ``(2,)``, the
resize factors ``(W / image width, H / image height)``. Outputs: ``boxes`` ``(N, 4)`` as
``x1, y1, x2, y2``, ``scores`` ``(N,)`` and ``labels`` ``(N,)`` (int64), ``N <= max_per_img``.

Any MMDetection detector whose head is an :class:`~mmdet.models.dense_heads.SSDHead` (softmax
scores, ``DeltaXYWHBBoxCoder``) exports: the ReXNet SSDLite configs and MMDetection's
MobileNetV2-SSDLite alike. The graph is written by the TorchScript-based exporter of
the TorchScript-based ``torch.onnx.export`` (:mod:`.torch_onnx`); NMS is emitted by an autograd function's ``symbolic``.
"""
import copy
import json
import os
import os.path as osp
import warnings
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..utils.build import dataset_classes
from .backends import ONNX_OPSET
from .fuse import fuse_batchnorm
from .torch_onnx import export_onnx

WH_RATIO_CLIP = 16 / 1000
INPUT_NAMES = ('input', 'scale_factor')
OUTPUT_NAMES = ('boxes', 'scores', 'labels')


def _check_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError as e:
        raise ImportError('SSDLite export needs onnx: pip install onnx (scripts/setup.sh installs it)') from e


class _NonMaxSuppression(torch.autograd.Function):
    """Per-class NMS: ONNX ``NonMaxSuppression`` in the exported graph, the same computation in PyTorch.

    Takes ``boxes (B, N, 4)`` and ``scores (B, C, N)``; returns ``(M, 3)`` int64 rows of
    ``(batch, class, box)`` indices, each class's kept boxes in decreasing score order. A box of a
    class is a candidate when its score is above ``score_threshold``; it is suppressed when its IoU
    with a kept box of the same class is above ``iou_threshold``.
    """

    @staticmethod
    def forward(ctx, boxes: torch.Tensor, scores: torch.Tensor, max_per_class: int, iou_threshold: float,
                score_threshold: float) -> torch.Tensor:
        from mmcv.ops import nms

        rows = []
        for b in range(scores.shape[0]):
            classes, index = torch.nonzero(scores[b] > score_threshold, as_tuple=True)
            if index.numel() == 0:
                continue
            candidates = boxes[b, index]
            # One NMS call for all classes: each class's boxes shifted to a region of their own.
            shift = (candidates.max() - candidates.min() + 1) * classes.to(candidates.dtype)
            _, keep = nms(candidates + shift[:, None], scores[b, classes, index], iou_threshold)
            classes, index = classes[keep], index[keep]
            # The first max_per_class kept boxes of each class (keep is in decreasing score order).
            rank = torch.zeros_like(classes)
            for c in classes.unique():
                same = classes == c
                rank[same] = torch.arange(int(same.sum()))
            chosen = rank < max_per_class
            classes, index = classes[chosen], index[chosen]
            rows.append(torch.stack([torch.full_like(index, b), classes, index], dim=1))
        if not rows:
            return scores.new_zeros((0, 3), dtype=torch.long)
        return torch.cat(rows).long()

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class: int, iou_threshold: float, score_threshold: float):
        return g.op('NonMaxSuppression', boxes, scores,
                    g.op('Constant', value_t=torch.tensor([max_per_class], dtype=torch.long)),
                    g.op('Constant', value_t=torch.tensor([iou_threshold], dtype=torch.float)),
                    g.op('Constant', value_t=torch.tensor([score_threshold], dtype=torch.float)),
                    center_point_box_i=0)


def _test_settings(test_cfg: Any) -> Dict[str, Any]:
    """The SSD ``test_cfg`` values the graph uses, with MMDetection's defaults, checked."""
    cfg = dict(test_cfg or {})
    nms_cfg = dict(cfg.get('nms') or {})
    if not nms_cfg:
        raise ValueError('test_cfg has no nms: the exported graph always applies NMS; set for example '
                         "test_cfg.nms=dict(type='nms', iou_threshold=0.45)")
    if nms_cfg.get('type', 'nms') != 'nms' or nms_cfg.get('class_agnostic', False):
        raise ValueError(f"only per-class NMS (type='nms', not class_agnostic) exports, got {nms_cfg}")
    settings = dict(nms_pre=int(cfg.get('nms_pre', -1)), score_thr=float(cfg.get('score_thr', 0.0)),
                    iou_threshold=float(nms_cfg.get('iou_threshold', 0.5)),
                    min_bbox_size=cfg.get('min_bbox_size', -1), max_per_img=int(cfg.get('max_per_img', 100)))
    if settings['max_per_img'] < 1:
        raise ValueError(f"test_cfg.max_per_img must be at least 1, got {settings['max_per_img']}")
    return settings


class SSDLiteExportModel(nn.Module):
    """A detector's image-to-detections computation for one image of a fixed size, written for export.

    Args:
        detector: an MMDetection single-stage detector with an ``SSDHead``-like head, in eval mode.
            It is deep-copied; the copy's BatchNorms are fused into its convolutions.
        input_size: ``(H, W)`` of the network input (the config's resize target, 320x320 for SSDLite).
        test_cfg: score threshold, ``nms_pre``, NMS and ``max_per_img``; default: the head's own.
    """

    def __init__(self, detector: nn.Module, input_size: Tuple[int, int] = (320, 320),
                 test_cfg: Optional[dict] = None):
        super().__init__()
        head = detector.bbox_head
        coder = head.bbox_coder
        if getattr(head, 'use_sigmoid_cls', False):
            raise ValueError(f'{type(head).__name__} uses sigmoid scores; only softmax SSD heads export here')
        if type(coder).__name__ != 'DeltaXYWHBBoxCoder' or getattr(coder, 'add_ctr_clamp', False):
            raise ValueError(f'{type(head).__name__} decodes boxes with {type(coder).__name__}'
                             f'{" (add_ctr_clamp)" if getattr(coder, "add_ctr_clamp", False) else ""}; '
                             f'the export supports DeltaXYWHBBoxCoder without add_ctr_clamp')
        self.settings = _test_settings(head.test_cfg if test_cfg is None else test_cfg)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.num_classes = int(head.num_classes)

        model = copy.deepcopy(detector).cpu().eval()
        fuse_batchnorm(model)
        self.backbone = model.backbone
        self.neck = model.neck if getattr(model, 'with_neck', False) else None
        self.head = model.bbox_head

        # The priors of the fixed input size: one (x1, y1, x2, y2) row per anchor, in the order of
        # the head's flattened outputs (levels, then rows, columns, anchors of a location).
        with torch.no_grad():
            feats = self._features(torch.zeros(1, 3, *self.input_size))
            sizes = [f.shape[-2:] for f in feats[0]]
            priors = head.prior_generator.grid_priors(sizes, device='cpu')
        self.level_sizes = [int(p.shape[0]) for p in priors]
        self.register_buffer('priors', torch.cat(priors).float(), persistent=False)
        self.register_buffer('means', torch.tensor(coder.means, dtype=torch.float32), persistent=False)
        self.register_buffer('stds', torch.tensor(coder.stds, dtype=torch.float32), persistent=False)
        # DeltaXYWHBBoxCoder.decode's default wh_ratio_clip (the heads never pass another).
        self.max_log_ratio = float(abs(np.log(WH_RATIO_CLIP)))
        self.clip_border = bool(coder.clip_border)

    def _features(self, x: torch.Tensor):
        feats = self.backbone(x)
        if self.neck is not None:
            feats = self.neck(feats)
        return self.head(feats)

    def _decode(self, deltas: torch.Tensor) -> torch.Tensor:
        d = deltas * self.stds + self.means
        centres = (self.priors[:, :2] + self.priors[:, 2:]) * 0.5
        sizes = self.priors[:, 2:] - self.priors[:, :2]
        centres = centres + sizes * d[:, :2]
        sizes = sizes * d[:, 2:].clamp(min=-self.max_log_ratio, max=self.max_log_ratio).exp()
        boxes = torch.cat([centres - sizes * 0.5, centres + sizes * 0.5], dim=1)
        if self.clip_border:
            h, w = self.input_size
            upper = boxes.new_tensor([w, h, w, h])
            boxes = torch.min(boxes.clamp(min=0), upper)
        return boxes

    def forward(self, x: torch.Tensor, scale_factor: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """``x (1, 3, H, W)`` normalised, ``scale_factor (2,)``: boxes ``(N, 4)``, scores ``(N,)``, labels ``(N,)``."""
        s = self.settings
        cls_scores, bbox_preds = self._features(x)
        num_classes = self.num_classes
        scores, deltas = [], []
        for cls_score, bbox_pred in zip(cls_scores, bbox_preds):
            logits = cls_score[0].permute(1, 2, 0).reshape(-1, num_classes + 1)
            level = F.softmax(logits, dim=-1)[:, :num_classes]
            pairs = level.reshape(-1)
            if 0 < s['nms_pre'] < pairs.shape[0]:
                # Only the nms_pre best (anchor, class) pairs above score_thr stay candidates: the
                # others are zeroed, which the NMS score threshold (>= 0) then drops. The threshold
                # comes first, so that TopK sorts the few pairs above it rather than the whole level.
                above = torch.nonzero(pairs > s['score_thr']).squeeze(1)
                candidates = pairs[above]
                k = torch.clamp(torch._shape_as_tensor(candidates)[0], max=s['nms_pre'])
                top, index = candidates.topk(k)
                pairs = torch.zeros_like(pairs).scatter(0, above[index], top)
                level = pairs.reshape(-1, num_classes)
            scores.append(level)
            deltas.append(bbox_pred[0].permute(1, 2, 0).reshape(-1, 4))
        scores = torch.cat(scores)
        boxes = self._decode(torch.cat(deltas))
        # To the pixels of the image before the resize, as predict(rescale=True) does.
        boxes = boxes / scale_factor.repeat(2)
        if s['min_bbox_size'] is not None and s['min_bbox_size'] >= 0:
            size = float(s['min_bbox_size'])
            valid = ((boxes[:, 2] - boxes[:, 0]) > size) & ((boxes[:, 3] - boxes[:, 1]) > size)
            scores = scores * valid.unsqueeze(1).to(scores.dtype)
        # A score of exactly 0 is never a candidate, even with score_thr 0 (MMDetection keeps > score_thr).
        selected = _NonMaxSuppression.apply(boxes.unsqueeze(0), scores.t().unsqueeze(0), s['max_per_img'],
                                            s['iou_threshold'], s['score_thr'])
        labels, index = selected[:, 1], selected[:, 2]
        kept_scores = scores.reshape(-1)[index * num_classes + labels]
        order = kept_scores.argsort(descending=True)[:s['max_per_img']]
        return boxes[index[order]], kept_scores[order], labels[order]


def preprocessing(detector: nn.Module, input_size: Tuple[int, int]) -> Dict[str, Any]:
    """What the detector's data preprocessor does to an image, as the export's metadata records it:
    ``input_size (H, W)``, ``mean``, ``std`` (RGB order when ``bgr_to_rgb``), ``bgr_to_rgb``, and the
    class names of ``detector.dataset_meta``, else of the dataset of ``detector.cfg`` (``None`` when
    neither has them)."""
    pre = detector.data_preprocessor
    if getattr(pre, '_enable_normalize', False):
        mean = [float(v) for v in pre.mean.flatten()]
        std = [float(v) for v in pre.std.flatten()]
    else:
        mean, std = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    meta = getattr(detector, 'dataset_meta', None) or {}
    classes = meta.get('classes')
    if classes is None and getattr(detector, 'cfg', None) is not None:
        classes = dataset_classes(detector.cfg)
    return dict(input_size=[int(input_size[0]), int(input_size[1])], mean=mean, std=std,
                bgr_to_rgb=bool(getattr(pre, '_channel_conversion', False)),
                classes=None if classes is None else [str(c) for c in classes])


def export_ssdlite(detector: nn.Module, path: str, input_size: Tuple[int, int] = (320, 320),
                   test_cfg: Optional[dict] = None, opset: int = ONNX_OPSET, check: bool = True) -> str:
    """Write ``detector`` (an SSD / SSDLite detector, eval mode) to ``path`` as one ONNX graph.

    See the module's docstring for what the graph computes, its inputs and outputs. ``test_cfg``
    replaces the head's own post-processing settings; ``opset`` must be 11 or more. The file's
    metadata records the preprocessing (:func:`preprocessing`), which
    :class:`rexnet_mmdet.deploy.runtimes.Detector` reads.
    """
    _check_onnx()
    if detector.training:
        raise ValueError('export the detector in eval mode (model.eval()): BatchNorm must use its running '
                         'statistics')
    if opset < 11:
        raise ValueError(f'opset {opset} is too old: NonMaxSuppression with these inputs needs 11 or more '
                         f'(default {ONNX_OPSET})')
    wrapper = SSDLiteExportModel(detector, input_size, test_cfg).eval()
    x = torch.zeros(1, 3, *wrapper.input_size)
    scale = torch.ones(2)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about every Python-level shape decision (fixed input size) and about the
        # PyTorch NMS inside _NonMaxSuppression, whose result the graph does not use.
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        export_onnx(wrapper, (x, scale), path, opset_version=opset, input_names=list(INPUT_NAMES),
                    output_names=list(OUTPUT_NAMES), dynamic_axes={name: {0: 'detections'} for name in OUTPUT_NAMES})
    import onnx
    model = onnx.load(path)
    for key, value in preprocessing(detector, wrapper.input_size).items():
        model.metadata_props.add(key=key, value=json.dumps(value))
    onnx.save(model, path)
    if check:
        onnx.checker.check_model(model)
    return path


__all__ = ['INPUT_NAMES', 'OUTPUT_NAMES', 'SSDLiteExportModel', 'preprocessing', 'export_ssdlite']
