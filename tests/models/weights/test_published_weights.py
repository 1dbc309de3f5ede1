"""Every published weight URL loads end to end, on whichever torch the suite runs on.

For every entry of ``PRETRAINED_URLS`` and every config's ``init_cfg`` URL, a file in the real published
format (timm ``.pth`` on GitHub; timm ``model.safetensors`` on the Hugging Face hub, with the 1000-class
head, or the 11,821-class head of the ``sw_in12k`` files) is served by an http.server on 127.0.0.1 at the
URL's real path, downloaded into a fresh torch hub cache and loaded; the backbone must then hold the
file's weights. The published file names of GitHub carry a sha256 prefix that these stand-ins cannot
match: that check is tested on its own (last test) and switched off for the stand-ins.
"""
import glob
import os
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config

from rexnet_mmdet import PRETRAINED_URLS, ReXNet
from rexnet_mmdet.models.channels import final_channels
from rexnet_mmdet.models.weights import safe_load
from rexnet_mmdet.models.weights.classifiers import classifier_to_format
from rexnet_mmdet.models.weights.formats import from_own_format
from rexnet_mmdet.models.weights.pretrained import load_backbone_weights
from rexnet_mmdet.utils.build import CONFIG_DIR

TIMM_R_DIVISORS = {'rexnetr_200': (2.0, 8), 'rexnetr_300': (3.0, 16)}


def _family(key):
    """(widen_factor, channel_divisor, classes) of the file a PRETRAINED_URLS key names."""
    if isinstance(key, float):
        return key, None, 1000
    width, divisor = TIMM_R_DIVISORS[key.split('.')[0]]
    return width, divisor, 11821 if key.endswith('sw_in12k') else 1000


def _random_backbone(width, divisor, seed):
    torch.manual_seed(seed)
    model = ReXNet(widen_factor=width, channel_divisor=divisor, out_indices=(6,))
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith('running_mean'):
                buffer.normal_()
            elif name.endswith('running_var'):
                buffer.uniform_(0.5, 1.5)
    return model


def _published_file(path, width, divisor, classes, seed):
    """Write a stand-in of a published timm file at ``path``; return the backbone state it holds."""
    model = _random_backbone(width, divisor, seed)
    own = model.state_dict()
    state = from_own_format(own, 'timm')
    channels = final_channels(width, channel_divisor=divisor) if divisor else final_channels(width)
    state.update(classifier_to_format({'head.weight': torch.randn(classes, channels) * 0.01,
                                       'head.bias': torch.zeros(classes)}, 'timm'))
    os.makedirs(osp.dirname(path), exist_ok=True)
    if path.endswith('.safetensors'):
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    else:
        torch.save(state, path)
    return own


def _local(url, base):
    """The URL on the test server: same path, host 127.0.0.1."""
    return re.sub(r'^https://', base + '/', url)


@pytest.fixture(scope='module')
def hub(tmp_path_factory, tiny_runs):
    """The published files at their URL paths on 127.0.0.1: ``(base URL, {url: backbone state})``."""
    root = tmp_path_factory.mktemp('published')
    states = {}
    for seed, (key, url) in enumerate(PRETRAINED_URLS.items()):
        width, divisor, classes = _family(key)
        path = str(root / url.replace('https://', ''))
        states[url] = (key, _published_file(path, width, divisor, classes, seed))
    with tiny_runs.served_folder(str(root)) as base:
        yield base, states


@pytest.fixture
def fresh_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    # The stand-ins cannot carry the published sha256 prefixes (see the module docstring).
    monkeypatch.setattr(safe_load, 'hash_prefix', lambda name: None)
    return tmp_path / 'torch_home' / 'hub' / 'checkpoints'


def _assert_holds(model, state, where):
    loaded = model.state_dict()
    for name, tensor in state.items():
        if name in loaded:
            assert torch.equal(loaded[name], tensor), f'{where}: {name} differs from the file'


@pytest.mark.slow
def test_every_pretrained_url_loads_the_files_weights(hub, fresh_hub_cache):
    base, states = hub
    for url, (key, state) in states.items():
        width, divisor, _ = _family(key)
        model = ReXNet(widen_factor=width, channel_divisor=divisor, out_indices=(6,))
        load_backbone_weights(model, _local(url, base))
        _assert_holds(model, state, url)
        load_backbone_weights(model, _local(url, base))  # from the cache
    # One cache entry per URL, under a name that keeps the format's suffix (the hub's files share a name).
    cached = sorted(os.listdir(fresh_hub_cache))
    assert len(cached) == len(states)
    assert sum(name.endswith('.safetensors') for name in cached) == sum(u.endswith('.safetensors') for u in states)


def _configs_with_urls():
    for path in sorted(glob.glob(osp.join(CONFIG_DIR, '*.py'))):
        init_cfg = Config.fromfile(path).model.backbone.get('init_cfg') or {}
        if str(init_cfg.get('checkpoint', '')).startswith('https://'):
            yield osp.basename(path)


@pytest.mark.slow
@pytest.mark.parametrize('config', list(_configs_with_urls()))
def test_every_configs_init_cfg_url_loads(config, hub, fresh_hub_cache):
    base, states = hub
    cfg = Config.fromfile(osp.join(CONFIG_DIR, config)).model.backbone
    url = cfg.init_cfg.checkpoint
    assert url in states, f'{config} points at {url}, which PRETRAINED_URLS does not list'
    cfg.init_cfg.checkpoint = _local(url, base)
    if cfg.init_cfg.get('width_transfer'):
        cfg.init_cfg.width_transfer_noise = 0.0
    cfg.pop('type')
    model = ReXNet(**cfg)
    model.init_weights()
    key, state = states[url]
    if not cfg.init_cfg.get('width_transfer'):
        _assert_holds(model, state, config)
        return
    # Carried to another width: the same as carrying the same file from a local path.
    local = ReXNet(**dict(cfg, init_cfg=dict(cfg.init_cfg, checkpoint=str(next(fresh_hub_cache.iterdir())))))
    local.init_weights()
    _assert_holds(model, local.state_dict(), config)


def test_a_published_name_whose_hash_does_not_match_is_refused(tmp_path, monkeypatch, tiny_runs):
    import hashlib
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    root = tmp_path / 'served'
    root.mkdir()
    torch.save({'w': torch.ones(2)}, str(root / 'tmp.pth'))
    digest = hashlib.sha256((root / 'tmp.pth').read_bytes()).hexdigest()
    (root / 'tmp.pth').rename(root / f'weights-{digest[:8]}.pth')
    (root / 'weights-00000000.pth').write_bytes((root / f'weights-{digest[:8]}.pth').read_bytes())
    with tiny_runs.served_folder(str(root)) as base:
        assert torch.equal(safe_load.load_checkpoint(f'{base}/weights-{digest[:8]}.pth')['w'], torch.ones(2))
        with pytest.raises(safe_load.CheckpointError, match='could not download') as err:
            safe_load.load_checkpoint(f'{base}/weights-00000000.pth')
    assert '\n' not in str(err.value)
    assert sorted(os.listdir(tmp_path / 'torch_home' / 'hub' / 'checkpoints')) == [f'weights-{digest[:8]}.pth']
