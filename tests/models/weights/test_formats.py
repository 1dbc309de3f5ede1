"""Reading, recognising, converting and loading ImageNet weights; every error path."""
import os
import subprocess
import sys

import pytest
import torch

import rexnet_mmdet  # noqa: F401
from rexnet_mmdet import CheckpointError
from rexnet_mmdet.models.weights import (CheckpointFamily, convert_checkpoint, detect_format, download_checkpoint,
                                     from_own_format, infer_widen_factor, load_backbone_weights, read_state_dict,
                                     to_own_format)
from rexnet_mmdet.models import ReXNet
from rexnet_mmdet.utils.build import PROJECT_ROOT


@pytest.fixture(scope='module')
def official(reference_weights):
    return reference_weights.rebuild_official_weights('1.0')


def test_formats_are_recognised(official, reference_weights):
    assert detect_format(official) == 'official'
    own = to_own_format(official)
    assert not any(k.startswith(('output.', 'head.')) for k in own)
    timm = from_own_format(own, 'timm')
    assert detect_format(timm) == 'timm'
    # The timm key list (classifier aside) is exactly what the conversion writes, shapes included.
    timm_keys = os.path.join(reference_weights.DATA, 'timm_keys_rexnet_100.txt')
    expected = {k: s for k, s in reference_weights.read_key_list(timm_keys)
                if not k.startswith('head.')}
    assert {k: tuple(v.shape) for k, v in timm.items()} == expected
    assert detect_format(own) == 'rexnet_mmdet'
    assert detect_format({'backbone.' + k: v for k, v in own.items()}) == 'rexnet_mmdet'
    back = from_own_format(own, 'official')
    assert set(back) == {k for k in official if not k.startswith('output.')}
    assert all(torch.equal(back[k], official[k]) for k in back)


def test_infer_widen_factor(official, reference_weights):
    assert infer_widen_factor(to_own_format(official)) == 1.0
    assert infer_widen_factor(to_own_format(reference_weights.rebuild_official_weights('0.9'))) == 0.9
    assert infer_widen_factor(ReXNet(widen_factor=2.2, out_indices=(6,)).state_dict()) == 2.2


def test_containers_and_prefixes(tmp_path, official):
    path = tmp_path / 'wrapped.pth'
    torch.save({'state_dict': {'module.' + k: v for k, v in official.items()}, 'epoch': 3}, path)
    assert detect_format(read_state_dict(str(path))) == 'official'


def test_safetensors(tmp_path, official):
    from safetensors.torch import save_file
    path = tmp_path / 'rexnet_100.safetensors'
    save_file(from_own_format(to_own_format(official), 'timm'), str(path))
    model = ReXNet(out_indices=(1, 2, 3, 5))
    load_backbone_weights(model, str(path))
    torch.testing.assert_close(model.stem.conv.weight, official['features.0.weight'])


def test_wrong_width_names_layer_and_width(tmp_path):
    path = tmp_path / 'w13.pth'
    torch.save(ReXNet(widen_factor=1.3, out_indices=(6,)).state_dict(), path)
    model = ReXNet(widen_factor=1.0)
    with pytest.raises(CheckpointError, match=r"first mismatched layer 'stem.conv.weight'.*widen_factor=1.3"):
        load_backbone_weights(model, str(path))


def test_wrong_width_deeper_layer(tmp_path, reference_weights):
    path = tmp_path / 'w09.pth'
    torch.save(reference_weights.rebuild_official_weights('0.9'), path)
    with pytest.raises(CheckpointError, match=r"'blocks.1.conv_pwl.conv.weight'.*\(26, 96, 1, 1\).*\(27, 96, 1, 1\).*widen_factor=0.9"):
        load_backbone_weights(ReXNet(widen_factor=1.0), str(path))


def test_missing_file():
    with pytest.raises(CheckpointError, match='rexnet.pth not found'):
        load_backbone_weights(ReXNet(), 'no/such/rexnet.pth')


