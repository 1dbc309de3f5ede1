"""ReXNet ImageNet weights: read, recognise, convert and load them safely.

Three key formats are understood and recognised automatically:

* ``official`` - the original ReXNet-v1 release (``rexnetv1_1.0.pth``): ``features.0`` stem conv,
  ``features.{b+3}.out.{i}`` blocks, ``features.19/20`` final conv and BN, ``output.1`` classifier.
* ``timm`` - timm's ``rexnet_100`` etc. (``.pth`` or ``.safetensors``): ``stem.conv``,
  ``features.{b}.conv_exp|conv_dw|se|conv_pwl``, ``features.16`` final conv, ``head.fc``.
* ``rexnet_mmdet`` - this project's own: the backbone's ``state_dict`` with ``meta`` saying the width.
  An MMDetection detector checkpoint (keys ``backbone.*``) is read as this format too.

Files are read by :mod:`.safe_load` (``weights_only`` with a fixed allowlist): a checkpoint never runs code.
"""
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..channels import (PUBLISHED_WIDTHS, BlockSetting, block_settings, final_channels,
                        linear_block_channels)
from .safe_load import (CheckpointError, CheckpointNotFoundError, CorruptCheckpointError, is_url, load_checkpoint,
                        one_line)

FORMATS = ('official', 'timm', 'rexnet_mmdet')
OWN_FORMAT_TAG = 'rexnet_mmdet.backbone'

#: Published ImageNet weights (timm's release of the official models; same tensors, timm key format).
PRETRAINED_URLS: Dict[float, str] = {
    1.0: 'https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-rexnet/rexnetv1_100-1b4dddf4.pth',
    1.3: 'https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-rexnet/rexnetv1_130-590d768e.pth',
    1.5: 'https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-rexnet/rexnetv1_150-bd1a6aa8.pth',
    2.0: 'https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-rexnet/rexnetv1_200-8c0b7f2d.pth',
    3.0: 'https://huggingface.co/timm/rexnet_300.nav_in1k/resolve/main/model.safetensors',
}


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


CLASSIFIER_PREFIXES = {'official': ('output.',), 'timm': ('head.',)}


def _split(key: str) -> Tuple[str, str]:
    prefix, _, param = key.rpartition('.')
    return prefix, param


# ---------------------------------------------------------------- reading
def read_state_dict(path_or_url: str) -> Dict[str, torch.Tensor]:
    """Read a checkpoint (path, URL or mmengine scheme) safely and return its flat state dict (unwrapped).

    Reading goes through :func:`.safe_load.load_checkpoint` (the allowlist of a training checkpoint:
    a detector checkpoint written by ``tools/train.py`` is accepted, its ``backbone.*`` weights are
    what :func:`to_own_format` takes). ``.safetensors`` files are read with safetensors.
    """
    if str(path_or_url).endswith('.safetensors') and not is_url(path_or_url):
        return _read_safetensors(path_or_url)
    return unwrap_state_dict(load_checkpoint(path_or_url, map_location='cpu'), str(path_or_url))


def _read_safetensors(path: str) -> Dict[str, torch.Tensor]:
    if not osp.isfile(path):
        raise CheckpointNotFoundError(f'checkpoint {path} not found (absolute path {osp.abspath(path)})')
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise CheckpointError('reading .safetensors needs the safetensors package: pip install safetensors') from None
    try:
        return load_file(path, device='cpu')
    except Exception as e:
        raise CorruptCheckpointError(f'could not read {path} ({osp.getsize(path)} bytes) as safetensors '
                                     f'({one_line(e, 160)}): the file is truncated or is not a safetensors file; '
                                     f'download it again') from None


def unwrap_state_dict(obj, source: str = 'checkpoint') -> Dict[str, torch.Tensor]:
    """Find the state dict in common containers and strip ``module.`` prefixes."""
    if isinstance(obj, dict):
        for key in ('state_dict', 'model', 'state_dict_ema', 'model_ema'):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f'{source} holds no state dict of tensors (got {type(obj).__name__}); '
                              f'expected a ReXNet ImageNet checkpoint')
    if all(k.startswith('module.') for k in obj):
        obj = {k[len('module.'):]: v for k, v in obj.items()}
    return dict(obj)


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


def infer_widen_factor(state_dict: Dict[str, torch.Tensor]) -> Optional[float]:
    """The width a rexnet_mmdet-format state dict was made for, or None if it follows no linear width."""
    outs = []
    for b in range(16):
        w = state_dict.get(f'blocks.{b}.conv_pwl.conv.weight')
        if w is None:
            break
        outs.append(w.shape[0])
    if not outs:
        return None
    final = state_dict.get('final_conv.conv.weight')
    candidates = list(PUBLISHED_WIDTHS) + [k / 100 for k in range(10, 501)]
    for w in candidates:
        if linear_block_channels(w)[:len(outs)] == outs and \
                (final is None or final_channels(w) == final.shape[0]):
            return w
    return None


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
            raise CheckpointError(f'unexpected key {key!r} in a {fmt}-format checkpoint; is it a ReXNet-v1 '
                                  f'checkpoint (not ReXNet-lite or another model)?')
        out[f'{table[prefix]}.{param}'] = value
    return out


