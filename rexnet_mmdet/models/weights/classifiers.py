"""The ImageNet classifier of a ReXNet checkpoint, carried between key formats (the backbone's own
layers are :mod:`.formats`'s job)."""
from typing import Dict, Optional

import torch

from .families import CheckpointFamily
from .formats import CLASSIFIER_KEYS


def extract_classifier(raw: Dict[str, torch.Tensor], fmt: str) -> Dict[str, torch.Tensor]:
    """The classifier of a ReXNet-v1/R checkpoint as ``head.weight`` ``(classes, final)`` and ``head.bias``; {} if none."""
    prefix = CLASSIFIER_KEYS[fmt]
    out = {}
    if prefix + '.weight' in raw:
        weight = raw[prefix + '.weight']
        out['head.weight'] = weight.reshape(weight.shape[0], -1)
    if prefix + '.bias' in raw:
        out['head.bias'] = raw[prefix + '.bias']
    return out


def classifier_to_format(classifier: Dict[str, torch.Tensor], fmt: str) -> Dict[str, torch.Tensor]:
    """``head.*`` keys in ``fmt``'s classifier keys and shapes (the official one is a 1x1 conv)."""
    prefix = CLASSIFIER_KEYS[fmt]
    out = {}
    for key, value in classifier.items():
        if key == 'head.weight' and fmt == 'official':
            value = value[:, :, None, None]
        out[prefix + '.' + key.rpartition('.')[2]] = value.contiguous()
    return out


def converted_classifier(raw: Dict[str, torch.Tensor], src_fmt: str, fmt: str,
                          family: Optional[CheckpointFamily]) -> Dict[str, torch.Tensor]:
    if src_fmt == 'rexnet_mmdet' or fmt == 'rexnet_mmdet':
        return {}
    if family is not None and family.arch == 'lite':
        # Its head (1x1 conv, BN, ReLU6, dropout, 1x1 conv) exists in the official format only.
        return {k: v for k, v in raw.items() if k.startswith('output.')} if fmt == 'official' else {}
    return classifier_to_format(extract_classifier(raw, src_fmt), fmt)


__all__ = ['extract_classifier', 'classifier_to_format', 'converted_classifier']
