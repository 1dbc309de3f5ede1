"""ReXNetGuardHook's checks on built detectors written from the README's own-detector snippet: strides (FCOS,
Deformable DETR), channels (a kept ResNet list, a width changed on the command line) and the input
normalisation against ImageNet weights."""
import os.path as osp

import pytest
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

from rexnet_mmdet import PRETRAINED_URLS, ReXNet, out_channels
from rexnet_mmdet.engine import ChannelMismatchError, StrideMismatchError, check_feature_strides
from rexnet_mmdet.engine.model_checks import check_neck_channels, input_normalisation_advice
from rexnet_mmdet.models.weights import save_own_format
from rexnet_mmdet.utils.build import CONFIG_DIR

pytestmark = pytest.mark.usefixtures('one_thread')

FCOS_CAFFE = 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py'
DEFORMABLE_DETR = 'mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py'
#: Deformable DETR's ResNet levels (C3-C5), as its recipe has them, into a ReXNet: strides 4/8/16.
DETR_RESNET_INDICES = "model['backbone']['out_indices'] = (1, 2, 3)\n" \
    "model['neck']['in_channels'] = out_channels(1.3, (1, 2, 3))\n" \
    "model.update(encoder=dict(num_layers=1), decoder=dict(num_layers=1))\n"


@pytest.fixture(scope='module')
def imagenet_file(tmp_path_factory) -> str:
    """ImageNet weights of the README's ReXNet x1.3, written here (nothing downloads)."""
    path = str(tmp_path_factory.mktemp('weights') / 'rexnet_1.3.pth')
    save_own_format(ReXNet(widen_factor=1.3, out_indices=(1, 2, 3, 5)).state_dict(), path, 1.3)
    return path


def _dropin(tmp_path, tiny_runs, **kwargs):
    config = tiny_runs.write_dropin_config(str(tmp_path / 'dropin.py'), str(tmp_path / 'data'), **kwargs)
    cfg = Config.fromfile(config)
    init_default_scope('mmdet')
    return MODELS.build(cfg.model)


def test_the_readme_snippet_passes(tmp_path, tiny_runs, imagenet_file):
    model = _dropin(tmp_path, tiny_runs, checkpoint=imagenet_file)
    check_neck_channels(model)
    assert check_feature_strides(model)['features'] == [8, 16, 32, 64, 128]
    assert input_normalisation_advice(model) is None


def test_fcos_with_resnet_indices_stops_with_the_indices_to_use(tmp_path, tiny_runs):
    extra = "model['backbone']['out_indices'] = (0, 1, 2, 3)\nmodel['neck']['in_channels'] = " \
            "out_channels(1.3, (0, 1, 2, 3))\n"
    model = _dropin(tmp_path, tiny_runs, base=FCOS_CAFFE, extra=extra)
    with pytest.raises(StrideMismatchError) as err:
        check_feature_strides(model)
    assert str(err.value).startswith('bbox_head.prior_generator expects feature strides [8, 16, 32, 64, 128], but '
                                     'the features it receives have strides [4, 8, 16, 32, 64]')
    assert 'use out_indices=(1, 2, 3, 5)' in str(err.value) and '\n' not in str(err.value)


def test_deformable_detr_with_resnet_indices_stops(tmp_path, tiny_runs):
    model = _dropin(tmp_path, tiny_runs, base=DEFORMABLE_DETR, extra=DETR_RESNET_INDICES)
    with pytest.raises(StrideMismatchError) as err:
        check_feature_strides(model)
    message = str(err.value)
    assert message.startswith("DeformableDETR (DETR-like) expects its backbone's deepest output at stride 32, but "
                              "the backbone's outputs have strides [4, 8, 16]")
    assert f'use out_indices=(2, 3, 5) (strides (8, 16, 32)) and neck in_channels={out_channels(1.3, (2, 3, 5))}' \
        in message and '\n' not in message
    # The right indices pass; a config meant for other strides says so to the guard.
    assert check_feature_strides(model, detr_stride=16)['backbone'] == [4, 8, 16]
    fixed = _dropin(tmp_path, tiny_runs, base=DEFORMABLE_DETR,
                    extra=DETR_RESNET_INDICES.replace('(1, 2, 3)', '(2, 3, 5)'))
    assert check_feature_strides(fixed) == dict(backbone=[8, 16, 32], features=[8, 16, 32, 64])


def test_a_kept_resnet_in_channels_gives_one_line(tmp_path, tiny_runs):
    model = _dropin(tmp_path, tiny_runs, extra="model['neck']['in_channels'] = [256, 512, 1024, 2048]\n")
    with pytest.raises(ChannelMismatchError) as err:
        check_neck_channels(model)
    assert str(err.value) == (
        'the neck (FPN) expects in_channels=[256, 512, 1024, 2048], but ReXNet(widen_factor=1.3, out_indices=(1, 2, '
        '3, 5)) returns [50, 79, 167, 240] (rexnet_mmdet.out_channels(1.3, (1, 2, 3, 5))): add --cfg-options '
        "'model.neck.in_channels=[50,79,167,240]', or write those numbers in the config")


