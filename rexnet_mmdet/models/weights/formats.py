"""ReXNet's weight key formats: which layer is called what in each, how a format is recognised, and
conversion between them.

Three key formats are understood and recognised automatically:

* ``official`` - the original ReXNet-v1 and ReXNet-lite releases (``rexnetv1_1.0.pth``,
  ``rexnet_lite_1.0.pth``): ``features.0`` stem conv, ``features.{b+3}.out.{i}`` blocks,
  ``features.19/20`` final conv and BN, ``output.*`` classifier.
* ``timm`` - timm's ``rexnet_100`` and ``rexnetr_200`` etc. (``.pth`` or ``.safetensors``): ``stem.conv``,
  ``features.{b}.conv_exp|conv_dw|se|conv_pwl``, ``features.16`` final conv, ``head.fc``.
* ``rexnet_mmdet`` - this project's own: the backbone's ``state_dict`` with ``meta`` saying the width.
  An MMDetection detector checkpoint (keys ``backbone.*``) is read as this format too.

The rest of the weights package, one job per module: :mod:`.weight_files` (reading and writing),
:mod:`.families` (which family and width a checkpoint was made for), :mod:`.classifiers` (ImageNet
classifiers), :mod:`.pretrained` (loading into a backbone, the published URLs) and :mod:`.convert`.
"""
import re
from dataclasses import replace
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..channels import BlockSetting, block_settings
from .safe_load import CheckpointError

FORMATS = ('official', 'timm', 'rexnet_mmdet')
#: Module prefix of each format's classifier (dropped when converting to this project's keys).
CLASSIFIER_PREFIXES = {'official': ('output.',), 'timm': ('head.',)}
#: Classifier layer of each format (ReXNet-v1 and R); this project's own format calls it ``head``.
CLASSIFIER_KEYS = {'official': 'output.1', 'timm': 'head.fc', 'rexnet_mmdet': 'head'}


# ---------------------------------------------------------------- key tables
def _block_layers(s: BlockSetting) -> List[Tuple[str, str, str]]:
    """(own, official, timm) module prefixes of one block's layers, in state-dict order."""
    own, off, tim = f'blocks.{s.index}.', f'features.{s.index + 3}.out.', f'features.{s.index}.'
    names = []
    if s.expand_ratio != 1:
        names.append(('conv_exp.conv', 'conv_exp.conv'))
        names.append(('conv_exp.bn', 'conv_exp.bn'))
    names += [('conv_dw.conv', 'conv_dw.conv'), ('conv_dw.bn', 'conv_dw.bn')]
    if s.use_se:
        names += [('se.fc1', 'se.fc1'), ('se.bn', 'se.bn'), ('se.fc2', 'se.fc2')]
    names += [('conv_pwl.conv', 'conv_pwl.conv'), ('conv_pwl.bn', 'conv_pwl.bn')]
    # The official model numbers its Sequential: act layers take slots too.
    if s.expand_ratio == 1:
        official = ['0', '1', '3', '4']
    elif s.use_se:
        official = ['0', '1', '3', '4', '5.fc.0', '5.fc.1', '5.fc.3', '7', '8']
    else:
        official = ['0', '1', '3', '4', '6', '7']
    return [(own + o, off + f, tim + t) for (o, t), f in zip(names, official)]


def layer_table(settings: Sequence[BlockSetting]) -> List[Tuple[str, str, str]]:
    """(own, official, timm) prefixes of every backbone layer (no classifier), in order."""
    rows = [('stem.conv', 'features.0', 'stem.conv'), ('stem.bn', 'features.1', 'stem.bn')]
    for s in settings:
        rows += _block_layers(s)
    rows += [('final_conv.conv', 'features.19', 'features.16.conv'),
             ('final_conv.bn', 'features.20', 'features.16.bn')]
    return rows


def _split(key: str) -> Tuple[str, str]:
    prefix, _, param = key.rpartition('.')
    return prefix, param


