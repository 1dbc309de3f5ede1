# Faster R-CNN + FPN on ReXNet x0.9 (paper Table 7: 38.0 box AP, 20.1M params, 123.0 GFLOPs).
# No ImageNet weights for x0.9 are published: put your own ImageNet checkpoint (official, timm or
# tools/convert_weights.py format) at the path below or pass
#   --cfg-options model.backbone.init_cfg.checkpoint=/path/to/rexnet_x0.9_imagenet.pth
# Training from a random backbone (--cfg-options model.backbone.init_cfg=None) runs, with a loud
# warning, but lands far below the paper.
_base_ = './faster_rcnn_rexnet_x1.0_fpn.py'

model = dict(
    backbone=dict(
        widen_factor=0.9,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/rexnet_x0.9_imagenet.pth')),
    neck=dict(in_channels=[36, 56, 117, 168]))
