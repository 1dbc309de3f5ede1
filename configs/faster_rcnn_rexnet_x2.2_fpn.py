# Faster R-CNN + FPN on ReXNet x2.2 (paper Table 7: 41.5 box AP, 33.0M params, 153.8 GFLOPs).
# No ImageNet weights for x2.2 are published: put your own ImageNet checkpoint (official, timm or
# tools/convert_weights.py format) at the path below or pass
#   --cfg-options model.backbone.init_cfg.checkpoint=/path/to/rexnet_x2.2_imagenet.pth
# Training from a random backbone (--cfg-options model.backbone.init_cfg=None) runs, with a loud
# warning, but lands far below the paper.
_base_ = './faster_rcnn_rexnet_x1.0_fpn.py'

model = dict(
    backbone=dict(
        widen_factor=2.2,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/rexnet_x2.2_imagenet.pth')),
    neck=dict(in_channels=[85, 134, 283, 406]))
