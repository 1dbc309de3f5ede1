# Faster R-CNN + FPN on ReXNet-R x3.0 (timm's rexnetr_300): a new detector, not from the paper. ReXNet-v1 x3.0
# with every channel rounded to a multiple of 16, started from rexnetr_300.sw_in12k_ft_in1k (ImageNet-12k
# pretrained, ImageNet-1k fine-tuned, 84.5% top-1 at 288). Otherwise as faster_rcnn_rexnetr_x2.0_fpn.py.
_base_ = './faster_rcnn_rexnetr_x2.0_fpn.py'
from rexnet_mmdet import out_channels  # noqa: E402

model = dict(
    backbone=dict(
        widen_factor=3.0,
        channel_divisor=16,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://huggingface.co/timm/rexnetr_300.sw_in12k_ft_in1k/resolve/main/model.safetensors')),
    neck=dict(in_channels=out_channels(3.0, (1, 2, 3, 5), channel_divisor=16)))  # [112, 176, 384, 560]
