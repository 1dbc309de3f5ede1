"""ReXNet ImageNet weights: read, recognise, convert and load them safely.

Three key formats are understood and recognised automatically:

* ``official`` - the original ReXNet-v1 and ReXNet-lite releases (``rexnetv1_1.0.pth``,
  ``rexnet_lite_1.0.pth``): ``features.0`` stem conv, ``features.{b+3}.out.{i}`` blocks,
  ``features.19/20`` final conv and BN, ``output.*`` classifier.
* ``timm`` - timm's ``rexnet_100`` and ``rexnetr_200`` etc. (``.pth`` or ``.safetensors``): ``stem.conv``,
  ``features.{b}.conv_exp|conv_dw|se|conv_pwl``, ``features.16`` final conv, ``head.fc``.
* ``rexnet_mmdet`` - this project's own: the backbone's ``state_dict`` with ``meta`` saying the width.
  An MMDetection detector checkpoint (keys ``backbone.*``) is read as this format too.

The family a checkpoint was made for (ReXNet-v1, ReXNet-R with its divisor, ReXNet-lite) and its
width are read from its layers (:func:`infer_family`); a checkpoint of another family than the
backbone's is refused with a message naming the family it was made for.

Files are read by :mod:`.safe_load` (``weights_only`` with a fixed allowlist): a checkpoint never runs code.
"""
import os
import os.path as osp
import re
from dataclasses import replace
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch

from ..channels import (PUBLISHED_LITE_WIDTHS, PUBLISHED_WIDTHS, BlockSetting, block_settings,
                        family_block_channels, family_name, final_channels, linear_block_channels,
                        stem_channels)
from ..width_names import format_width
from .safe_load import CheckpointError, CheckpointMismatchError, load_checkpoint

FORMATS = ('official', 'timm', 'rexnet_mmdet')
OWN_FORMAT_TAG = 'rexnet_mmdet.backbone'

