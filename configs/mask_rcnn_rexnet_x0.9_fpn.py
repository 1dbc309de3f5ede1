# Mask R-CNN + FPN on ReXNet x0.9 (paper Table 9: 38.7 box AP, 35.2 mask AP, 22.8M params, 123.0 GFLOPs).
# No ImageNet weights for x0.9 are published: the backbone starts from the published x1.0 weights,
# narrowed on first use (the most important channels kept; BatchNorm statistics not re-estimated, as
# there are no images at init time). For a closer start, narrow once with BatchNorm re-estimated on
# COCO images and give the file instead:
#   python tools/model_converters/convert_weights.py <x1.0 weights> checkpoints/rexnet_x0.9_imagenet.pth \
#       --widen-factor 0.9 --calibrate-images data/coco/train2017
#   --cfg-options model.backbone.init_cfg.checkpoint=checkpoints/rexnet_x0.9_imagenet.pth
# A checkpoint of width 0.9 (your own ImageNet training) given that way loads directly.
# Training from a random backbone needs trainable BatchNorm (frozen BN on random weights normalises
# nothing; tools/train.py refuses init_cfg=None alone) and lands far below the paper:
#   --cfg-options model.backbone.init_cfg=None model.backbone.norm_eval=False
#                 model.backbone.norm_cfg.requires_grad=True model.backbone.frozen_stages=-1
_base_ = './mask_rcnn_rexnet_x1.0_fpn.py'

model = dict(
    backbone=dict(
        widen_factor=0.9,
        # Published x1.0 weights, carried to x0.9 (explicit: without width_transfer a width
        # mismatch is an error).
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/rwightman/pytorch-image-models/releases/download/'
            'v0.1-rexnet/rexnetv1_100-1b4dddf4.pth',
            width_transfer=True)),
    neck=dict(in_channels=[36, 56, 117, 168]))
