"""How a ReXNet width is written everywhere: logs, errors, tables, labels and file names.

``format_width(1) == '1.0'`` and ``width_tag(0.9) == 'x0.9'``, as the config names write widths
(``faster_rcnn_rexnet_x1.0_fpn.py``): at least one decimal, never ``1`` in one place and ``1.0`` in
another. Torch-free.
"""


def format_width(widen_factor: float) -> str:
    """``1 -> '1.0'``, ``0.9 -> '0.9'``, ``2.2 -> '2.2'``, ``1.25 -> '1.25'``."""
    w = float(widen_factor)
    return f'{w:.1f}' if round(w, 1) == w else f'{w:g}'


def width_tag(widen_factor: float) -> str:
    """``1 -> 'x1.0'``: the width as config names and tables write it."""
    return 'x' + format_width(widen_factor)


__all__ = ['format_width', 'width_tag']
