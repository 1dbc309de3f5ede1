# Mask R-CNN + FPN on ReXNet x2.2 (paper Table 9: 42.0 box AP, 37.8 mask AP, 35.6M params, 153.8 GFLOPs).
# No ImageNet weights for x2.2 are published: the backbone starts from the published x2.0 weights,
# widened on first use: x2.0's function (81.6% top-1) plus noise of 1% of each weight's spread, so
# that copied channels can diverge in training (width_transfer_noise=0: exactly x2.0's function).
# Your own ImageNet checkpoint of width 2.2 takes precedence and loads directly:
#   --cfg-options model.backbone.init_cfg.checkpoint=/path/to/rexnet_x2.2_imagenet.pth
# Training from a random backbone needs trainable BatchNorm (frozen BN on random weights normalises
# nothing; tools/train.py refuses init_cfg=None alone) and lands far below the paper:
#   --cfg-options model.backbone.init_cfg=None model.backbone.norm_eval=False
#                 model.backbone.norm_cfg.requires_grad=True model.backbone.frozen_stages=-1
_base_ = './mask_rcnn_rexnet_x1.0_fpn.py'

model = dict(
    backbone=dict(
        widen_factor=2.2,
        # Published x2.0 weights, carried to x2.2 (explicit: without width_transfer a width
        # mismatch is an error).
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/rwightman/pytorch-image-models/releases/download/'
            'v0.1-rexnet/rexnetv1_200-8c0b7f2d.pth',
            width_transfer=True,
            # Copies of a channel would otherwise get identical updates and never diverge.
            width_transfer_noise=0.01)),
    neck=dict(in_channels=[85, 134, 283, 406]))
