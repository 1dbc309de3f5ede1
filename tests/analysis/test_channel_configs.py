"""The stage-wise channel configuration of equal cost (paper §4, Figure 2)."""
import pytest
import torch
from mmdet.registry import MODELS

from rexnet_mmdet.analysis.channel_configs import (MOBILENETV2_STAGE_CHANNELS, backbone_macs,
                                                   stagewise_block_channels)
from rexnet_mmdet.analysis.complexity import backbone_complexity
from rexnet_mmdet.models.channels import NUM_BLOCKS, PUBLISHED_WIDTHS, STAGE_DEPTHS, linear_block_channels


def _stages(channels):
    out, i = [], 0
    for depth in STAGE_DEPTHS:
        out.append(channels[i:i + depth])
        i += depth
    return out


@pytest.mark.parametrize('w', PUBLISHED_WIDTHS)
def test_stagewise_is_stagewise_and_costs_the_same(w):
    channels = stagewise_block_channels(w)
    assert len(channels) == NUM_BLOCKS and all(isinstance(c, int) for c in channels)
    stages = _stages(channels)
    assert all(len(set(s)) == 1 for s in stages)  # constant within each stage
    assert channels == sorted(channels)
    assert channels[0] == linear_block_channels(w)[0]  # same first block
    # Stage ratios follow MobileNetV2's pattern (up to rounding).
    scale = stages[-1][0] / MOBILENETV2_STAGE_CHANNELS[-1]
    for s, base in zip(stages[1:], MOBILENETV2_STAGE_CHANNELS[1:]):
        assert abs(s[0] - base * scale) <= 1
    linear = backbone_macs(w)
    assert abs(backbone_macs(w, channels) - linear) / linear < 0.01
    assert channels != linear_block_channels(w)


@pytest.mark.slow
def test_stagewise_backbone_builds_and_its_counted_flops_match():
    channels = stagewise_block_channels(1.0)
    backbone = MODELS.build(dict(type='ReXNet', widen_factor=1.0, out_indices=(1, 2, 3, 5),
                                 block_channels=channels))
    backbone.eval()
    with torch.no_grad():
        outs = backbone(torch.zeros(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [channels[2], channels[4], channels[10], channels[15]]
    # Counted by tracing (at 128x128 to be quick): equal cost there too.
    stagewise = backbone_complexity(1.0, 128, out_indices=(6,), block_channels=channels)
    linear = backbone_complexity(1.0, 128, out_indices=(6,))
    assert abs(stagewise.flops - linear.flops) / linear.flops < 0.02
    assert linear.flops == backbone_macs(1.0, input_size=(128, 128))


def test_bad_stage_pattern_is_rejected():
    with pytest.raises(ValueError, match='one per stage'):
        stagewise_block_channels(1.0, stage_channels=(16, 24, 32))
