# Faster R-CNN + FPN on ReXNet x0.9 (paper Table 7: 38.0 box AP, 20.1M params, 123.0 GFLOPs).
# No ImageNet weights for x0.9 are published: put your own ImageNet checkpoint (official, timm or
# tools/convert_weights.py format) at the path below or pass
#   --cfg-options model.backbone.init_cfg.checkpoint=/path/to/rexnet_x0.9_imagenet.pth
# Training from a random backbone needs trainable BatchNorm (frozen BN on random weights normalises
# nothing; tools/train.py refuses init_cfg=None alone) and lands far below the paper:
#   --cfg-options model.backbone.init_cfg=None model.backbone.norm_eval=False
#                 model.backbone.norm_cfg.requires_grad=True model.backbone.frozen_stages=-1
_base_ = './faster_rcnn_rexnet_x1.0_fpn.py'

model = dict(
    backbone=dict(
        widen_factor=0.9,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/rexnet_x0.9_imagenet.pth')),
    neck=dict(in_channels=[36, 56, 117, 168]))
