"""The stride check: a head laid out for other strides than its features have stops the run, with the
out_indices to use; every config of the project passes it and lists the guard that runs it for MMDetection's
own tools."""
import glob
import os.path as osp

import pytest
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import HOOKS, init_default_scope

from rexnet_mmdet import out_channels
from rexnet_mmdet.engine import ReXNetGuardHook, StrideMismatchError, add_guard, check_feature_strides
from rexnet_mmdet.engine.stride_check import expected_strides
from rexnet_mmdet.utils.build import CONFIG_DIR

pytestmark = pytest.mark.usefixtures('one_thread')

CONFIGS = sorted(p for p in glob.glob(osp.join(CONFIG_DIR, '**', '*.py'), recursive=True) if '_base_' not in p)


def _build(name: str, **backbone):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    cfg.model.backbone.update(init_cfg=None, **backbone)
    if 'out_indices' in backbone:
        cfg.model.neck.in_channels = out_channels(cfg.model.backbone.widen_factor, backbone['out_indices'])
    init_default_scope('mmdet')
    return MODELS.build(cfg.model)


def test_resnet_numbering_in_retinanet_stops_with_the_indices_to_use():
    """The issue's case: ResNet's out_indices=(0, 1, 2, 3) builds and predicts, at 4x the FLOPs."""
    model = _build('retinanet_rexnet_x1.0_fpn.py', out_indices=(0, 1, 2, 3))
    with pytest.raises(StrideMismatchError) as err:
        check_feature_strides(model)
    message = str(err.value)
    assert message.startswith('bbox_head.prior_generator expects feature strides [8, 16, 32, 64, 128], but the '
                              'features it receives have strides [4, 8, 16, 32, 64]')
    assert "ReXNet's out_indices=(0, 1, 2, 3) give strides (2, 4, 8, 16); use out_indices=(1, 2, 3, 5)" in message
    assert f'neck in_channels={out_channels(1.0, (1, 2, 3, 5))}' in message and '\n' not in message


def test_rpn_and_roi_extractors_are_checked_too():
    model = _build('faster_rcnn_rexnet_x1.0_fpn.py', out_indices=(2, 3, 5, 6))
    assert set(expected_strides(model)) == {'rpn_head.prior_generator', 'roi_head.bbox_roi_extractor'}
    with pytest.raises(StrideMismatchError, match=r'rpn_head.prior_generator expects feature strides \[4, 8, 16, '
                                                  r'32, 64\], but .* strides \[8, 16, 32, 32, 64\].* give strides '
                                                  r'\(8, 16, 32, 32\); use out_indices=\(1, 2, 3, 5\)'):
        check_feature_strides(model)


def test_the_check_leaves_the_models_mode_alone():
    model = _build('rtmdet_tiny_rexnet_x1.0.py')
    model.train()
    assert check_feature_strides(model) == dict(backbone=[8.0, 16.0, 32.0], features=[8.0, 16.0, 32.0])
    assert model.training and model.backbone.training


@pytest.mark.slow
@pytest.mark.parametrize('config', CONFIGS, ids=lambda p: osp.relpath(p, CONFIG_DIR))
def test_every_config_passes_and_lists_the_check(config):
    cfg = Config.fromfile(config)
    # MMDetection's own tools/train.py builds default_hooks: the check runs there too.
    assert cfg.default_hooks.rexnet_guard == dict(type='ReXNetGuardHook')
    cfg.model.backbone.init_cfg = None
    init_default_scope('mmdet')
    measured = check_feature_strides(MODELS.build(cfg.model))
    assert measured is not None and measured['features'][0] in (4.0, 8.0, 16.0)


def test_the_hook_and_add_guard():
    hook = HOOKS.build(dict(type='ReXNetGuardHook'))
    assert isinstance(hook, ReXNetGuardHook)

    class Runner:
        model = _build('retinanet_rexnet_x1.0_fpn.py', out_indices=(0, 1, 2, 3))
        cfg = Config(dict(model=dict()))

    with pytest.raises(StrideMismatchError):
        hook.before_run(Runner())
    cfg = Config(dict(default_hooks=dict(logger=dict(type='LoggerHook'))))
    add_guard(cfg)
    assert cfg.default_hooks.rexnet_guard == dict(type='ReXNetGuardHook') and 'logger' in cfg.default_hooks
    add_guard(cfg, check_data=False)
    assert cfg.default_hooks.rexnet_guard == dict(type='ReXNetGuardHook', check_data=False)
    off = Config(dict(default_hooks=dict(rexnet_guard=None, logger=dict(type='LoggerHook'))))
    add_guard(off, check_data=False)
    assert off.default_hooks == dict(logger=dict(type='LoggerHook'))  # mmengine takes None for its own hooks only


@pytest.mark.slow
def test_train_tool_stops_with_one_line(tmp_path, tiny_runs):
    """tools/train.py on a tiny Faster R-CNN whose backbone returns the wrong levels: one line, no step."""
    extra = (f'\nmodel.update(backbone=dict(out_indices=(0, 1, 2, 3)), '
             f'neck=dict(out_channels=16, in_channels={out_channels(1.0, (0, 1, 2, 3))}))\n')
    config = tiny_runs.write_tiny_config(str(tmp_path / 'tiny.py'), str(tmp_path / 'shapes'), extra=extra)
    result = tiny_runs.run_tool(['train.py', config, '--work-dir', str(tmp_path / 'wd')])
    assert result.returncode == 1 and 'Traceback' not in result.stdout, result.stdout[-3000:]
    assert 'error: rpn_head.prior_generator expects feature strides [4, 8, 16, 32, 64]' in result.stdout
    assert 'use out_indices=(1, 2, 3, 5)' in result.stdout
    assert not glob.glob(str(tmp_path / 'wd' / '*.pth'))
