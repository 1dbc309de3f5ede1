"""Small configs and subprocess helpers for the tests of the tools (the ``tiny_runs`` fixture).

The tiny detector is the demo config (real ReXNet x1.0 backbone, Faster R-CNN + FPN) with
64 px images, narrow necks and heads and a handful of iterations: every tool path runs in
seconds on a CPU.
"""
import contextlib
import functools
import http.server
import os
import os.path as osp
import subprocess
import sys
import threading
from typing import List, Optional, Sequence

from rexnet_mmdet.utils.build import PROJECT_ROOT as ROOT

DEMO_CONFIG = osp.join(ROOT, 'configs', 'demo', 'faster_rcnn_rexnet_x1.0_fpn_shapes.py')
MASK_DEMO_CONFIG = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_rexnet_x1.0_fpn_shapes.py')

_TINY = '''
_base_ = {base!r}
data_root = {data_root!r}
synthetic = dict(image_size=64, splits=dict(train={num_train}, val={num_val}), min_objects=1, max_objects=2,
                 min_size=0.3, max_size=0.55, colour_by_class=True, seed=0)
# Narrow necks and heads: the tools, not the detector, are under test.
model = dict(
    neck=dict(out_channels=16),
    rpn_head=dict(in_channels=16, feat_channels=16),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=16),
                  bbox_head=dict(in_channels=16, fc_out_channels=32, num_classes={num_classes}){mask_heads}),
    # Pseudo samplers draw no random numbers: a resumed run must match an uninterrupted one exactly.
    train_cfg=dict(rpn=dict(sampler=dict(type='PseudoSampler')),
                   rpn_proposal=dict(nms_pre=200, max_per_img=50),
                   rcnn=dict(sampler=dict(type='PseudoSampler'))),
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=50)))
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask={masks}),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, synthetic=synthetic, pipeline=pipeline))
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, synthetic=synthetic, pipeline=pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json', classwise=False)
test_evaluator = val_evaluator
train_cfg = dict(max_iters={max_iters}, val_interval={val_interval})
optim_wrapper = dict(optimizer={optimizer})
# LR changes every iteration, so a scheduler that restarted on resume would show.
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end={max_iters})]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval={ckpt_interval}, max_keep_ckpts=-1))
randomness = dict(seed=0)
'''


#: SGD with momentum: its state (momentum buffers) shows whether a resumed run restored it.
SGD = "dict(_delete_=True, type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001)"
#: Learns fastest, for tests that need a model that predicts something after a few dozen steps.
ADAMW = "dict(_delete_=True, type='AdamW', lr=0.003, weight_decay=0.0)"

_TINY_MASK_HEADS = (',\n                  mask_roi_extractor=dict(out_channels=16),\n'
                    '                  mask_head=dict(in_channels=16, conv_out_channels=16, num_classes={num_classes})')


def write_tiny_config(path: str, data_root: str, max_iters: int = 6, ckpt_interval: int = 2,
                      val_interval: int = 1000, num_train: int = 8, num_val: int = 4, num_classes: int = 4,
                      masks: bool = False, optimizer: str = SGD, extra: str = '') -> str:
    """Write a tiny training config to ``path`` (a .py file); return ``path``.

    ``masks=True`` makes it a tiny Mask R-CNN (the Mask R-CNN demo config, box and mask AP).
    """
    text = _TINY.format(base=MASK_DEMO_CONFIG if masks else DEMO_CONFIG, data_root=osp.join(data_root, ''),
                        max_iters=max_iters, ckpt_interval=ckpt_interval, val_interval=val_interval,
                        num_train=num_train, num_val=num_val, num_classes=num_classes, masks=masks, optimizer=optimizer,
                        mask_heads=_TINY_MASK_HEADS.format(num_classes=num_classes) if masks else '')
    with open(path, 'w') as f:
        f.write(text + extra)
    return path


def tool_env(extra: Optional[dict] = None) -> dict:
    """The environment of a tool's subprocess (the package itself is installed, editable)."""
    env = dict(os.environ)
    # One thread: the tiny model's operations are too small to share, and tests may run beside other work.
    env.setdefault('OMP_NUM_THREADS', '1')
    env.update(extra or {})
    return env


