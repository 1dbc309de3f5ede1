# SSDLite on ReXNet x0.9 at 320x320 (paper Table 6: 24.7 box AP on test-dev, 5.0M params, 0.88 GFLOPs).
# No ImageNet weights for x0.9 are published: the backbone starts from the published x1.0 weights,
# narrowed on first use (the most important channels kept; BatchNorm statistics not re-estimated, as
# there are no images at init time). For a closer start, narrow once with BatchNorm re-estimated on
# COCO images and give the file instead:
#   python tools/model_converters/convert_weights.py <x1.0 weights> checkpoints/rexnet_x0.9_imagenet.pth \
#       --widen-factor 0.9 --calibrate-images data/coco/train2017
#   --cfg-options model.backbone.init_cfg.checkpoint=checkpoints/rexnet_x0.9_imagenet.pth
# A checkpoint of width 0.9 (your own ImageNet training) given that way loads directly.
_base_ = './ssdlite_rexnet_x1.0.py'

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
    neck=dict(in_channels=(702, 1152), out_channels=(702, 1152, 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(702, 1152, 512, 256, 256, 128)))
