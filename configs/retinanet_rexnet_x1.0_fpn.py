# RetinaNet + FPN on ReXNet x1.0: MMDetection's RetinaNet R50 recipe (1x schedule, 1333x800), with
# ReXNet in place of ResNet-50. Width 1.0: published ImageNet weights, and the same backbone as
# faster_rcnn_rexnet_x1.0_fpn.py, so the one-stage and two-stage detectors compare directly.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
# The channel rule, imported by the config itself (after `_base_`, so mmengine parses this file as
# an ordinary config); custom_imports keeps the registration in the dumped config of a run.
from rexnet_mmdet import out_channels  # noqa: E402

custom_imports = dict(imports=['rexnet_mmdet'], allow_failed_imports=False)
# The drop-in guards (README "ReXNet in your own detector"): strides, channels and input normalisation
# checked before the first step, one-image batches on running BatchNorm statistics.
default_hooks = dict(rexnet_guard=dict(type='ReXNetGuardHook'))

model = dict(
    backbone=dict(
        _delete_=True,
        type='ReXNet',
        widen_factor=1.0,
        # ResNet's (0, 1, 2, 3) = C2-C5 is (1, 2, 3, 5) here: blocks 2, 4, 10, 15 (strides 4-32).
        out_indices=(1, 2, 3, 5),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/rwightman/pytorch-image-models/releases/download/'
            'v0.1-rexnet/rexnetv1_100-1b4dddf4.pth')),
    # [38, 61, 128, 185]; the inherited start_level=1 skips C2, as it does for ResNet.
    neck=dict(in_channels=out_channels(1.0, (1, 2, 3, 5))))
