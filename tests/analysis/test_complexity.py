"""FLOP and parameter counting against hand counts, the official model and the paper."""
import os.path as osp

import pytest
import torch
import torch.nn as nn

from rexnet_mmdet.analysis.channel_configs import backbone_macs
from rexnet_mmdet.analysis.complexity import (classifier_complexity, count_complexity, count_parameters,
                                              detector_complexity)
from rexnet_mmdet.analysis.paper import (CONFIG_NAMES, OFFICIAL_CLASSIFIER_PARAMS, PAPER_DETECTORS,
                                         paper_classifier, paper_detector)
from rexnet_mmdet.utils.build import CONFIG_DIR


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(x.mean(dim=(2, 3)))


def test_hand_count_of_a_tiny_module():
    result = count_complexity(Tiny(), torch.zeros(1, 3, 16, 16))
    conv = 16 * 16 * 8 * 3 * 9  # one multiply-add per output element and kernel tap
    fc = 8 * 4
    assert result.flops == conv + fc
    assert result.by_module == {'conv': conv, 'bn': 0, 'fc': fc}
    assert result.params == 8 * 3 * 9 + 2 * 8 + 8 * 4 + 4 == count_parameters(Tiny())
    assert result.params_by_module == {'conv': 216, 'bn': 16, 'fc': 36}
    # BatchNorm is folded by default; counted on request, 2 per element (scale and shift).
    with_norm = count_complexity(Tiny(), torch.zeros(1, 3, 16, 16), count_norm=True)
    assert with_norm.flops == conv + fc + 2 * 16 * 16 * 8


def test_rexnet_1_0_classifier_matches_the_paper():
    result = classifier_complexity(1.0, 224)
    assert result.params == OFFICIAL_CLASSIFIER_PARAMS[1.0]
    paper = paper_classifier(1.0)
    assert abs(result.gflops - paper.gflops) < 0.005, result.gflops  # 0.398 vs 0.40
    # The analytic count of the channel table agrees with the traced one (it leaves out the
    # global pooling only).
    analytic = backbone_macs(1.0, num_classes=1000)
    assert abs(result.flops - analytic) / analytic < 1e-3


def test_paper_table_has_the_nine_configs():
    assert len(CONFIG_NAMES) == 9
    for name in CONFIG_NAMES:
        assert osp.isfile(osp.join(CONFIG_DIR, name + '.py')), name
        assert paper_detector(name + '.py') is PAPER_DETECTORS[name]
    assert paper_detector('nope') is None


@pytest.mark.slow
def test_ssdlite_config_matches_the_paper():
    name = 'ssdlite_rexnet_x1.0'
    paper = paper_detector(name)
    result = detector_complexity(osp.join(CONFIG_DIR, name + '.py'), paper.input_size)
    assert result.input_shape == (1, 3, 320, 320)
    assert abs(result.params_m - paper.params_m) / paper.params_m < 0.02, result.params_m
    assert abs(result.gflops - paper.gflops) / paper.gflops < 0.02, result.gflops
    assert set(result.by_module) >= {'backbone', 'neck', 'bbox_head'}
    assert sum(result.by_module.values()) == result.flops


@pytest.mark.slow
def test_faster_rcnn_config_matches_the_paper_at_1280x800():
    name = 'faster_rcnn_rexnet_x1.0_fpn'
    paper = paper_detector(name)
    cfg = osp.join(CONFIG_DIR, name + '.py')
    result = detector_complexity(cfg, paper.counted_size)
    assert result.input_shape == (1, 3, 800, 1280)
    assert abs(result.gflops - paper.gflops) / paper.gflops < 0.005, result.gflops
    assert abs(result.params_m - paper.params_m) / paper.params_m < 0.01, result.params_m
    assert 'box head on 1000 proposals' in result.notes


def test_bad_config_path_is_named():
    with pytest.raises(FileNotFoundError, match='no_such_config.py'):
        detector_complexity('no_such_config.py', 320)
