# What the demo configs share: the built-in synthetic shapes dataset (rexnet_mmdet/datasets/synthetic.py,
# made under data/shapes/ on first use, no download), a few minutes of training on 2 CPU cores, and the
# changes a random-initialised backbone needs. Not a config to run: the demo configs put these values
# into their detector config's own keys (mmengine does not let two bases set the same key, hence the
# shapes_ names).

# ---- random-init backbone: there are no ImageNet weights to start from ----
shapes_backbone = dict(
    init_cfg=None,  # random weights (the detector configs download ImageNet ones)
    frozen_stages=-1,  # frozen random layers would never learn
    norm_cfg=dict(type='BN', requires_grad=True),  # BN has to learn its affine terms ...
    norm_eval=False)  # ... and its statistics
shapes_num_classes = 4  # circle, triangle, square, star
# Fewer proposals and sampled RoIs than COCO's 2000/1000 and 512: these images hold at most 3 objects
# (COCO: up to ~100), and the RoI heads' cost on a CPU grows with them.
shapes_rcnn_train_cfg = dict(rpn_proposal=dict(max_per_img=300), rcnn=dict(sampler=dict(num=64)))
shapes_rcnn_test_cfg = dict(rpn=dict(max_per_img=100))

# ---- data: 400 training and 50 held-out images of 160x160 px, 1-3 shapes each ----
shapes_data_root = 'data/shapes/'
shapes_image_size = 160
shapes_synthetic = dict(image_size=shapes_image_size, splits=dict(train=400, val=50), min_objects=1,
                        max_objects=3, min_size=0.2, max_size=0.45, colour_by_class=True, seed=0)
shapes_dataset = dict(type='ShapesDataset', data_root=shapes_data_root, synthetic=shapes_synthetic)
shapes_train_dataloader = dict(
    batch_size=4,
    num_workers=0,  # decoding 4 small PNGs costs nothing next to a training step
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True))
shapes_val_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False)
shapes_evaluator = dict(ann_file=shapes_data_root + 'annotations/instances_val.json', classwise=True)

# ---- schedule ----
# AdamW learns a detector from scratch in a few hundred steps; SGD at this budget does not.
shapes_max_iters = 200
shapes_train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=shapes_max_iters, val_interval=50)
shapes_optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.001, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=10, norm_type=2))
shapes_param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=30, end=shapes_max_iters, eta_min=1e-5)
]
shapes_default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=50, max_keep_ckpts=2))
