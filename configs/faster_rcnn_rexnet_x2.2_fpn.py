# Faster R-CNN + FPN on ReXNet x2.2 (paper Table 7: 41.5 box AP, 33.0M params, 153.8 GFLOPs).
# No ImageNet weights for x2.2 are published: the backbone starts from the published x2.0 weights,
# widened exactly on first use (the same function, so x2.0's ImageNet accuracy, 81.6% top-1).
# Your own ImageNet checkpoint of width 2.2 takes precedence and loads directly:
#   --cfg-options model.backbone.init_cfg.checkpoint=/path/to/rexnet_x2.2_imagenet.pth
_base_ = './faster_rcnn_rexnet_x1.0_fpn.py'

model = dict(
    backbone=dict(
        widen_factor=2.2,
        # Published x2.0 weights, carried to x2.2 (explicit: without width_transfer a width
        # mismatch is an error).
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/rwightman/pytorch-image-models/releases/download/'
            'v0.1-rexnet/rexnetv1_200-8c0b7f2d.pth',
            width_transfer=True)),
    neck=dict(in_channels=[85, 134, 283, 406]))