# ---------------------------------------------------------------- detection and conversion
def detect_format(state_dict: Dict[str, torch.Tensor], source: str = 'checkpoint') -> str:
    """'official', 'timm' or 'rexnet_mmdet' (also detector checkpoints with ``backbone.*`` keys)."""
    keys = set(state_dict)
    if 'features.0.weight' in keys and any(re.match(r'features\.\d+\.out\.', k) for k in keys):
        return 'official'
    if 'stem.conv.weight' in keys and any(k.startswith('features.') for k in keys):
        return 'timm'
    if 'stem.conv.weight' in keys and any(k.startswith('blocks.') for k in keys):
        return 'rexnet_mmdet'
    if 'backbone.stem.conv.weight' in keys:
        return 'rexnet_mmdet'
    sample = ', '.join(sorted(keys)[:5])
    raise CheckpointError(
        f'{source}: unknown checkpoint format, no ReXNet backbone weights in it (first keys: {sample}). Known formats: the official ReXNet-v1 '
        f'(features.0.weight, features.3.out.0.weight ...), timm rexnet_* (stem.conv.weight, '
        f'features.0.conv_dw.conv.weight ...), or this project\'s (stem.conv.weight, blocks.0...)')


def to_own_format(state_dict: Dict[str, torch.Tensor], fmt: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """Convert a state dict of any known format to this project's keys; the classifier is dropped."""
    fmt = fmt or detect_format(state_dict)
    if fmt == 'rexnet_mmdet':
        if 'backbone.stem.conv.weight' in state_dict:
            return {k[len('backbone.'):]: v for k, v in state_dict.items() if k.startswith('backbone.')}
        return dict(state_dict)
    column = 1 if fmt == 'official' else 2
    # Widths do not matter for the names: build the table for the deepest (16-block) layout.
    table = {row[column]: row[0] for row in layer_table(_layout_from(state_dict, fmt))}
    out = {}
    for key, value in state_dict.items():
        if key.startswith(CLASSIFIER_PREFIXES[fmt]):
            continue
        prefix, param = _split(key)
        if prefix not in table:
            raise CheckpointError(f'unexpected key {key!r} in a {fmt}-format checkpoint; is it a ReXNet '
                                  f'(v1, R or lite) checkpoint, not another model?')
        out[f'{table[prefix]}.{param}'] = value
    return out


def _layout_from(state_dict: Dict[str, torch.Tensor], fmt: str) -> List[BlockSetting]:
    """Block settings with the structure (expansion, SE) a foreign checkpoint has; channels irrelevant."""
    settings = block_settings(1.0)
    has_se = []
    for s in settings:
        key = f'features.{s.index + 3}.out.5.fc.0.weight' if fmt == 'official' else f'features.{s.index}.se.fc1.weight'
        has_se.append(key in state_dict)
    return [replace(s, use_se=se) for s, se in zip(settings, has_se)]


def from_own_format(state_dict: Dict[str, torch.Tensor], fmt: str) -> Dict[str, torch.Tensor]:
    """Convert this project's keys to ``fmt`` ('official' or 'timm'); no classifier is written."""
    if fmt == 'rexnet_mmdet':
        return dict(state_dict)
    if fmt not in FORMATS:
        raise ValueError(f'format must be one of {FORMATS}, got {fmt!r}')
    column = 1 if fmt == 'official' else 2
    settings = [replace(s, use_se=f'blocks.{s.index}.se.fc1.weight' in state_dict) for s in block_settings(1.0)]
    table = {row[0]: row[column] for row in layer_table(settings)}
    out = {}
    for key, value in state_dict.items():
        prefix, param = _split(key)
        out[f'{table[prefix]}.{param}'] = value
    return out


__all__ = ['FORMATS', 'CLASSIFIER_PREFIXES', 'CLASSIFIER_KEYS', 'layer_table', 'detect_format', 'to_own_format',
           'from_own_format']
