# Mask R-CNN + FPN on ReXNet-R x2.0 (timm's rexnetr_200): a new detector, not from the paper. ReXNet-v1 x2.0
# with every channel rounded to a multiple of 8, started from the strongest ReXNet ImageNet weights
# published: rexnetr_200.sw_in12k_ft_in1k (ImageNet-12k pretrained, ImageNet-1k fine-tuned, 83.2% top-1
# at 288). Everything else as mask_rcnn_rexnet_x1.0_fpn.py: 1200x800, 1x schedule, all BN frozen.
_base_ = './mask_rcnn_rexnet_x1.0_fpn.py'
from rexnet_mmdet import out_channels  # noqa: E402

model = dict(
    backbone=dict(
        widen_factor=2.0,
        channel_divisor=8,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://huggingface.co/timm/rexnetr_200.sw_in12k_ft_in1k/resolve/main/model.safetensors')),
    neck=dict(in_channels=out_channels(2.0, (1, 2, 3, 5), channel_divisor=8)))  # [80, 120, 256, 368]
