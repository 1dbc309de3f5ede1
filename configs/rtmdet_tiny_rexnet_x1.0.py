# RTMDet-tiny on ReXNet x1.0: MMDetection's RTMDet-tiny recipe (640x640, 300 epochs, mosaic and
# mixup) with ReXNet in place of CSPNeXt-tiny. Width 1.0: the smallest width with published ImageNet
# weights, and close to CSPNeXt-tiny in size (see README, "ReXNet in your own detector").
_base_ = 'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py'
from rexnet_mmdet import out_channels  # noqa: E402  (after `_base_`: an ordinary mmengine config)

custom_imports = dict(imports=['rexnet_mmdet'], allow_failed_imports=False)
# The drop-in guards (README "ReXNet in your own detector"): strides, channels and input normalisation
# checked before the first step, one-image batches on running BatchNorm statistics.
default_hooks = dict(rexnet_guard=dict(type='ReXNetGuardHook'))

model = dict(
    # The ReXNet ImageNet weights expect RGB images normalised with ImageNet's mean and std
    # (CSPNeXt's weights were trained on BGR).
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(
        _delete_=True,
        type='ReXNet',
        widen_factor=1.0,
        # Strides 8/16/32, what CSPNeXt's (2, 3, 4) returns: C3, C4, C5 = blocks 4, 10, 15.
        out_indices=(2, 3, 5),
        norm_cfg=dict(type='SyncBN'),  # as RTMDet: every BN trains, synchronised across GPUs
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/rwightman/pytorch-image-models/releases/download/'
            'v0.1-rexnet/rexnetv1_100-1b4dddf4.pth')),
    neck=dict(in_channels=out_channels(1.0, (2, 3, 5))))  # [61, 128, 185]
