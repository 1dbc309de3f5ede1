# SSDLite on ReXNet-lite x1.3 at 320x320: a new mobile detector, not from the paper (77.8% ImageNet
# top-1 backbone); as ssdlite_rexnet_lite_x1.0.py at width 1.3. Weights: rexnet_lite_1.3.pth, a manual
# download (docs/weights.md#published-weights).
_base_ = './ssdlite_rexnet_lite_x1.0.py'
from rexnet_mmdet import out_channels  # noqa: E402

model = dict(
    backbone=dict(
        widen_factor=1.3,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/rexnet_lite_1.3.pth')),
    # [960, 1664]
    neck=dict(in_channels=tuple(out_channels(1.3, (4, 6), arch='lite')),
              out_channels=(*out_channels(1.3, (4, 6), arch='lite'), 512, 256, 256, 128)),
    bbox_head=dict(in_channels=(*out_channels(1.3, (4, 6), arch='lite'), 512, 256, 256, 128)))