def test_unknown_format(tmp_path):
    path = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(64, 3, 7, 7), 'fc.weight': torch.zeros(10, 64)}, path)
    with pytest.raises(CheckpointError, match='unknown checkpoint format.*conv1.weight'):
        load_backbone_weights(ReXNet(), str(path))


def test_truncated_file(tmp_path, official):
    path = tmp_path / 'truncated.pth'
    torch.save(official, path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated'):
        load_backbone_weights(ReXNet(), str(path))
    st = tmp_path / 'truncated.safetensors'
    st.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a":')
    with pytest.raises(CheckpointError, match='truncated'):
        read_state_dict(str(st))


class _Payload:
    def __reduce__(self):
        return (os.system, ('touch PAYLOAD_RAN',))


def test_pickle_payload_is_refused_not_run(tmp_path, official, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': official, 'extra': _Payload()}, path)
    with pytest.raises(CheckpointError, match='refusing to load'):
        load_backbone_weights(ReXNet(), str(path))
    assert not (tmp_path / 'PAYLOAD_RAN').exists()


def test_missing_layer_in_checkpoint(tmp_path, official):
    partial = {k: v for k, v in official.items() if not k.startswith('features.18.')}
    path = tmp_path / 'partial.pth'
    torch.save(partial, path)
    with pytest.raises(CheckpointError, match="no weights for layer 'blocks.15"):
        load_backbone_weights(ReXNet(), str(path))


def test_missing_num_batches_tracked_is_fine(tmp_path, official):
    path = tmp_path / 'nbt.pth'
    torch.save({k: v for k, v in official.items() if 'num_batches_tracked' not in k}, path)
    result = load_backbone_weights(ReXNet(out_indices=(6,)), str(path))
    assert result['missing'] and all(k.endswith('num_batches_tracked') for k in result['missing'])


def test_url_download_into_hub_cache(tmp_path, official, http_root):
    served, base = http_root
    torch.save(official, served / 'rexnetv1_1.0.pth')
    url = f'{base}/rexnetv1_1.0.pth'
    model = ReXNet(init_cfg=dict(type='Pretrained', checkpoint=url))
    model.init_weights()
    cached = tmp_path / 'torch_home' / 'hub' / 'checkpoints' / 'rexnetv1_1.0.pth'
    assert cached.is_file()
    torch.testing.assert_close(model.stem.conv.weight, official['features.0.weight'])
    with pytest.raises(CheckpointError, match='could not download.*local path'):
        download_checkpoint(url.replace('rexnetv1_1.0.pth', 'missing.pth'))


def test_url_without_network_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    # Port 9 on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(CheckpointError, match='could not download.*no network'):
        download_checkpoint('http://127.0.0.1:9/rexnetv1_1.0.pth')


@pytest.mark.slow
def test_convert_tool_round_trip(tmp_path, official):
    src = tmp_path / 'rexnetv1_1.0.pth'
    torch.save(official, src)
    own = tmp_path / 'own.pth'
    tool = os.path.join(PROJECT_ROOT, 'tools', 'model_converters', 'convert_weights.py')
    out = subprocess.run([sys.executable, tool, str(src), str(own)], capture_output=True, text=True, check=True).stdout
    assert 'official format, widen_factor=1' in out
    saved = torch.load(own, weights_only=True)
    assert saved['meta']['widen_factor'] == 1.0 and 'stem.conv.weight' in saved['state_dict']
    timm = tmp_path / 'timm.safetensors'
    assert convert_checkpoint(str(own), str(timm), 'timm') == ('rexnet_mmdet', CheckpointFamily('v1', 1.0, 1), False)
    back = tmp_path / 'official.pth'
    convert_checkpoint(str(timm), str(back), 'official')
    restored = torch.load(back, weights_only=True)
    assert all(torch.equal(restored[k], official[k]) for k in restored)
    bad = subprocess.run([sys.executable, tool, str(tmp_path / 'nope.pth'), str(tmp_path / 'x.pth')],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and 'nope.pth not found' in bad.stderr
