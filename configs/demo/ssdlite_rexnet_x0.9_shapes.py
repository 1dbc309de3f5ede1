# SSDLite on ReXNet x0.9 at 320x320, trained from scratch on the CPU on the built-in synthetic shapes
# dataset: a trained SSDLite in minutes, to check an exported graph's detections and COCO AP (for
# example in bfloat16) against PyTorch's. By hand:
#   python tools/train.py configs/demo/ssdlite_rexnet_x0.9_shapes.py
#   python tools/deployment/ssdlite_onnx.py configs/demo/ssdlite_rexnet_x0.9_shapes.py \
#       work_dirs/ssdlite_rexnet_x0.9_shapes/iter_600.pth --out work_dirs/ssdlite_shapes.onnx \
#       --eval data/shapes/annotations/instances_val.json --images data/shapes/val
# The detector is configs/ssdlite_rexnet_x0.9.py; _base_/shapes_cpu.py holds the data, the schedule
# and what a random-initialised backbone needs.
_base_ = ['../ssdlite_rexnet_x0.9.py', './_base_/shapes_cpu.py']
custom_imports = dict(imports=['rexnet_mmdet', 'rexnet_mmdet.datasets', 'rexnet_mmdet.engine'],
                      allow_failed_imports=False)

model = dict(backbone=_base_.shapes_backbone, bbox_head=dict(num_classes=_base_.shapes_num_classes))

# The config's resize to 320x320 and flip; without the COCO recipe's Expand (up to 4x zoom-out),
# MinIoURandomCrop and colour distortion, which a few hundred steps on 400 images cannot use.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(320, 320), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = _base_.test_pipeline
train_dataloader = dict(_base_.shapes_train_dataloader, batch_size=8, dataset=dict(
    _delete_=True, **_base_.shapes_dataset, ann_file='annotations/instances_train.json',
    data_prefix=dict(img='train/'), pipeline=train_pipeline))
val_dataloader = dict(_base_.shapes_val_dataloader, dataset=dict(
    _delete_=True, **_base_.shapes_dataset, ann_file='annotations/instances_val.json',
    data_prefix=dict(img='val/'), test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = _base_.shapes_evaluator
test_evaluator = val_evaluator

max_iters = 600
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=200)
optim_wrapper = dict(_base_.shapes_optim_wrapper, optimizer=dict(type='AdamW', lr=0.002, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=30, end=max_iters, eta_min=1e-5)
]
auto_scale_lr = dict(enable=False, base_batch_size=8)
default_hooks = dict(_base_.shapes_default_hooks, checkpoint=dict(by_epoch=False, interval=200, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
# work_dir/training_curves.png after every validation.
custom_hooks = [dict(type='TrainingCurvesHook')]
randomness = dict(seed=0)
