"""One way to write a width: ``1.0`` and ``x1.0`` everywhere, never ``1`` in one place and ``1.0`` in another."""
import pytest

from rexnet_mmdet.models.width_names import format_width, width_tag


@pytest.mark.parametrize('width, text', [(1, '1.0'), (1.0, '1.0'), (0.9, '0.9'), (2.2, '2.2'), (1.25, '1.25'),
                                         (2, '2.0')])
def test_format_width(width, text):
    assert format_width(width) == text and width_tag(width) == 'x' + text


def test_tools_write_widths_one_way(official_checkpoints, tmp_path, load_tool, capsys):
    # convert_weights used to print widen_factor=1 for the x1.0 weights.
    convert = load_tool('model_converters/convert_weights.py')
    assert convert.main([official_checkpoints['1.0'], str(tmp_path / 'own.pth')]) == 0
    out = capsys.readouterr().out
    assert 'widen_factor=1.0 (ReXNet-v1) ->' in out
    export = load_tool('deployment/export_onnx.py')
    assert export.parse_args(['--widen-factor', '1']).out.endswith('rexnet_x1.0_taps1235.onnx')
