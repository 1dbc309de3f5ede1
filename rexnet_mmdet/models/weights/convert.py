"""Converting a ReXNet checkpoint from one key format to another, as a file."""
import os.path as osp
from typing import Optional, Tuple

from .classifiers import converted_classifier
from .families import CheckpointFamily, infer_family
from .formats import FORMATS, detect_format, from_own_format, to_own_format
from .safe_load import CheckpointError
from .weight_files import read_state_dict, save_own_format, write_state_dict


def convert_checkpoint(src: str, dst: str, fmt: str = 'rexnet_mmdet'
                       ) -> Tuple[str, Optional[CheckpointFamily], bool]:
    """Convert the checkpoint at ``src`` (any known format) to ``fmt`` at ``dst``.

    ``rexnet_mmdet`` writes the backbone only. ``official`` and ``timm`` also write the source's classifier
    when it has one in that format, so the file loads strictly into the reference model (timm:
    ``timm.create_model(name, num_classes=N)``); without one (a ``rexnet_mmdet`` or detector source) the
    file holds the backbone only (timm: ``timm.create_model(name, num_classes=0)`` loads it strictly).
    ``dst`` ending in ``.safetensors`` is written as safetensors.

    Returns (source format, family and width the weights were made for, whether a classifier was written).
    """
    if fmt not in FORMATS:
        raise ValueError(f'--format must be one of {", ".join(FORMATS)}, got {fmt!r}')
    raw = read_state_dict(src)
    src_fmt = detect_format(raw, str(src))
    state = to_own_format(raw, src_fmt)
    family = infer_family(state)
    if fmt == 'rexnet_mmdet':
        save_own_format(state, dst, family, source=f'{osp.basename(src)} ({src_fmt})')
        return src_fmt, family, False
    if fmt == 'timm' and family is not None and family.arch == 'lite':
        raise CheckpointError(f'{src} holds ReXNet-lite weights, which timm has no model for: convert them to '
                              f'--format official or rexnet_mmdet')
    out = from_own_format(state, fmt)
    classifier = converted_classifier(raw, src_fmt, fmt, family)
    out.update(classifier)
    write_state_dict(out, dst)
    return src_fmt, family, bool(classifier)


__all__ = ['convert_checkpoint']
