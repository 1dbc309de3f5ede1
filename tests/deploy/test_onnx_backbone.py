"""ONNX export of the ReXNet backbone: ONNX Runtime matches PyTorch, dynamic shapes, the CLI."""
import os.path as osp

import pytest
import torch

pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')

import onnx  # noqa: E402

from rexnet_mmdet.deploy import onnx_backbone as ox  # noqa: E402

TOLERANCE = 1e-4
pytestmark = pytest.mark.usefixtures('one_thread')


#: The official-format stand-ins (conftest's ``official_checkpoints``) and the family each is for.
FAMILIES = {'0.9': dict(widen_factor=0.9), '1.0': dict(widen_factor=1.0),
            'lite1.0': dict(widen_factor=1.0, arch='lite')}


@pytest.mark.parametrize('width', list(FAMILIES))
@pytest.mark.parametrize('taps', [(1, 2, 3, 5), (4, 6)])
def test_onnx_runtime_matches_pytorch(width, taps, official_checkpoints, tmp_path):
    family = dict(FAMILIES[width])
    w = family.pop('widen_factor')
    eager = ox.build_backbone_for_export(w, taps, official_checkpoints[width], optimize=False, **family)
    folded = ox.build_backbone_for_export(w, taps, official_checkpoints[width], optimize=True, **family)
    path = ox.export_backbone(folded, str(tmp_path / 'rexnet.onnx'), input_size=(64, 64), dynamic=True)

    graph = onnx.load(path).graph
    # BatchNorm is folded into the convs; the partial residual is a concatenation.
    ops = {node.op_type for node in graph.node}
    assert 'BatchNormalization' not in ops and 'Conv' in ops and 'Concat' in ops
    assert [o.name for o in graph.output] == [s.name for s in eager.output_shape()]

    session = ox.ort_session(path, threads=2)
    g = torch.Generator().manual_seed(0)
    # The export size, then another batch and size through the dynamic axes.
    for shape in ((1, 3, 64, 64), (2, 3, 96, 128)):
        x = torch.randn(*shape, generator=g)
        outs = ox.run_session(session, x)
        for out, spec in zip(outs, eager.output_shape()):
            assert out.shape == (shape[0], spec.channels, -(-shape[2] // spec.stride), -(-shape[3] // spec.stride))
        diffs = ox.parity(eager, session, x)
        assert max(diffs.values()) <= TOLERANCE, diffs
        with torch.no_grad():
            # Outputs of order 0.1-1: an absolute tolerance of 1e-4 is a real check.
            assert min(float(o.abs().max()) for o in eager(x)) > 0.05


def test_static_export_fixes_the_input_shape(official_checkpoints, tmp_path):
    model = ox.build_backbone_for_export(0.9, (5,), official_checkpoints['0.9'])
    static = onnx.load(ox.export_backbone(model, str(tmp_path / 's.onnx'), (64, 96), batch=2, dynamic=False))
    dynamic = onnx.load(ox.export_backbone(model, str(tmp_path / 'd.onnx'), (64, 96), dynamic=True))
    dims = lambda m: [d.dim_value or d.dim_param for d in m.graph.input[0].type.tensor_type.shape.dim]  # noqa: E731
    assert dims(static) == [2, 3, 64, 96]
    assert dims(dynamic) == ['batch', 3, 'height', 'width']


def test_random_weights_are_calibrated():
    # Random weights get BatchNorm statistics from data: outputs are far from zero, so that the
    # tools' parity check compares numbers of a real network's scale.
    model = ox.build_backbone_for_export(1.0, (1, 5), optimize=False, calibration_size=64)
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 64, 64))
    assert all(float(o.std()) > 0.1 for o in outs)


def test_export_rejects_training_mode_and_old_opsets(official_checkpoints, tmp_path):
    model = ox.build_backbone_for_export(1.0, (2,), official_checkpoints['1.0'], optimize=False)
    with pytest.raises(ValueError, match='eval mode'):
        ox.export_backbone(model.train(), str(tmp_path / 'a.onnx'), (64, 64))
    with pytest.raises(ValueError, match='opset'):
        ox.export_backbone(model.eval(), str(tmp_path / 'a.onnx'), (64, 64), opset=11)
    with pytest.raises(ValueError, match='optimization'):
        ox.ort_session('unused.onnx', optimization='fastest')


def test_export_tool(official_checkpoints, tmp_path, capsys, load_tool):
    export_onnx = load_tool('deployment/export_onnx.py')
    out = str(tmp_path / 'tool.onnx')
    code = export_onnx.main(['--widen-factor', '1.0', '--out-indices', '4', '6',
                             '--checkpoint', official_checkpoints['1.0'],
                             '--out', out, '--shape', '64', '64', '--dynamic', '--repeats', '1', '--warmup', '0',
                             '--threads', '1'])
    text = capsys.readouterr().out
    assert code == 0, text
    assert osp.isfile(out)
    assert 'parity: OK' in text
    assert 'input 2x3x96x128' in text  # the second, dynamic-shape check
    assert 'ONNX Runtime' in text and 'PyTorch eager' in text
    # ReXNet-R (random weights, BatchNorm set on random images): the same export and parity check.
    code = export_onnx.main(['--widen-factor', '1.0', '--channel-divisor', '8', '--out', out, '--shape', '64', '64',
                             '--repeats', '0', '--threads', '1'])
    text = capsys.readouterr().out
    assert code == 0 and 'ReXNet-R (channel_divisor=8)' in text and 'parity: OK' in text, text
    # A checkpoint of another width is refused with the layer that does not fit.
    with pytest.raises(SystemExit) as exc:
        export_onnx.main(['--widen-factor', '0.9', '--checkpoint', official_checkpoints['1.0'], '--out', out,
                          '--repeats', '0'])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'widen_factor' in err and 'Traceback' not in err
