"""SSDLite pieces: anchors with the lowest level reduced to three boxes, and a head that predicts."""
from typing import List

import torch
from mmdet.models.dense_heads import SSDHead
from mmdet.models.task_modules.prior_generators import SSDAnchorGenerator
from mmdet.registry import MODELS, TASK_UTILS


@TASK_UTILS.register_module()
class SSDLiteAnchorGenerator(SSDAnchorGenerator):
    """SSD anchors where the first (highest-resolution) level keeps three boxes per location.

    MobileNet SSDLite detectors put three anchors on their lowest level (a square and the 1:2 and
    2:1 boxes) instead of six; the head on the wide stride-16 expansion is then half the size. This
    is what the ReXNet paper's SSDLite parameter counts (5.0M / 5.7M / 8.4M) imply.

    Takes the arguments of :class:`SSDAnchorGenerator`; the first level's ``ratios`` must be ``[2]``.
    """

    def __init__(self, *args, **kwargs):
        ratios = kwargs.get('ratios', args[1] if len(args) > 1 else None)
        if ratios is None or list(ratios[0]) != [2]:
            raise ValueError(f'SSDLiteAnchorGenerator needs ratios[0] == [2] (three boxes: 1:1, 1:2, 2:1), '
                             f'got {None if ratios is None else list(ratios[0])}')
        super().__init__(*args, **kwargs)

    def gen_base_anchors(self) -> List[torch.Tensor]:
        anchors = super().gen_base_anchors()
        # SSD orders each level as [square, larger square, 1:2, 2:1, ...]: drop the larger square.
        lowest = anchors[0]
        anchors[0] = torch.cat([lowest[:1], lowest[2:]], dim=0)
        return anchors


@MODELS.register_module()
class SSDLiteHead(SSDHead):
    """:class:`SSDHead` that also predicts under MMDetection 3.3.

    MMDetection 3.3's shared prediction path reads ``self.loss_cls``, which ``SSDHead`` never sets
    (its loss is written out inline), so every SSD evaluation fails with "'SSDHead' object has no
    attribute 'loss_cls'" (open-mmlab/mmdetection#11063). Same arguments and weights as ``SSDHead``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # No separate classification loss module: scores are a softmax (use_sigmoid_cls is False).
        self.loss_cls = None