_HUB = 'https://huggingface.co/timm/{}/resolve/main/model.safetensors'
#: Published ImageNet weights with a direct URL. ReXNet-v1 by width (timm's release of the official
#: models; same tensors, timm key format); ReXNet-R by timm's name (timm format; ``sw_in12k`` heads have
#: 11,821 classes, dropped when loading). The official ReXNet-lite files have no direct URL (docs/weights_families.md).
PRETRAINED_URLS: Dict[object, str] = {
    1.0: 'https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-rexnet/rexnetv1_100-1b4dddf4.pth',
    1.3: 'https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-rexnet/rexnetv1_130-590d768e.pth',
    1.5: 'https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-rexnet/rexnetv1_150-bd1a6aa8.pth',
    2.0: 'https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-rexnet/rexnetv1_200-8c0b7f2d.pth',
    3.0: _HUB.format('rexnet_300.nav_in1k'),
    'rexnetr_200.sw_in12k_ft_in1k': _HUB.format('rexnetr_200.sw_in12k_ft_in1k'),
    'rexnetr_300.sw_in12k_ft_in1k': _HUB.format('rexnetr_300.sw_in12k_ft_in1k'),
    'rexnetr_200.sw_in12k': _HUB.format('rexnetr_200.sw_in12k'),
    'rexnetr_300.sw_in12k': _HUB.format('rexnetr_300.sw_in12k'),
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
#: Classifier layer of each format (ReXNet-v1 and R); this project's own format calls it ``head``.
CLASSIFIER_KEYS = {'official': 'output.1', 'timm': 'head.fc', 'rexnet_mmdet': 'head'}


def _split(key: str) -> Tuple[str, str]:
    prefix, _, param = key.rpartition('.')
    return prefix, param


# ---------------------------------------------------------------- reading
def read_state_dict(path_or_url: str) -> Dict[str, torch.Tensor]:
    """Read a checkpoint (path, URL or mmengine scheme) safely and return its flat state dict (unwrapped).

    Reading goes through :func:`.safe_load.load_checkpoint` (the allowlist of a training checkpoint:
    a detector checkpoint written by ``tools/train.py`` is accepted, its ``backbone.*`` weights are
    what :func:`to_own_format` takes); ``.safetensors`` files, local or downloaded, are read by safetensors.
    """
    return unwrap_state_dict(load_checkpoint(path_or_url, map_location='cpu'), str(path_or_url))


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


def _block_outputs(state_dict: Dict[str, torch.Tensor]) -> List[int]:
    outs = []
    for b in range(16):
        w = state_dict.get(f'blocks.{b}.conv_pwl.conv.weight')
        if w is None:
            break
        outs.append(w.shape[0])
    return outs


def infer_widen_factor(state_dict: Dict[str, torch.Tensor]) -> Optional[float]:
    """The width a ReXNet-v1 state dict (this project's keys) was made for, or None if it follows no linear width."""
    outs = _block_outputs(state_dict)
    if not outs:
        return None
    final = state_dict.get('final_conv.conv.weight')
    candidates = list(PUBLISHED_WIDTHS) + [k / 100 for k in range(10, 501)]
    for w in candidates:
        if linear_block_channels(w)[:len(outs)] == outs and \
                (final is None or final_channels(w) == final.shape[0]):
            return w
    return None


class CheckpointFamily(NamedTuple):
    """The family and width a checkpoint was made for (see :func:`infer_family`)."""
    arch: str
    widen_factor: float
    channel_divisor: int

    def __str__(self) -> str:
        return f'{family_name(self.arch, self.channel_divisor)} widen_factor={format_width(self.widen_factor)}'

    def config(self) -> str:
        """The backbone arguments that build this family and width."""
        args = [f'widen_factor={format_width(self.widen_factor)}']
        if self.arch != 'v1':
            args.insert(0, f"arch='{self.arch}'")
        elif self.channel_divisor != 1:
            args.append(f'channel_divisor={self.channel_divisor}')
        return ', '.join(args)


def _fits(state_dict: Dict[str, torch.Tensor], outs: List[int], arch: str, width: float, divisor: int) -> bool:
    if family_block_channels(width, arch, divisor)[:len(outs)] != outs:
        return False
    stem, final = state_dict.get('stem.conv.weight'), state_dict.get('final_conv.conv.weight')
    return (stem is None or stem.shape[0] == stem_channels(width, arch, divisor)) and \
        (final is None or final.shape[0] == final_channels(width, arch, divisor))


def infer_family(state_dict: Dict[str, torch.Tensor]) -> Optional[CheckpointFamily]:
    """The family (ReXNet-v1, ReXNet-R and its divisor, ReXNet-lite) and width of a state dict in this
    project's keys, from its layers: ReXNet-lite has no squeeze-excitation, ReXNet-R rounds every channel.
    None when it follows no family's rule (custom ``block_channels``) or holds no block."""
    outs = _block_outputs(state_dict)
    if not outs:
        return None
    if len(outs) > 3:  # blocks 3-15 carry SE in v1 and R, never in lite
        archs = [('lite', 8)] if 'blocks.3.se.fc1.weight' not in state_dict else [('v1', 1), ('v1', 8), ('v1', 16)]
    else:
        archs = [('v1', 1), ('v1', 8), ('v1', 16), ('lite', 8)]
    for arch, divisor in archs:
        published = PUBLISHED_LITE_WIDTHS if arch == 'lite' else PUBLISHED_WIDTHS
        for w in list(published) + [k / 100 for k in range(10, 501)]:
            if _fits(state_dict, outs, arch, w, divisor):
                return CheckpointFamily(arch, w, divisor)
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


def save_own_format(state_dict: Dict[str, torch.Tensor], path: str, widen_factor,
                    source: str = '') -> None:
    """Write a backbone state dict in this project's format, with its family and width in ``meta``.

    ``widen_factor``: a width (ReXNet-v1), a :class:`CheckpointFamily`, or None when unknown. A path
    ending in ``.safetensors`` is written as safetensors (the meta as its string metadata).
    """
    family = widen_factor if isinstance(widen_factor, CheckpointFamily) else None
    meta = {'format': OWN_FORMAT_TAG, 'source': source,
            'widen_factor': family.widen_factor if family else widen_factor}
    if family is not None:
        meta.update(arch=family.arch, channel_divisor=family.channel_divisor)
    if str(path).endswith('.safetensors'):
        write_state_dict(state_dict, path, {k: str(v) for k, v in meta.items()})
        return
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    torch.save({'meta': meta, 'state_dict': state_dict}, path)


def write_state_dict(state_dict: Dict[str, torch.Tensor], path: str, metadata: Optional[Dict[str, str]] = None) -> None:
    """Write a flat state dict: safetensors when ``path`` ends in ``.safetensors``, else ``torch.save``."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    if str(path).endswith('.safetensors'):
        try:
            from safetensors.torch import save_file
        except ImportError:
            raise CheckpointError('writing .safetensors needs the safetensors package: pip install safetensors, '
                                  'or give an output name ending in .pth') from None
        save_file({k: v.contiguous() for k, v in state_dict.items()}, path, metadata=metadata)
    else:
        torch.save(state_dict, path)


# ---------------------------------------------------------------- classifiers
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


def _converted_classifier(raw: Dict[str, torch.Tensor], src_fmt: str, fmt: str,
                          family: Optional[CheckpointFamily]) -> Dict[str, torch.Tensor]:
    if src_fmt == 'rexnet_mmdet' or fmt == 'rexnet_mmdet':
        return {}
    if family is not None and family.arch == 'lite':
        # Its head (1x1 conv, BN, ReLU6, dropout, 1x1 conv) exists in the official format only.
        return {k: v for k, v in raw.items() if k.startswith('output.')} if fmt == 'official' else {}
    return classifier_to_format(extract_classifier(raw, src_fmt), fmt)


# ---------------------------------------------------------------- loading
def _check_family(state: Dict[str, torch.Tensor], own: Dict[str, torch.Tensor], model: CheckpointFamily,
                  source: str) -> None:
    """Refuse, in one line naming the family the checkpoint was made for, weights of another family.

    ReXNet-lite against v1/R is told by structure (squeeze-excitation); v1 against R (and one divisor
    against another) by channels, unless every layer of the model fits (then it is the same network)."""
    ckpt = infer_family(state)
    if ckpt is None or (ckpt.arch, ckpt.channel_divisor) == (model.arch, model.channel_divisor):
        return
    fits = all(k in state and state[k].shape == v.shape for k, v in own.items()
               if not k.endswith('num_batches_tracked'))
    # Blocks 0-2 alone (a detector backbone that stops early) do not tell lite from R: shapes decide.
    if fits and (ckpt.arch == model.arch or 'blocks.3.conv_pwl.conv.weight' not in state):
        return
    raise CheckpointMismatchError(
        f'{source} holds {family_name(ckpt.arch, ckpt.channel_divisor)} weights ({ckpt}), not weights for this '
        f'{family_name(model.arch, model.channel_divisor)} backbone: build the backbone with {ckpt.config()} '
        f'to load them, or give a checkpoint made for {family_name(model.arch, model.channel_divisor)}')


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
    model_family = CheckpointFamily(getattr(model, 'arch', 'v1'), getattr(model, 'widen_factor', 1.0),
                                    getattr(model, 'channel_divisor', 1))
    _check_family(state, own, model_family, f'{path_or_url} ({fmt} format)')
    ckpt = infer_family(state)
    width_note = (f'the checkpoint was made for {ckpt}' if ckpt is not None
                  else 'the checkpoint follows no ReXNet channel rule')
    model_name = f'{model_family} backbone'
    missing = []
    for key, tensor in own.items():
        if key not in state:
            if key.endswith('num_batches_tracked'):
                missing.append(key)
                continue
            if strict:
                raise CheckpointError(
                    f'{path_or_url} ({fmt} format) has no weights for layer {key!r} of the '
                    f'{model_name}; {width_note}. Is it a complete ReXNet checkpoint?')
            continue
        if tuple(state[key].shape) != tuple(tensor.shape):
            hint = (', or add width_transfer=True to init_cfg to carry these weights to this width '
                    '(README "Weights for every width")' if model_family.arch == 'v1'
                    and model_family.channel_divisor == 1 else '')
            raise CheckpointError(
                f'{path_or_url} ({fmt} format) does not fit the {model_name}: '
                f'first mismatched layer {key!r} has shape {tuple(state[key].shape)} in the checkpoint but '
                f'{tuple(tensor.shape)} in the model; {width_note}. Set widen_factor to the checkpoint\'s '
                f'width, use a checkpoint of widen_factor={format_width(model_family.widen_factor)}{hint}.')
    ignored = [k for k in state if k not in own]
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    try:
        from mmengine.logging import print_log
        print_log(f'Loaded ReXNet ImageNet weights from {path_or_url} ({fmt} format'
                  + (f', {ckpt}' if ckpt is not None else '') + ')', logger='current')
    except ImportError:
        pass
    return {'ignored': ignored, 'missing': missing}


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
    classifier = _converted_classifier(raw, src_fmt, fmt, family)
    out.update(classifier)
    write_state_dict(out, dst)
    return src_fmt, family, bool(classifier)
