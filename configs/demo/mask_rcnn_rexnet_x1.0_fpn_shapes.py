# Mask R-CNN + FPN on ReXNet x1.0, trained from scratch on the CPU on the built-in synthetic shapes
# dataset (polygon masks): box and mask AP, pictures with masks. Each step takes about twice as long
# as the Faster R-CNN demo's.
#   python tools/misc/demo.py --config configs/demo/mask_rcnn_rexnet_x1.0_fpn_shapes.py
# The detector is configs/mask_rcnn_rexnet_x1.0_fpn.py; _base_/shapes_cpu.py holds the data, the
# schedule and what a random-initialised backbone needs, and this file puts them in place.
_base_ = ['../mask_rcnn_rexnet_x1.0_fpn.py', './_base_/shapes_cpu.py']
custom_imports = dict(imports=['rexnet_mmdet', 'rexnet_mmdet.datasets', 'rexnet_mmdet.engine'],
                      allow_failed_imports=False)

model = dict(backbone=_base_.shapes_backbone,
             roi_head=dict(bbox_head=dict(num_classes=_base_.shapes_num_classes),
                           mask_head=dict(num_classes=_base_.shapes_num_classes)),
             train_cfg=_base_.shapes_rcnn_train_cfg,
             test_cfg=_base_.shapes_rcnn_test_cfg)

# The detector's own pipelines, at the dataset's image size.
size = (_base_.shapes_image_size, _base_.shapes_image_size)
train_pipeline = [dict(t, scale=size) if t.type == 'Resize' else t for t in _base_.train_pipeline]
test_pipeline = [dict(t, scale=size) if t.type == 'Resize' else t for t in _base_.test_pipeline]
train_dataloader = dict(_base_.shapes_train_dataloader, dataset=dict(
    _base_.shapes_dataset, ann_file='annotations/instances_train.json', data_prefix=dict(img='train/'),
    pipeline=train_pipeline))
val_dataloader = dict(_base_.shapes_val_dataloader, dataset=dict(
    _base_.shapes_dataset, ann_file='annotations/instances_val.json', data_prefix=dict(img='val/'),
    pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = _base_.shapes_evaluator
test_evaluator = val_evaluator

train_cfg = _base_.shapes_train_cfg
optim_wrapper = _base_.shapes_optim_wrapper
param_scheduler = _base_.shapes_param_scheduler
auto_scale_lr = dict(enable=False, base_batch_size=4)
default_hooks = _base_.shapes_default_hooks
log_processor = dict(by_epoch=False)
# work_dir/training_curves.png after every validation.
custom_hooks = [dict(type='TrainingCurvesHook')]
randomness = dict(seed=0)
