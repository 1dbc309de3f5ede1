# SSDLite on ReXNet x1.3 at 320x320 (paper Table 6: 27.3 box AP on test-dev, 8.4M params, 1.60 GFLOPs).
_base_ = './ssdlite_rexnet_x1.0.py'

model = dict(
    backbone=dict(
        widen_factor=1.3,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/rwightman/pytorch-image-models/releases/download/'
            'v0.1-rexnet/rexnetv1_130-590d768e.pth')),
    neck=dict(in_channels=(1002, 1664), out_channels=(1002, 1664, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(1002, 1664, 512, 256, 256, 128)))