def _layout_from(state_dict: Dict[str, torch.Tensor], fmt: str) -> List[BlockSetting]:
    """Block settings with the structure (expansion, SE) a foreign checkpoint has; channels irrelevant."""
    settings = block_settings(1.0)
    has_se = []
    for s in settings:
        key = f'features.{s.index + 3}.out.5.fc.0.weight' if fmt == 'official' else f'features.{s.index}.se.fc1.weight'
        has_se.append(key in state_dict)
    return [BlockSetting(s.index, s.stage, s.in_channels, s.out_channels, s.expand_ratio, s.stride, se)
            for s, se in zip(settings, has_se)]


def from_own_format(state_dict: Dict[str, torch.Tensor], fmt: str) -> Dict[str, torch.Tensor]:
    """Convert this project's keys to ``fmt`` ('official' or 'timm'); no classifier is written."""
    if fmt == 'rexnet_mmdet':
        return dict(state_dict)
    if fmt not in FORMATS:
        raise ValueError(f'format must be one of {FORMATS}, got {fmt!r}')
    column = 1 if fmt == 'official' else 2
    settings = [BlockSetting(s.index, s.stage, s.in_channels, s.out_channels, s.expand_ratio, s.stride,
                             f'blocks.{s.index}.se.fc1.weight' in state_dict) for s in block_settings(1.0)]
    table = {row[0]: row[column] for row in layer_table(settings)}
    out = {}
    for key, value in state_dict.items():
        prefix, param = _split(key)
        out[f'{table[prefix]}.{param}'] = value
    return out


def save_own_format(state_dict: Dict[str, torch.Tensor], path: str, widen_factor: Optional[float],
                    source: str = '') -> None:
    """Write a backbone state dict in this project's format (with its width in ``meta``)."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    torch.save({'meta': {'format': OWN_FORMAT_TAG, 'widen_factor': widen_factor, 'source': source},
                'state_dict': state_dict}, path)


# ---------------------------------------------------------------- loading
def load_backbone_weights(model: torch.nn.Module, path_or_url: str, strict: bool = True) -> Dict[str, list]:
    """Load ImageNet weights of any known format into a :class:`ReXNet` backbone.

    The classifier is dropped; layers past the backbone's last tap are ignored (they are not built).
    Every layer the backbone has must be in the checkpoint with the same shape: otherwise a
    :class:`CheckpointError` names the first mismatched layer and the width the checkpoint was made for.

    Returns a dict with the ``ignored`` checkpoint keys and the ``missing`` ``num_batches_tracked`` buffers.
    """
    raw = read_state_dict(path_or_url)
    fmt = detect_format(raw, str(path_or_url))
    state = to_own_format(raw, fmt)
    own = model.state_dict()
    ckpt_width = infer_widen_factor(state)
    width_note = (f'the checkpoint was made for widen_factor={ckpt_width}' if ckpt_width is not None
                  else 'the checkpoint follows no linear ReXNet width')
    model_width = getattr(model, 'widen_factor', None)
    missing = []
    for key, tensor in own.items():
        if key not in state:
            if key.endswith('num_batches_tracked'):
                missing.append(key)
                continue
            if strict:
                raise CheckpointError(
                    f'{path_or_url} ({fmt} format) has no weights for layer {key!r} of '
                    f'ReXNet(widen_factor={model_width}); {width_note}. Is it a complete ReXNet-v1 checkpoint?')
            continue
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f'{path_or_url} ({fmt} format) does not fit ReXNet(widen_factor={model_width}): '
                f'first mismatched layer {key!r} has shape {tuple(state[key].shape)} in the checkpoint but '
                f'{tuple(tensor.shape)} in the model; {width_note}. Set widen_factor to the checkpoint\'s '
                f'width, use a checkpoint of widen_factor={model_width}, or add width_transfer=True to '
                f'init_cfg to carry these weights to this width (README "Weights for every width").')
    ignored = [k for k in state if k not in own]
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    try:
        from mmengine.logging import print_log
        print_log(f'Loaded ReXNet ImageNet weights from {path_or_url} ({fmt} format'
                  + (f', widen_factor={ckpt_width}' if ckpt_width is not None else '') + ')',
                  logger='current')
    except ImportError:
        pass
    return {'ignored': ignored, 'missing': missing}


def convert_checkpoint(src: str, dst: str, fmt: str = 'rexnet_mmdet') -> Tuple[str, Optional[float]]:
    """Convert the checkpoint at ``src`` (any known format) to ``fmt`` at ``dst``.

    Returns (source format, widen_factor the weights were made for).
    """
    if fmt not in FORMATS:
        raise ValueError(f'--format must be one of {", ".join(FORMATS)}, got {fmt!r}')
    raw = read_state_dict(src)
    src_fmt = detect_format(raw, str(src))
    state = to_own_format(raw, src_fmt)
    width = infer_widen_factor(state)
    if fmt == 'rexnet_mmdet':
        save_own_format(state, dst, width, source=f'{osp.basename(src)} ({src_fmt})')
    else:
        out = from_own_format(state, fmt)
        os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
        if dst.endswith('.safetensors'):
            from safetensors.torch import save_file
            save_file({k: v.contiguous() for k, v in out.items()}, dst)
        else:
            torch.save(out, dst)
    return src_fmt, width
