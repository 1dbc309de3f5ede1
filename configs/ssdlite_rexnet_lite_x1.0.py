# SSDLite on ReXNet-lite x1.0 at 320x320: a new mobile detector, not from the paper. ReXNet-lite (the
# official rexnetv1_lite: no squeeze-excitation, ReLU6 only, channels in multiples of 8; 76.2% ImageNet
# top-1) in place of ReXNet-v1 in ssdlite_rexnet_x1.0.py; the same taps (block 11's 1x1 expansion at
# stride 16, the final 1x1 conv at stride 32), head, anchors and MobileNetV2-SSDLite training recipe.
# The official lite weights are Google Drive downloads with no direct URL: fetch rexnet_lite_1.0.pth
# by hand (docs/weights.md#published-weights) and put it at the path below, or point
#   --cfg-options model.backbone.init_cfg.checkpoint=/path/to/rexnet_lite_1.0.pth
_base_ = './ssdlite_rexnet_x1.0.py'
from rexnet_mmdet import out_channels  # noqa: E402

model = dict(
    backbone=dict(
        arch='lite',
        widen_factor=1.0,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/rexnet_lite_1.0.pth')),
    # [768, 1280]
    neck=dict(in_channels=tuple(out_channels(1.0, (4, 6), arch='lite')),
              out_channels=(*out_channels(1.0, (4, 6), arch='lite'), 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(*out_channels(1.0, (4, 6), arch='lite'), 512, 256, 256, 128)))
