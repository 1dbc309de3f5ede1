# Mask R-CNN + FPN on ReXNet x1.0 (paper Table 9 setting: as Faster R-CNN, 1200x800, all BN frozen).
# From MMDetection's reference recipe (unchanged here): 1x schedule, SGD lr 0.02 for 16 images,
# RandomFlip, frozen stem + stage 1.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['rexnet_mmdet'], allow_failed_imports=False)
# The drop-in guards (README "ReXNet in your own detector"): strides, channels and input normalisation
# checked before the first step, one-image batches on running BatchNorm statistics.
default_hooks = dict(rexnet_guard=dict(type='ReXNetGuardHook'))

model = dict(
    backbone=dict(
        _delete_=True,
        type='ReXNet',
        widen_factor=1.0,
        out_indices=(1, 2, 3, 5),  # C2-C5
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),  # paper: all BN frozen
        norm_eval=True,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/rwightman/pytorch-image-models/releases/download/'
            'v0.1-rexnet/rexnetv1_100-1b4dddf4.pth')),
    neck=dict(in_channels=[38, 61, 128, 185]))

train_pipeline = [dict(t, scale=(1200, 800)) if t.type == 'Resize' else t for t in _base_.train_pipeline]
test_pipeline = [dict(t, scale=(1200, 800)) if t.type == 'Resize' else t for t in _base_.test_pipeline]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
