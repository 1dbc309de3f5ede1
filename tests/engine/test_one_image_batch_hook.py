"""Training over a sampler that leaves a one-image batch: the run goes on and says so once, in one message from
one place (ReXNetGuardHook switches the whole detector; without it the backbone switches its own); batches of
two or more compute what they did without the guard."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from rexnet_mmdet.models.one_image_batch import running_statistics
from rexnet_mmdet.utils.build import PROJECT_ROOT

MESSAGE = 'training batch of 1 image'

#: 5 square images in batches of 2 through the configs' own AspectRatioBatchSampler: 2, 2, then a batch of 1.
EPOCHS_WITH_A_LEFTOVER = '''
train_dataloader['sampler'] = dict(_delete_=True, type='DefaultSampler', shuffle=True)
train_cfg = dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs=2, val_interval=100)
'''


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp('shapes') / 'root')


def _log_text(work_dir: str) -> str:
    logs = glob.glob(osp.join(work_dir, '*', '*.log'))
    assert len(logs) == 1, logs
    with open(logs[0]) as f:
        return f.read()


@pytest.mark.slow
def test_train_tool_goes_on_over_a_one_image_batch(tmp_path, data_root, tiny_runs):
    config = tiny_runs.write_tiny_config(str(tmp_path / 'tiny.py'), data_root, num_train=5,
                                         extra=EPOCHS_WITH_A_LEFTOVER)
    cfg = Config.fromfile(config)
    assert cfg.train_dataloader.batch_sampler.type == 'AspectRatioBatchSampler'
    assert cfg.train_dataloader.batch_size == 2
    result = tiny_runs.run_tool(['train.py', config, '--work-dir', str(tmp_path / 'wd')])
    assert result.returncode == 0, result.stdout[-3000:]
    text = _log_text(str(tmp_path / 'wd'))
    # Iterations 3 and 6 hold one image each; the log says it once, at the first.
    assert text.count(MESSAGE) == 1, text[-3000:]
    assert 'A training batch of 1 image at iteration 3: ' in text and 'BatchNorm layers of the detector: ' in text
    assert 'Iter(train) [6/6]' in text  # two epochs of three batches


def _train(config: str, work_dir: str, guard: bool) -> Runner:
    cfg = Config.fromfile(config)
    cfg.work_dir = work_dir
    if guard:
        cfg.default_hooks.rexnet_guard = dict(type='ReXNetGuardHook', check_data=False)
    else:
        cfg.default_hooks.pop('rexnet_guard')
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


@pytest.mark.slow
def test_a_config_without_the_hook_still_trains(tmp_path, data_root, tiny_runs):
    """A config of one's own without the guard, run as mmdet's tools/train.py runs it: the backbone handles its
    BatchNorm itself (an FPN and R-CNN heads have none), and the one message says so."""
    config = tiny_runs.write_tiny_config(str(tmp_path / 'tiny.py'), data_root, num_train=5,
                                         extra=EPOCHS_WITH_A_LEFTOVER)
    _train(config, str(tmp_path / 'wd'), guard=False)
    text = _log_text(str(tmp_path / 'wd'))
    assert text.count(MESSAGE) == 1, text[-3000:]
    assert 'A training batch of 1 image at iteration 3: ' in text
    assert 'BatchNorm layers of the ReXNet backbone (no ReXNetGuardHook in the config' in text


@pytest.mark.slow
def test_two_image_batches_are_unchanged(tmp_path, data_root, tiny_runs):
    """With or without the hook, two steps over batches of two images compute the same losses, weights
    and statistics: bit for bit on the CPU. On a GPU (where the runner trains when one is visible),
    mmcv's RoI Align backward and cuDNN's weight gradients add in an order that changes from run to
    run, so the runs agree to float32 rounding carried through two SGD steps instead; a BatchNorm put
    on running statistics would differ by orders of magnitude more."""
    config = tiny_runs.write_tiny_config(str(tmp_path / 'tiny.py'), data_root, max_iters=2, num_train=5)
    runs = [_train(config, str(tmp_path / name), guard) for name, guard in (('with', True), ('without', False))]
    hook = [h for h in runs[0].hooks if type(h).__name__ == 'ReXNetGuardHook']
    assert len(hook) == 1 and hook[0].one_image_batches == 0
    assert not [h for h in runs[1].hooks if type(h).__name__ == 'ReXNetGuardHook']
    on_gpu = next(runs[0].model.parameters()).is_cuda
    tolerance = dict(rtol=1e-5, atol=1e-6) if on_gpu else dict(rtol=0, atol=0)
    losses = [torch.tensor(list(r.message_hub.get_scalar('train/loss').data[0]), dtype=torch.float64) for r in runs]
    assert len(losses[0]) == 2  # batches of 2 (no epoch end)
    torch.testing.assert_close(losses[0], losses[1], **tolerance)
    for kind in ('named_parameters', 'named_buffers'):
        tensors = [dict(getattr(r.model, kind)()) for r in runs]
        for name, value in tensors[0].items():
            exact = not value.is_floating_point()
            torch.testing.assert_close(tensors[1][name], value, msg=name,
                                       **(dict(rtol=0, atol=0) if exact else tolerance))


@pytest.mark.slow
def test_every_config_lists_the_guard_once():
    configs = sorted(glob.glob(osp.join(PROJECT_ROOT, 'configs', '*.py'))
                     + glob.glob(osp.join(PROJECT_ROOT, 'configs', 'demo', '*.py')))
    assert len(configs) >= 14
    for path in configs:
        cfg = Config.fromfile(path)
        assert cfg.default_hooks.rexnet_guard == dict(type='ReXNetGuardHook'), path
        hooks = [h['type'] for h in cfg.get('custom_hooks', [])]
        assert 'ReXNetGuardHook' not in hooks, (path, hooks)


@pytest.mark.slow
def test_ssdlite_neck_needs_the_whole_model_switched():
    """SSDLite's last extra layers are 1x1 maps: their BatchNorm fails on one image as the backbone's SE does."""
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    cfg = Config.fromfile(osp.join(PROJECT_ROOT, 'configs', 'demo', 'ssdlite_rexnet_x0.9_shapes.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    size = (160, 160)  # the last two extra levels are 1x1 maps, as at 320x320
    sample = DetDataSample(metainfo=dict(img_shape=size, pad_shape=size, batch_input_shape=size,
                                         scale_factor=(1.0, 1.0), ori_shape=size))
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[20., 30., 100., 110.]]), labels=torch.tensor([1]))
    image = torch.randn(1, 3, *size)
    with pytest.raises(ValueError, match='Expected more than 1 value per channel'):
        model.loss(image, [sample])
    with running_statistics(model) as switched:
        assert any(name.startswith('neck.') for name, m in model.named_modules() if m in switched)
        losses = model.loss(image, [sample])
        sum(sum(v) if isinstance(v, list) else v for v in losses.values()).backward()
    assert all(m.training for m in model.modules())
