"""rexnet_mmdet.apis: loading a trained detector refuses a checkpoint that does not fit the model,
before a weight is loaded; the class names come from the checkpoint, else from the config."""
import inspect
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from rexnet_mmdet.apis import DetInferencer, check_checkpoint_fits, init_detector
from rexnet_mmdet.datasets.synthetic import SHAPE_CLASSES
from rexnet_mmdet import CheckpointMismatchError
from rexnet_mmdet.utils.build import CONFIG_DIR, build_detector

pytestmark = pytest.mark.usefixtures('one_thread')

#: SSDLite x0.9 with the shapes dataset's 4 classes: the smallest detector config.
CONFIG = osp.join(CONFIG_DIR, 'demo', 'ssdlite_rexnet_x0.9_shapes.py')


def _detector(config: str, seed: int = 0):
    return build_detector(Config.fromfile(config), seed=seed, calibration_size=None)


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """The x0.9 detector's weights with and without class names, and an x1.0 detector's weights."""
    folder = tmp_path_factory.mktemp('apis')
    model = _detector(CONFIG, seed=1)
    paths = dict(with_meta=str(folder / 'with_meta.pth'), bare=str(folder / 'bare.pth'),
                 wider=str(folder / 'x1.0.pth'))
    meta = dict(dataset_meta=dict(classes=('a', 'b', 'c', 'd'), palette=[(1, 2, 3)] * 4))
    torch.save(dict(state_dict=model.state_dict(), meta=meta), paths['with_meta'])
    torch.save(model.state_dict(), paths['bare'])
    cfg = Config.fromfile(osp.join(CONFIG_DIR, 'ssdlite_rexnet_x1.0.py'))
    cfg.model.bbox_head.num_classes = 4
    torch.save(dict(state_dict=build_detector(cfg, calibration_size=None).state_dict()), paths['wider'])
    return model, paths


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path, monkeypatch):
    # The demo config's dataset lives under data/shapes/ of the working directory: nothing may be made there.
    monkeypatch.chdir(tmp_path)


def test_a_fitting_checkpoint_loads_with_its_class_names(checkpoints, tmp_path):
    model, paths = checkpoints
    loaded = init_detector(CONFIG, paths['with_meta'], device='cpu')
    assert not loaded.training and loaded.cfg.model.backbone.widen_factor == 0.9
    expected = model.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.state_dict().items())
    assert loaded.dataset_meta['classes'] == ('a', 'b', 'c', 'd')
    assert not (tmp_path / 'data').exists()  # the dataset was asked for its metainfo only


def test_without_class_names_the_configs_classes_are_used(checkpoints):
    # mmdet.apis.init_detector would name the 4 outputs after COCO's first 4 classes.
    loaded = init_detector(CONFIG, checkpoints[1]['bare'], device='cpu')
    assert list(loaded.dataset_meta['classes']) == list(SHAPE_CLASSES)


def test_a_backbone_file_fits_none_of_the_detector(official_checkpoints):
    with pytest.raises(CheckpointMismatchError, match=r'fits none of the model\'s \d+ weights'):
        init_detector(CONFIG, official_checkpoints['0.9'], device='cpu')


def test_another_widths_detector_is_refused_before_loading(checkpoints):
    with pytest.raises(CheckpointMismatchError, match=r'fits only \d+ of the model\'s \d+ weights .* of another '
                                                      r'shape, e.g. backbone\.'):
        init_detector(CONFIG, checkpoints[1]['wider'], device='cpu')


def test_check_checkpoint_fits_a_model_built_by_mmdet(checkpoints, official_checkpoints):
    from mmdet.apis import init_detector as mmdet_init_detector

    model, paths = checkpoints
    cfg = Config.fromfile(CONFIG)
    built = mmdet_init_detector(cfg, paths['wider'], device='cpu')  # mmdet loads what matches and goes on
    with pytest.raises(CheckpointMismatchError, match='fits only'):
        check_checkpoint_fits(built, paths['wider'])
    assert check_checkpoint_fits(model, paths['bare']) == 1.0
    assert check_checkpoint_fits(model, torch.load(paths['with_meta'], weights_only=True)) == 1.0
    with pytest.raises(CheckpointMismatchError, match='fits none'):
        check_checkpoint_fits(model, official_checkpoints['1.0'])


def test_init_detector_takes_mmdets_arguments_in_mmdets_order():
    from mmdet.apis import init_detector as mmdet_init_detector
    ours = inspect.signature(init_detector).parameters
    theirs = inspect.signature(mmdet_init_detector).parameters
    assert [(p.name, p.default) for p in list(ours.values())[:len(theirs)]] == \
        [(p.name, p.default) for p in theirs.values()]
    assert ours['min_fit'].kind is inspect.Parameter.KEYWORD_ONLY


def test_no_checkpoint_builds_the_detector_with_the_configs_classes():
    model = init_detector(CONFIG, None, 'none', 'cpu')
    assert not model.training and list(model.dataset_meta['classes']) == list(SHAPE_CLASSES)


def test_det_inferencer_refuses_a_wider_detector_and_loads_a_fitting_one(checkpoints, tmp_path):
    """The x1.3 detector's checkpoint on the x1.0 config: mmdet's DetInferencer loads what matches and detects
    nothing; the checked one stops with one line before loading."""
    configs = []
    for name in ('ssdlite_rexnet_x1.0.py', 'ssdlite_rexnet_x1.3.py'):
        cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
        cfg.model.bbox_head.num_classes = 4
        cfg.model.backbone.init_cfg = None
        configs.append(cfg)
    wider = str(tmp_path / 'ssdlite_x1.3.pth')
    torch.save(dict(state_dict=build_detector(configs[1], calibration_size=None).state_dict()), wider)
    with pytest.raises(CheckpointMismatchError, match=r'fits only \d+ of the model\'s \d+ weights'):
        DetInferencer(configs[0], wider, device='cpu', show_progress=False)
    model, paths = checkpoints
    inferencer = DetInferencer(CONFIG, paths['with_meta'], device='cpu', show_progress=False)
    expected = model.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in inferencer.model.state_dict().items())
    assert inferencer.model.dataset_meta['classes'] == ('a', 'b', 'c', 'd')
