# Faster R-CNN + FPN on ReXNet x1.0, trained from scratch on the built-in synthetic shapes dataset
# (rexnet_mmdet/datasets/synthetic.py; made under data/shapes/ on first use, no download).
# The detector is configs/faster_rcnn_rexnet_x1.0_fpn.py; this file changes only the data, the
# schedule, and what must change when the backbone starts from random weights.
_base_ = '../faster_rcnn_rexnet_x1.0_fpn.py'
custom_imports = dict(imports=['rexnet_mmdet', 'rexnet_mmdet.datasets', 'rexnet_mmdet.engine'],
                      allow_failed_imports=False)

# ---- random-init backbone: no ImageNet weights to load, so nothing may stay frozen ----
model = dict(
    backbone=dict(
        init_cfg=None,  # random init (the base config downloads ImageNet weights)
        frozen_stages=-1,  # frozen random layers would never learn
        norm_cfg=dict(type='BN', requires_grad=True),  # BN must learn its statistics and affine terms
        norm_eval=False),
    roi_head=dict(bbox_head=dict(num_classes=4)))  # the dataset's 4 categories

# ---- data ----
dataset_type = 'ShapesDataset'
data_root = 'data/shapes/'
image_size = 256
synthetic = dict(image_size=image_size, splits=dict(train=400, val=60), seed=0)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, synthetic=synthetic,
                 ann_file='annotations/instances_train.json', data_prefix=dict(img='train/'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(type=dataset_type, data_root=data_root, synthetic=synthetic,
                 ann_file='annotations/instances_val.json', data_prefix=dict(img='val/'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json', classwise=True)
test_evaluator = val_evaluator

# ---- schedule: a few minutes on 2 CPU cores ----
max_iters = 300
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=100)
optim_wrapper = dict(optimizer=dict(lr=0.02), clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=50, end=max_iters, eta_min=0.0002)
]
auto_scale_lr = dict(enable=False, base_batch_size=8)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=100, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
custom_hooks = [dict(type='TrainingCurvesHook')]