def test_a_width_changed_on_the_command_line_names_every_option():
    cfg = Config.fromfile(osp.join(CONFIG_DIR, 'faster_rcnn_rexnet_x1.0_fpn.py'))
    cfg.merge_from_dict({'model.backbone.widen_factor': 1.3})
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)  # builds; the ImageNet file is only read by init_weights
    with pytest.raises(ChannelMismatchError) as err:
        check_neck_channels(model)
    assert str(err.value).endswith(
        "add --cfg-options 'model.neck.in_channels=[50,79,167,240]' "
        f'model.backbone.init_cfg.checkpoint={PRETRAINED_URLS[1.3]}, or write those numbers in the config')
    # With the neck fixed, the file of the wrong width is still refused; a width without weights transfers.
    cfg.merge_from_dict({'model.neck.in_channels': out_channels(1.3, (1, 2, 3, 5))})
    with pytest.raises(ChannelMismatchError, match=r'another width .*rexnetv1_100.*: add --cfg-options '
                                                   r'model.backbone.init_cfg.checkpoint=.*rexnetv1_130'):
        check_neck_channels(MODELS.build(cfg.model))
    cfg.merge_from_dict({'model.backbone.widen_factor': 1.1, 'model.neck.in_channels': out_channels(1.1)})
    with pytest.raises(ChannelMismatchError, match=r'add --cfg-options model.backbone.init_cfg.width_transfer=True$'):
        check_neck_channels(MODELS.build(cfg.model))


def test_caffe_normalisation_with_imagenet_weights_warns(tmp_path, tiny_runs, imagenet_file):
    model = _dropin(tmp_path, tiny_runs, base=FCOS_CAFFE, checkpoint=imagenet_file)
    advice = input_normalisation_advice(model)
    assert advice.startswith(f'the backbone starts from ImageNet weights ({imagenet_file}), which expect RGB images '
                             'normalised with mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], but the '
                             'data_preprocessor gives mean=[102.98, 115.947, 122.772], std=[1.0, 1.0, 1.0], '
                             'bgr_to_rgb=False')
    assert "model.data_preprocessor.bgr_to_rgb=True" in advice and '\n' not in advice
    # A random start has nothing to match.
    assert input_normalisation_advice(_dropin(tmp_path, tiny_runs, base=FCOS_CAFFE)) is None


def test_a_width_changed_on_an_ssdlite_config_names_every_list_to_change():
    """SSDNeck does not keep its in_channels; the config has them, repeated in the neck's and head's lists."""
    cfg = Config.fromfile(osp.join(CONFIG_DIR, 'ssdlite_rexnet_x1.0.py'))
    cfg.merge_from_dict({'model.backbone.widen_factor': 1.3})
    init_default_scope('mmdet')
    with pytest.raises(ChannelMismatchError) as err:
        check_neck_channels(MODELS.build(cfg.model), cfg.model)
    assert str(err.value) == (
        'the neck (SSDNeck) expects in_channels=[768, 1280], but ReXNet(widen_factor=1.3, out_indices=(4, 6)) returns '
        "[1002, 1664] (rexnet_mmdet.out_channels(1.3, (4, 6))): add --cfg-options 'model.neck.in_channels=[1002,1664]' "
        "'model.neck.out_channels=[1002,1664,512,256,256,128]' 'model.bbox_head.in_channels=[1002,1664,512,256,256,128]' "
        f'model.backbone.init_cfg.checkpoint={PRETRAINED_URLS[1.3]}, or write those numbers in the config')
    # Those options make the x1.3 config's lists.
    x13 = Config.fromfile(osp.join(CONFIG_DIR, 'ssdlite_rexnet_x1.3.py'))
    assert list(x13.model.neck.out_channels) == [1002, 1664, 512, 256, 256, 128] == list(x13.model.bbox_head.in_channels)


def test_mask2formers_pixel_decoder_strides_are_checked(tmp_path):
    (tmp_path / 'm2f.py').write_text("_base_ = 'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py'\n")
    cfg = Config.fromfile(str(tmp_path / 'm2f.py'))
    init_default_scope('mmdet')
    models = {}
    for indices in ((1, 2, 3, 5), (0, 1, 2, 3)):  # ReXNet's C2-C5; ResNet's numbering
        cfg.model.backbone = dict(type='ReXNet', out_indices=indices)
        cfg.model.panoptic_head.update(in_channels=out_channels(1.0, indices))
        cfg.model.panoptic_head.pixel_decoder.encoder.num_layers = 1
        cfg.model.panoptic_head.transformer_decoder.num_layers = 1
        models[indices] = MODELS.build(cfg.model)
    assert check_feature_strides(models[(1, 2, 3, 5)])['backbone'] == [4, 8, 16, 32]
    with pytest.raises(StrideMismatchError, match=r'^panoptic_head.pixel_decoder expects backbone output strides '
                                                  r'\[4, 8, 16, 32\], but .* have strides \[2, 4, 8, 16\] .*use '
                                                  r'out_indices=\(1, 2, 3, 5\) \(strides \(4, 8, 16, 32\)\) and '
                                                  r'model.panoptic_head.in_channels=\[38, 61, 128, 185\]'):
        check_feature_strides(models[(0, 1, 2, 3)])
