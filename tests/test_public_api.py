"""What a user or a config writer gets from ``import rexnet_mmdet``, and what the backbone tells them."""
import logging
import subprocess
import sys
import uuid

import pytest
from mmdet.registry import MODELS, TASK_UTILS
from mmengine.logging import MMLogger

import rexnet_mmdet
from rexnet_mmdet import ReXNet, out_channels


def test_public_names():
    assert len(set(rexnet_mmdet.__all__)) == len(rexnet_mmdet.__all__)
    for name in rexnet_mmdet.__all__:
        assert getattr(rexnet_mmdet, name) is not None, name
    assert {'ReXNet', 'out_channels', 'tap_specs', 'block_settings', 'PUBLISHED_WIDTHS', 'SSDLiteHead',
            'PRETRAINED_URLS', 'load_backbone_weights', 'optimize_for_inference'} <= set(rexnet_mmdet.__all__)
    assert out_channels(1.0, (2, 3, 5)) == [61, 128, 185]
    assert [t.stride for t in rexnet_mmdet.tap_specs(1.0)] == [2, 4, 8, 16, 16, 32, 32]
    # ReXNet-v1 weights by width; ReXNet-R weights by timm's model name.
    widths = {k for k in rexnet_mmdet.PRETRAINED_URLS if isinstance(k, float)}
    names = set(rexnet_mmdet.PRETRAINED_URLS) - widths
    assert widths <= set(rexnet_mmdet.PUBLISHED_WIDTHS)
    assert names == {f'rexnetr_{w}.sw_in12k{tag}' for w in (200, 300) for tag in ('', '_ft_in1k')}
    for name in names:
        assert rexnet_mmdet.PRETRAINED_URLS[name] == f'https://huggingface.co/timm/{name}/resolve/main/model.safetensors'
    assert rexnet_mmdet.lite_block_channels(1.0)[-1] == 184
    assert rexnet_mmdet.rounded_block_channels(2.0, 8)[-1] == 368


def test_import_registers():
    assert MODELS.get('ReXNet') is ReXNet
    assert MODELS.get('SSDLiteHead') is rexnet_mmdet.SSDLiteHead
    assert TASK_UTILS.get('SSDLiteAnchorGenerator') is rexnet_mmdet.SSDLiteAnchorGenerator


@pytest.mark.slow
def test_import_is_light_and_quiet_outside_a_run():
    """Importing the package (as a config's custom_imports does) pulls in no analysis or ONNX code, and a
    backbone built outside a run prints nothing on stdout, where tools print their tables."""
    # What the stack itself imports does not count: on torch 2.1, importing mmengine's model wrappers
    # reaches torch.onnx, which probes for onnx and onnxruntime.
    code = ('import sys, mmcv.ops, mmdet.models, mmengine.runner; before = set(sys.modules); import rexnet_mmdet; '
            'print(" ".join(m for m in set(sys.modules) - before if m.split(".")[0] in ("onnx", "onnxruntime") '
            'or m.startswith(("rexnet_mmdet.analysis", "rexnet_mmdet.deploy.onnx")))); '
            'rexnet_mmdet.ReXNet(out_indices=(5,))')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == ''


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def logged():
    """Lines logged at INFO and above to the current MMLogger, made here as a Runner makes its own."""
    logger = MMLogger.get_instance(f'test_public_api_{uuid.uuid4().hex}')  # becomes the current one
    handler = _Lines()
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


@pytest.mark.parametrize('out_indices, line', [
    ((1, 2, 3, 5), 'C2 38ch /4, C3 61ch /8, C4 128ch /16, C5 185ch /32'),
    ((2, 3, 5), 'C3 61ch /8, C4 128ch /16, C5 185ch /32'),
    ((4, 6), 'exp16 768ch /16, final_conv 1280ch /32'),
    # ResNet's numbering copied: strides 4/8/16, visible at once.
    ((1, 2, 3), 'C2 38ch /4, C3 61ch /8, C4 128ch /16'),
])
def test_backbone_logs_its_outputs_when_built(logged, out_indices, line):
    MODELS.build(dict(type='ReXNet', widen_factor=1.0, out_indices=out_indices))
    assert logged == [f'ReXNet(widen_factor=1.0, out_indices={out_indices}) outputs: {line}']


def test_log_line_names_width_and_custom_channels(logged):
    ReXNet(widen_factor=0.9, out_indices=(5,))
    ReXNet(widen_factor=1.0, out_indices=(0,), block_channels=[20] * 16)
    assert logged == ['ReXNet(widen_factor=0.9, out_indices=(5,)) outputs: C5 168ch /32',
                      'ReXNet(widen_factor=1.0, custom block_channels, out_indices=(0,)) outputs: block0 20ch /2']