def run_tool(args: Sequence[str], cwd: str = ROOT, timeout: float = 300,
             env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """Run ``python tools/<args>`` (``args[0]`` relative to tools/, e.g. ``misc/demo.py``); stdout and
    stderr are merged into ``.stdout``."""
    cmd: List[str] = [sys.executable] + [osp.join(ROOT, 'tools', args[0])] + list(args[1:])
    return subprocess.run(cmd, cwd=cwd, env=tool_env(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)


class RunsCommand:
    """Pickles as a call to ``os.system(command)``: what a malicious checkpoint carries."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def write_malicious_checkpoint(path: str, marker: str) -> str:
    """A checkpoint whose loading, if it ran pickled code, would create ``marker``."""
    import torch
    torch.save({'meta': RunsCommand(f'touch {marker}'), 'state_dict': {}}, path)
    return path


@contextlib.contextmanager
def served_folder(root: str):
    """Serve ``root`` over HTTP on 127.0.0.1 (a thread); yields the base URL, e.g. http://127.0.0.1:PORT."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------ the README's drop-in config
README = osp.join(ROOT, 'README.md')
#: The recipe the README's own-detector snippet starts from.
README_BASE = "'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'"

_DROPIN_RUN = '''
# ---- a tiny run on the built-in dataset (added by the tests)
num_classes = 4
data_root = {data_root!r}
model['bbox_head'] = dict(num_classes=num_classes)
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(
    type='CocoDataset', data_root=data_root, ann_file={ann_file!r}, data_prefix=dict(img='train/'),
    metainfo=dict(classes=('circle', 'triangle', 'square', 'star')), pipeline=pipeline))
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={max_iters})
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=1)]
optim_wrapper = dict(optimizer=dict(lr=0.001))
default_hooks.update(checkpoint=dict(by_epoch=False, interval=1000), logger=dict(interval=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
'''


def readme_dropin_snippet() -> str:
    """The config the README's section "ReXNet in your own detector" shows, as it stands there."""
    with open(README) as f:
        section = f.read().split('\n## ReXNet in your own detector\n', 1)[1]
    snippet = section.split('```python\n', 1)[1].split('```', 1)[0]
    assert snippet.startswith(f'_base_ = {README_BASE}\n'), snippet[:200]
    return snippet


def shapes_annotations(data_root: str) -> str:
    """A small built-in dataset under ``data_root`` (64 px, 8 training images); its training annotation file."""
    from rexnet_mmdet.datasets.synthetic import generate_shapes_dataset, settings_from_config
    generate_shapes_dataset(data_root, settings_from_config(dict(
        image_size=64, splits=dict(train=8, val=2), min_objects=1, max_objects=2, min_size=0.3, max_size=0.55,
        colour_by_class=True, seed=0)))
    return osp.join(data_root, 'annotations', 'instances_train.json')


def write_dropin_config(path: str, data_root: str, base: Optional[str] = None, checkpoint: Optional[str] = None,
                        ann_file: str = 'annotations/instances_train.json', max_iters: int = 1,
                        extra: str = '') -> str:
    """The README's own-detector snippet, with ``base`` (an mmdet config, e.g. ``'mmdet::fcos/...py'``) in place
    of its RetinaNet, ``checkpoint`` as its ImageNet file (None: a random backbone, trainable BatchNorm), a tiny
    run on the built-in dataset under ``data_root`` and ``extra`` lines after; returns ``path``."""
    text = readme_dropin_snippet()
    if base is not None:
        text = text.replace(README_BASE, repr(base), 1)
    if checkpoint is not None:
        text = text.replace("checkpoint='PATH_OR_URL'", f'checkpoint={checkpoint!r}', 1)
    else:
        text += ("model['backbone'].update(init_cfg=None, frozen_stages=-1, norm_eval=False)\n")
    text += _DROPIN_RUN.format(data_root=osp.join(data_root, ''), ann_file=ann_file, max_iters=max_iters) + extra
    with open(path, 'w') as f:
        f.write(text)
    return path


def mmdet_train_script() -> str:
    """MMDetection's own tools/train.py, as its package installs it (``mmdet/.mim/tools/train.py``)."""
    import mmdet
    return osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')


def run_train(script: str, config: str, work_dir: str, args: Sequence[str] = (),
              timeout: float = 300) -> subprocess.CompletedProcess:
    """Train ``config`` with ``script``: ``'project'`` (tools/train.py) or ``'mmdet'`` (MMDetection's own);
    ``args``: more options (``--cfg-options ...``)."""
    if script == 'project':
        return run_tool(['train.py', config, '--work-dir', work_dir, *args], timeout=timeout)
    cmd = [sys.executable, mmdet_train_script(), config, '--work-dir', work_dir, *args]
    return subprocess.run(cmd, cwd=ROOT, env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)
