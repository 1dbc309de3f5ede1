"""The README's own-detector config, run as a user runs it: with MMDetection's own tools/train.py (the copy its
package installs) and with this project's. Each mismatch stops before the first step with one line (the project's
tool: no traceback), each warning is said, and what can train trains."""
import json
import os.path as osp

import pytest

from rexnet_mmdet import ReXNet
from rexnet_mmdet.models.weights import save_own_format

pytestmark = pytest.mark.slow

SCRIPTS = ('project', 'mmdet')
FCOS_CAFFE = 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py'
DEFORMABLE_DETR = 'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py'


@pytest.fixture(scope='module')
def data_root(tmp_path_factory, tiny_runs):
    root = str(tmp_path_factory.mktemp('dropin') / 'shapes')
    tiny_runs.shapes_annotations(root)
    return root


def _edited_annotations(data_root: str, name: str, edit) -> str:
    with open(osp.join(data_root, 'annotations', 'instances_train.json')) as f:
        data = json.load(f)
    edit(data)
    with open(osp.join(data_root, 'annotations', name), 'w') as f:
        json.dump(data, f)
    return f'annotations/{name}'


def _stops(result, script: str, line: str) -> None:
    assert result.returncode != 0 and line in result.stdout, result.stdout[-3000:]
    if script == 'project':  # one line, no traceback
        errors = [text for text in result.stdout.splitlines() if text.startswith('error: ')]
        assert 'Traceback' not in result.stdout and len(errors) == 1 and line in errors[0], result.stdout[-3000:]
    assert 'Iter(train) [1/' not in result.stdout


@pytest.mark.parametrize('script', SCRIPTS)
def test_fcos_with_resnet_indices(tmp_path, tiny_runs, data_root, script):
    extra = "model['backbone']['out_indices'] = (0, 1, 2, 3)\n" \
            "model['neck']['in_channels'] = out_channels(1.3, (0, 1, 2, 3))\n"
    config = tiny_runs.write_dropin_config(str(tmp_path / 'fcos.py'), data_root, base=FCOS_CAFFE, extra=extra)
    result = tiny_runs.run_train(script, config, str(tmp_path / 'wd'))
    _stops(result, script, 'bbox_head.prior_generator expects feature strides [8, 16, 32, 64, 128], but the '
                           'features it receives have strides [4, 8, 16, 32, 64]')
    assert 'use out_indices=(1, 2, 3, 5)' in result.stdout


@pytest.mark.parametrize('script', SCRIPTS)
def test_deformable_detr_with_resnet_indices(tmp_path, tiny_runs, data_root, script):
    extra = ("model['backbone']['out_indices'] = (1, 2, 3)\n"
             "model['neck']['in_channels'] = out_channels(1.3, (1, 2, 3))\n")
    config = tiny_runs.write_dropin_config(str(tmp_path / 'detr.py'), data_root, base=DEFORMABLE_DETR, extra=extra)
    result = tiny_runs.run_train(script, config, str(tmp_path / 'wd'))
    _stops(result, script, "DeformableDETR (DETR-like) expects its backbone's deepest output at stride 32, but the "
                           "backbone's outputs have strides [4, 8, 16]")


@pytest.mark.parametrize('script', SCRIPTS)
def test_caffe_normalisation_with_imagenet_weights_warns_and_trains(tmp_path, tiny_runs, data_root, script):
    weights = str(tmp_path / 'rexnet_1.3.pth')  # a local ImageNet file: nothing downloads
    save_own_format(ReXNet(widen_factor=1.3, out_indices=(1, 2, 3, 5)).state_dict(), weights, 1.3)
    config = tiny_runs.write_dropin_config(str(tmp_path / 'fcos.py'), data_root, base=FCOS_CAFFE, checkpoint=weights)
    result = tiny_runs.run_train(script, config, str(tmp_path / 'wd'))
    assert result.returncode == 0, result.stdout[-3000:]
    assert 'which expect RGB images normalised with mean=[123.675, 116.28, 103.53]' in result.stdout
    assert 'bgr_to_rgb=False' in result.stdout and 'Iter(train) [1/1]' in result.stdout


@pytest.mark.parametrize('script', SCRIPTS)
def test_a_kept_resnet_in_channels(tmp_path, tiny_runs, data_root, script):
    config = tiny_runs.write_dropin_config(str(tmp_path / 'retina.py'), data_root,
                                           extra="model['neck']['in_channels'] = [256, 512, 1024, 2048]\n")
    result = tiny_runs.run_train(script, config, str(tmp_path / 'wd'))
    _stops(result, script, 'the neck (FPN) expects in_channels=[256, 512, 1024, 2048], but ReXNet(widen_factor=1.3, '
                           "out_indices=(1, 2, 3, 5)) returns [50, 79, 167, 240]")


@pytest.mark.parametrize('script', SCRIPTS)
def test_a_width_changed_on_the_command_line(tmp_path, tiny_runs, data_root, script):
    """A config of the project's chain (the demo detector, tiny) with --cfg-options model.backbone.widen_factor=1.3."""
    config = tiny_runs.write_tiny_config(str(tmp_path / 'tiny.py'), str(tmp_path / 'shapes'))
    result = tiny_runs.run_train(script, config, str(tmp_path / 'wd'),
                                 args=['--cfg-options', 'model.backbone.widen_factor=1.3'])
    _stops(result, script, 'the neck (FPN) expects in_channels=[38, 61, 128, 185], but ReXNet(widen_factor=1.3, '
                           'out_indices=(1, 2, 3, 5)) returns [50, 79, 167, 240]')
    assert "add --cfg-options 'model.neck.in_channels=[50,79,167,240]'" in result.stdout


@pytest.mark.parametrize('script', SCRIPTS)
def test_a_negative_width_box_is_named_and_the_rest_trains(tmp_path, tiny_runs, data_root, script):
    def negative(data):
        data['annotations'][0]['bbox'][2] = -5.0
    ann = _edited_annotations(data_root, f'negative_{script}.json', negative)
    config = tiny_runs.write_dropin_config(str(tmp_path / 'retina.py'), data_root, ann_file=ann)
    result = tiny_runs.run_train(script, config, str(tmp_path / 'wd'))
    assert result.returncode == 0, result.stdout[-3000:]
    assert 'MMDetection drops 1 of its' in result.stdout and '(1 width or height below 1 pixel;' in result.stdout
    assert 'annotation 1 in ' in result.stdout and 'Iter(train) [1/1]' in result.stdout


@pytest.mark.parametrize('script', SCRIPTS)
def test_an_empty_annotations_list(tmp_path, tiny_runs, data_root, script):
    ann = _edited_annotations(data_root, f'empty_{script}.json', lambda data: data.update(annotations=[]))
    config = tiny_runs.write_dropin_config(str(tmp_path / 'retina.py'), data_root, ann_file=ann)
    result = tiny_runs.run_train(script, config, str(tmp_path / 'wd'))
    # MMDetection's script builds the dataset before any hook runs: the same line comes from the dataset.
    _stops(result, script, f'{ann}: the training split would be empty: none of its 8 images has an annotation')
    assert 'need at least one array to concatenate' not in result.stdout
