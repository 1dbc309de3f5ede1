# Mask R-CNN + FPN on ReXNet x2.2 (paper Table 9: 42.0 box AP, 37.8 mask AP, 35.6M params, 153.8 GFLOPs).
# No ImageNet weights for x2.2 are published: put your own ImageNet checkpoint (official, timm or
# tools/convert_weights.py format) at the path below or pass
#   --cfg-options model.backbone.init_cfg.checkpoint=/path/to/rexnet_x2.2_imagenet.pth
# Training from a random backbone needs trainable BatchNorm (frozen BN on random weights normalises
# nothing; tools/train.py refuses init_cfg=None alone) and lands far below the paper:
#   --cfg-options model.backbone.init_cfg=None model.backbone.norm_eval=False
#                 model.backbone.norm_cfg.requires_grad=True model.backbone.frozen_stages=-1
_base_ = './mask_rcnn_rexnet_x1.0_fpn.py'

model = dict(
    backbone=dict(
        widen_factor=2.2,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/rexnet_x2.2_imagenet.pth')),
    neck=dict(in_channels=[85, 134, 283, 406]))
