# SSDLite on ReXNet x0.9 at 320x320 (paper Table 6: 24.7 box AP on test-dev, 5.0M params, 0.88 GFLOPs).
# No ImageNet weights for x0.9 are published: put your own ImageNet checkpoint (official, timm or
# tools/convert_weights.py format) at the path below or pass
#   --cfg-options model.backbone.init_cfg.checkpoint=/path/to/rexnet_x0.9_imagenet.pth
# Training from a random backbone (--cfg-options model.backbone.init_cfg=None) runs, with a loud
# warning, but lands far below the paper.
_base_ = './ssdlite_rexnet_x1.0.py'

model = dict(
    backbone=dict(
        widen_factor=0.9,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/rexnet_x0.9_imagenet.pth')),
    neck=dict(in_channels=(702, 1152), out_channels=(702, 1152, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(702, 1152, 512, 256, 256, 128)))
