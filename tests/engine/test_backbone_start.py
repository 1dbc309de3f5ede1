"""A local ImageNet file named by a ReXNet's init_cfg must exist before anything is built."""
import os.path as osp

import pytest

from rexnet_mmdet.engine import check_backbone_start
from rexnet_mmdet.utils.build import CONFIG_DIR, load_config

LITE = osp.join(CONFIG_DIR, 'ssdlite_rexnet_lite_x1.0.py')


def test_missing_lite_file_names_the_manual_download(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the config's checkpoints/rexnet_lite_1.0.pth is relative: absent here
    cfg = load_config(LITE)
    with pytest.raises(ValueError) as info:
        check_backbone_start(cfg, 'lite.py')
    message = str(info.value)
    assert 'checkpoints/rexnet_lite_1.0.pth do not exist' in message and 'github.com/clovaai/rexnet' in message
    assert 'model.backbone.init_cfg.checkpoint=PATH_OR_URL' in message and '\n' not in message


def test_a_local_file_that_exists_and_a_url_pass(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(LITE)
    (tmp_path / 'checkpoints').mkdir()
    (tmp_path / 'checkpoints' / 'rexnet_lite_1.0.pth').write_bytes(b'')
    check_backbone_start(cfg)
    cfg.model.backbone.init_cfg.checkpoint = 'https://example.invalid/rexnet_lite_1.0.pth'
    (tmp_path / 'checkpoints' / 'rexnet_lite_1.0.pth').unlink()
    check_backbone_start(cfg)  # URLs are fetched (and checked) by the loader, not here


def test_any_missing_local_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(osp.join(CONFIG_DIR, 'faster_rcnn_rexnet_x1.0_fpn.py'))
    cfg.model.backbone.init_cfg.checkpoint = 'weights/mine.pth'
    with pytest.raises(ValueError, match=r'weights/mine.pth do not exist .*put the file there'):
        check_backbone_start(cfg)
