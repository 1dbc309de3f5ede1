# SSDLite on ReXNet x1.0 at 320x320 (paper Table 6: 25.3 box AP on test-dev, 5.7M params, 1.01 GFLOPs).
# Paper §5.2: the first head sits on the final expansion layer of stride 16 (block 11's 1x1
# expansion, tap 4) and another on the final layer (the 1x1 conv to 1280 channels, tap 6), as in
# MobileNetV2-SSDLite; three anchors on the stride-16 level, as the lowest level of the original
# SSDLite detectors. Everything else is MMDetection's MobileNetV2-SSDLite recipe ("the same training
# settings" in the paper): 320x320, SGD lr 0.015 for 192 images, cosine over 120 x 5 epochs.
_base_ = 'mmdet::ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py'
custom_imports = dict(imports=['rexnet_mmdet'], allow_failed_imports=False)
# The drop-in guards (README "ReXNet in your own detector"): strides, channels and input normalisation
# checked before the first step, one-image batches on running BatchNorm statistics.
default_hooks = dict(rexnet_guard=dict(type='ReXNetGuardHook'))

model = dict(
    backbone=dict(
        _delete_=True,
        type='ReXNet',
        widen_factor=1.0,
        out_indices=(4, 6),  # stride-16 expansion, final 1x1 conv (stride 32)
        norm_cfg=dict(type='BN', momentum=0.03),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/rwightman/pytorch-image-models/releases/download/'
            'v0.1-rexnet/rexnetv1_100-1b4dddf4.pth')),
    neck=dict(in_channels=(768, 1280), out_channels=(768, 1280, 512, 256, 256, 128)),
    bbox_head=dict(
        type='SSDLiteHead',  # SSDHead, fixed to predict under MMDetection 3.3
        in_channels=(768, 1280, 512, 256, 256, 128),
        anchor_generator=dict(
            type='SSDLiteAnchorGenerator',
            ratios=[[2], [2, 3], [2, 3], [2, 3], [2, 3], [2, 3]])))
