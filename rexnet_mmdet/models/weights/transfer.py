"""Carry ReXNet weights from one width to another.

ReXNet's widths nest: at every layer a wider model has at least as many channels as a narrower
one, partial residuals included (a wider block's ``out - in`` never shrinks). So:

* **Widening** (every layer at least as wide as the source) is exact, Net2Net style. Each layer's
  output channels get a map ``g``: target channel ``j`` computes what source channel ``g(j)``
  computed (identity first, then copies, spread evenly). Producers copy rows (conv weights, BN
  weight, bias and running statistics); consumers split their input columns among the copies
  (column ``j`` is source column ``g(j)`` divided by the number of copies of ``g(j)``); depthwise
  convs keep the map; squeeze-excitation widens its hidden channels too. The partial residual
  (``out[:, :in] += x``) stays consistent: a block's first ``in`` target outputs use the map of
  its input, and the others map to source channels that carry no residual. The widened network
  computes the same function, ImageNet logits included, to float32 rounding.
* **Narrowing** (some layer narrower) keeps, per layer, the most important source channels, with
  importance = the ``|gamma|`` of the BatchNorm that produces the channel (the channel's output
  standard deviation), summed over every BatchNorm that shares the channel: the expansion and
  depthwise norms of a block's hidden channels, and every block output a partial residual adds
  the channel into. The residual structure decides the rest, as for widening. BatchNorm statistics
  downstream of a dropped channel no longer fit; :func:`calibrate_batchnorm` re-estimates them on
  images, and :func:`feature_drift` measures how far the narrowed features are from the source's.

Everything works on this project's own key format (``stem.conv.weight``, ``blocks.{i}.conv_exp…``,
``final_conv…``) plus an optional classifier (``head.weight`` of shape ``(classes, final)`` and
``head.bias``). Models are built through MMDetection's registry, so this module stays below
``rexnet.py``, which imports it.
"""
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..channels import (STAGE_DEPTHS, BlockSetting, block_settings, check_widen_factor,
                        final_channels, stem_channels, tap_specs)
from ..norms import reestimate_batchnorm
from .formats import (CheckpointError, detect_format, from_own_format, infer_widen_factor,
                      read_state_dict, save_own_format, to_own_format)

#: Classifier keys of each known format; this project's own format calls it ``head``.
CLASSIFIER_KEYS = {'official': 'output.1', 'timm': 'head.fc', 'rexnet_mmdet': 'head'}
#: Feature points compared by :func:`feature_drift`: C2, C3, C4, C5 and the final conv.
DRIFT_TAPS = (1, 2, 3, 5, 6)
#: ImageNet normalisation (RGB, 0-255), as the detector configs' data preprocessors have it.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


class WidthTransferError(CheckpointError):
    """A width transfer that cannot be done as asked."""


def _w(width: float) -> str:
    """A width as users write it: 1.0, 2.2."""
    return repr(float(width))


# ----------------------------------------------------------------- channel maps
@dataclass
class ChannelMap:
    """Where each target channel of one layer's output comes from.

    Attributes:
        name: the channel space (``stem``, ``blocks.{i}.hidden``, ``blocks.{i}.se``,
            ``blocks.{i}.out`` or ``final``).
        index: ``(n_dst,)`` long tensor, the source channel of every target channel.
        n_src: channels of the source layer.
    """
    name: str
    index: torch.Tensor
    n_src: int

    @property
    def n_dst(self) -> int:
        return int(self.index.numel())

    @property
    def counts(self) -> torch.Tensor:
        """How many target channels each source channel feeds (0 where it was dropped)."""
        return torch.bincount(self.index, minlength=self.n_src)

    @property
    def kept(self) -> int:
        return int((self.counts > 0).sum())

    @property
    def copies(self) -> int:
        return self.n_dst - self.kept

    @property
    def dropped(self) -> int:
        return self.n_src - self.kept

    @property
    def complete(self) -> bool:
        """Every source channel lives on: what exactness needs."""
        return self.dropped == 0


def _grow(candidates: torch.Tensor, n: int) -> torch.Tensor:
    """``n >= len(candidates)`` channels: the candidates in order, then copies, cycling through them."""
    reps = torch.arange(n) % candidates.numel()
    return candidates[reps]


def _select(candidates: torch.Tensor, n: int, score: torch.Tensor) -> torch.Tensor:
    """The ``n`` highest-scoring candidates, kept in source order."""
    order = torch.argsort(-score[candidates], stable=True)[:n]
    return torch.sort(candidates[order]).values


def _choose(candidates: torch.Tensor, n: int, score: torch.Tensor) -> torch.Tensor:
    if n == 0:
        return candidates[:0]
    if candidates.numel() == 0:
        raise WidthTransferError('no source channel to take')
    return _grow(candidates, n) if n >= candidates.numel() else _select(candidates, n, score)


# ----------------------------------------------------------------- layers
@dataclass(frozen=True)
class _Layer:
    prefix: str
    out_space: Optional[str]  # None: output channels fixed (classes)
    in_space: Optional[str]  # None: input channels fixed (RGB) or not a channel mixer
    kind: str  # 'conv' (dense conv or linear), 'depthwise', 'norm'


def _input_space(index: int) -> str:
    return 'stem' if index == 0 else f'blocks.{index - 1}.out'


def _hidden_space(s: BlockSetting) -> str:
    # Block 0 has no expansion: its depthwise conv works on the stem's channels.
    return _input_space(s.index) if s.expand_ratio == 1 else f'blocks.{s.index}.hidden'


def _layers(settings: Sequence[BlockSetting]) -> List[_Layer]:
    """Every layer of ReXNet (and the classifier), with the channel spaces it writes and reads."""
    rows = [_Layer('stem.conv', 'stem', None, 'conv'), _Layer('stem.bn', 'stem', None, 'norm')]
    for s in settings:
        p, prev, hidden = f'blocks.{s.index}.', _input_space(s.index), _hidden_space(s)
        if s.expand_ratio != 1:
            rows += [_Layer(p + 'conv_exp.conv', hidden, prev, 'conv'), _Layer(p + 'conv_exp.bn', hidden, None, 'norm')]
        rows += [_Layer(p + 'conv_dw.conv', hidden, None, 'depthwise'), _Layer(p + 'conv_dw.bn', hidden, None, 'norm')]
        if s.use_se:
            se = p + 'se'
            rows += [_Layer(p + 'se.fc1', se, hidden, 'conv'), _Layer(p + 'se.bn', se, None, 'norm'),
                     _Layer(p + 'se.fc2', hidden, se, 'conv')]
        rows += [_Layer(p + 'conv_pwl.conv', p + 'out', hidden, 'conv'),
                 _Layer(p + 'conv_pwl.bn', p + 'out', None, 'norm')]
    last = f'blocks.{len(settings) - 1}.out'
    rows += [_Layer('final_conv.conv', 'final', last, 'conv'), _Layer('final_conv.bn', 'final', None, 'norm'),
             _Layer('head', None, 'final', 'conv')]
    return rows


def _space_sizes(widen_factor: float, settings: Sequence[BlockSetting]) -> Dict[str, int]:
    sizes = {'stem': stem_channels(widen_factor), 'final': final_channels(widen_factor)}
    for s in settings:
        if s.expand_ratio != 1:
            sizes[f'blocks.{s.index}.hidden'] = s.hidden_channels
        if s.use_se:
            sizes[f'blocks.{s.index}.se'] = s.se_channels
        sizes[f'blocks.{s.index}.out'] = s.out_channels
    return sizes


# ----------------------------------------------------------------- importance
def channel_importance(state_dict: Dict[str, torch.Tensor], widen_factor: float) -> Dict[str, torch.Tensor]:
    """Importance of every source channel, per channel space (see the module docstring).

    A BatchNorm output has standard deviation ``|gamma|`` and carries its channel to every layer
    that reads it, so a channel's importance is the sum of ``|gamma|`` over the norms that write it;
    a block output that a partial residual adds into the next block's output carries that block's
    importance too (accumulated from the last block of a stage backwards). Missing norms count 0.
    """
    settings = block_settings(widen_factor)
    sizes = _space_sizes(widen_factor, settings)
    score = {name: torch.zeros(n) for name, n in sizes.items()}
    for layer in _layers(settings):
        gamma = state_dict.get(layer.prefix + '.weight')
        if layer.kind == 'norm' and gamma is not None:
            score[layer.out_space] += gamma.detach().float().abs()
    for s in reversed(settings[1:]):
        if s.use_residual:
            score[_input_space(s.index)] += score[f'blocks.{s.index}.out'][:s.in_channels]
    return score


# ----------------------------------------------------------------- the plan
@dataclass
class TransferPlan:
    """Channel maps of every layer for a transfer from ``src_width`` to ``dst_width``."""
    src_width: float
    dst_width: float
    maps: Dict[str, ChannelMap]
    src_settings: List[BlockSetting] = field(repr=False)
    dst_settings: List[BlockSetting] = field(repr=False)

    @property
    def exact(self) -> bool:
        """Every source channel lives on in the target: the target computes the source's function."""
        return all(m.complete for m in self.maps.values())

    def tap_index(self, tap: int) -> torch.Tensor:
        """Source channel of every target channel at feature point ``tap`` (an ``out_indices`` entry)."""
        spec = tap_specs(self.dst_width)[tap]
        if spec.name == 'final_conv':
            return self.maps['final'].index
        if spec.name == 'exp16':
            return self.maps[_hidden_space(self.dst_settings[spec.block])].index
        return self.maps[f'blocks.{spec.block}.out'].index

    def changed_norms(self) -> List[str]:
        """Norm layers whose inputs differ from the source's (those downstream of a dropped channel).

        ReXNet is a chain, so that is every norm from the first layer that reads a space with a
        dropped channel on. Empty for an exact transfer.
        """
        changed, names = False, []
        for layer in _layers(self.dst_settings):
            if layer.in_space is not None and not self.maps[layer.in_space].complete:
                changed = True
            if changed and layer.kind == 'norm':
                names.append(layer.prefix)
        return names

    def stage_rows(self) -> List[Tuple[str, str, str, str, str]]:
        """Per stage: (stage, blocks, output channels, all its layers' channels, what was done)."""
        groups = [('stem', '-', ['stem'])]
        start = 0
        for stage, depth in enumerate(STAGE_DEPTHS, start=1):
            blocks = self.dst_settings[start:start + depth]
            names = [n for s in blocks for n in (f'blocks.{s.index}.hidden', f'blocks.{s.index}.se',
                                                 f'blocks.{s.index}.out') if n in self.maps]
            span = f'{start}' if depth == 1 else f'{start}-{start + depth - 1}'
            groups.append((str(stage), span, names))
            start += depth
        groups.append(('final conv', '-', ['final']))
        rows = []
        for stage, span, names in groups:
            maps = [self.maps[n] for n in names]
            last = maps[-1]
            copies, dropped = sum(m.copies for m in maps), sum(m.dropped for m in maps)
            done = []
            if copies:
                done.append(f'{copies} copied')
            if dropped:
                done.append(f'{dropped} dropped (kept the most important)')
            rows.append((stage, span, f'{last.n_src} -> {last.n_dst}',
                         f'{sum(m.n_src for m in maps)} -> {sum(m.n_dst for m in maps)}',
                         ', '.join(done) or 'unchanged'))
        return rows


def _residual_error(s: BlockSetting, d: BlockSetting, src_width: float, dst_width: float, what: str) -> str:
    return (f'block {s.index}: {what} (source widen_factor={_w(src_width)}: in {s.in_channels}, out '
            f'{s.out_channels}; target {_w(dst_width)}: in {d.in_channels}, out {d.out_channels}). ReXNet\'s '
            f'linear channel rule keeps this for its published widths; this pair of widths cannot be '
            f'transferred consistently through the partial residual')


def plan_transfer(src_width: float, dst_width: float,
                  importance: Optional[Dict[str, torch.Tensor]] = None,
                  require_exact: bool = False) -> TransferPlan:
    """Channel maps from ``src_width`` to ``dst_width``.

    Args:
        src_width, dst_width: the widths (linear channel rule).
        importance: per-space source channel scores (:func:`channel_importance`), used where a
            layer narrows; without them the first channels are kept.
        require_exact: raise :class:`WidthTransferError` unless every layer widens (the transfer
            is then function-preserving).
    """
    src_width, dst_width = check_widen_factor(src_width), check_widen_factor(dst_width)
    src, dst = block_settings(src_width), block_settings(dst_width)
    src_sizes, dst_sizes = _space_sizes(src_width, src), _space_sizes(dst_width, dst)
    if require_exact:
        for name, n in dst_sizes.items():
            if n < src_sizes[name]:
                raise WidthTransferError(
                    f'exact (function-preserving) widening needs a target at least as wide as the source at '
                    f'every layer, but {name} has {src_sizes[name]} channels at widen_factor={_w(src_width)} '
                    f'and {n} at {_w(dst_width)}. Use a source of widen_factor <= {_w(dst_width)}, or allow '
                    f'narrowing (approximate; re-estimate BatchNorm on images afterwards)')
    importance = importance or {}

    def score(name: str) -> torch.Tensor:
        return importance.get(name, torch.zeros(src_sizes[name]))

    maps: Dict[str, ChannelMap] = {}

    def plain(name: str) -> None:
        n_src = src_sizes[name]
        maps[name] = ChannelMap(name, _choose(torch.arange(n_src), dst_sizes[name], score(name)), n_src)

    plain('stem')
    for s, d in zip(src, dst):
        if s.expand_ratio != 1:
            plain(f'blocks.{s.index}.hidden')
        if s.use_se:
            plain(f'blocks.{s.index}.se')
        out = f'blocks.{s.index}.out'
        if s.use_residual != d.use_residual:
            raise WidthTransferError(_residual_error(s, d, src_width, dst_width,
                                                     'one width has a partial residual here and the other not'))
        if not s.use_residual:
            plain(out)
            continue
        # Residual channels follow the block input; the rest map to source channels without one.
        through = maps[_input_space(s.index)].index
        extra_src, extra_dst = s.out_channels - s.in_channels, d.out_channels - d.in_channels
        if require_exact and extra_dst < extra_src:
            raise WidthTransferError(_residual_error(
                s, d, src_width, dst_width, f'out - in shrinks from {extra_src} to {extra_dst}, so exact '
                                            f'widening is impossible'))
        if extra_dst and not extra_src:
            raise WidthTransferError(_residual_error(
                s, d, src_width, dst_width, 'the target has channels without residual and the source none'))
        rest = _choose(torch.arange(s.in_channels, s.out_channels), extra_dst, score(out))
        maps[out] = ChannelMap(out, torch.cat([through, rest]), s.out_channels)
    plain('final')
    return TransferPlan(src_width, dst_width, maps, src, dst)


# ----------------------------------------------------------------- applying it
@dataclass
class WidthTransfer:
    """The result of :func:`transfer_state_dict`."""
    state_dict: Dict[str, torch.Tensor]
    plan: TransferPlan
    classifier: Dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        return self.plan.exact


def _map_tensor(t: torch.Tensor, layer: _Layer, param: str, maps: Dict[str, ChannelMap]) -> torch.Tensor:
    if param == 'num_batches_tracked':
        return t.clone()
    if layer.out_space is not None:
        t = t.index_select(0, maps[layer.out_space].index)
    if t.dim() >= 2 and layer.in_space is not None:
        m = maps[layer.in_space]
        # Each copy of an input channel gets an equal share of its weight: the sum is unchanged.
        share = (1.0 / m.counts.to(t.dtype))[m.index]
        t = t.index_select(1, m.index) * share.view(1, -1, *([1] * (t.dim() - 2)))
    return t.contiguous()


def _check_source_shapes(state_dict: Dict[str, torch.Tensor], layers: Dict[str, _Layer], plan: TransferPlan) -> None:
    for key, value in state_dict.items():
        prefix, _, param = key.rpartition('.')
        layer = layers.get(prefix)
        if layer is None or param == 'num_batches_tracked':
            continue  # unknown keys are reported while mapping
        expected = [plan.maps[layer.out_space].n_src if layer.out_space else value.shape[0]]
        if value.dim() >= 2:
            expected.append(plan.maps[layer.in_space].n_src if layer.in_space else value.shape[1])
        if list(value.shape[:len(expected)]) != expected:
            raise WidthTransferError(
                f'the source weights do not follow ReXNet\'s channel rule at widen_factor='
                f'{_w(plan.src_width)}: {key!r} has shape {tuple(value.shape)}, expected {tuple(expected)} '
                f'in its first dimensions. Width transfer needs weights made by the linear channel rule '
                f'(no custom block_channels)')


def transfer_state_dict(state_dict: Dict[str, torch.Tensor], widen_factor: float,
                        source_widen_factor: Optional[float] = None,
                        classifier: Optional[Dict[str, torch.Tensor]] = None,
                        require_exact: bool = False, noise: float = 0.0, seed: int = 0) -> WidthTransfer:
    """Carry a backbone state dict (this project's keys) to ``widen_factor``.

    Args:
        state_dict: weights of a linear-rule ReXNet; layers may be missing past the last one a
            detector's backbone built (they stay missing).
        widen_factor: the target width.
        source_widen_factor: the source width; inferred from the shapes when not given.
        classifier: optional ``{'head.weight': (classes, final), 'head.bias': (classes,)}``, carried too.
        require_exact: refuse anything but exact widening.
        noise: standard deviation of Gaussian noise added to every conv and linear weight, relative to
            that weight's standard deviation (0: exact). Breaks the symmetry between copies.
        seed: seed of the noise.
    """
    widen_factor = check_widen_factor(widen_factor)
    if source_widen_factor is None:
        source_widen_factor = infer_widen_factor(state_dict)
        if source_widen_factor is None:
            raise WidthTransferError(
                'the source weights follow no linear ReXNet width (custom block_channels?); width transfer '
                'needs weights made by the linear channel rule of some widen_factor')
    if noise < 0:
        raise ValueError(f'noise must be >= 0 (a fraction of each weight\'s standard deviation), got {noise!r}')
    plan = plan_transfer(source_widen_factor, widen_factor,
                         importance=channel_importance(state_dict, source_widen_factor),
                         require_exact=require_exact)
    layers = {layer.prefix: layer for layer in _layers(plan.src_settings)}
    _check_source_shapes(state_dict, layers, plan)
    generator = torch.Generator().manual_seed(seed)
    out: Dict[str, Dict[str, torch.Tensor]] = {'state': {}, 'head': {}}
    items = [('state', k, v) for k, v in state_dict.items()]
    items += [('head', k, v) for k, v in (classifier or {}).items()]
    for where, key, value in items:
        prefix, _, param = key.rpartition('.')
        layer = layers.get(prefix)
        if layer is None or (where == 'head') != (prefix == 'head'):
            raise WidthTransferError(f'unexpected key {key!r}: not a layer of ReXNet-v1 in this project\'s format')
        mapped = _map_tensor(value, layer, param, plan.maps)
        if noise and layer.kind != 'norm' and param == 'weight' and value.numel() > 1:
            std = float(value.float().std())
            mapped = mapped + noise * std * torch.randn(mapped.shape, generator=generator).to(mapped.dtype)
        out[where][key] = mapped
    return WidthTransfer(out['state'], plan, out['head'])


# ----------------------------------------------------------------- classifier keys
def extract_classifier(raw: Dict[str, torch.Tensor], fmt: str) -> Dict[str, torch.Tensor]:
    """The classifier of a checkpoint as ``head.weight`` ``(classes, final)`` and ``head.bias``; {} if none."""
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


# ----------------------------------------------------------------- images, BN, drift
def preprocess_image(image_bgr: np.ndarray, size: int = 224) -> torch.Tensor:
    """A uint8 BGR image to a ``(3, size, size)`` ImageNet-normalised RGB tensor.

    Shorter side resized to ``size * 8 / 7``, centre crop of ``size``: the ImageNet evaluation
    protocol, under which the source's BatchNorm statistics were estimated.
    """
    import cv2
    h, w = image_bgr.shape[:2]
    scale = size * 8 / 7 / min(h, w)
    resized = cv2.resize(image_bgr, (max(size, round(w * scale)), max(size, round(h * scale))),
                         interpolation=cv2.INTER_LINEAR)
    top, left = (resized.shape[0] - size) // 2, (resized.shape[1] - size) // 2
    crop = resized[top:top + size, left:left + size, ::-1].astype(np.float32)
    crop = (crop - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))


def load_images(folder: str, num_images: int = 64, size: int = 224) -> torch.Tensor:
    """The first ``num_images`` images of ``folder`` (sorted by name), as an ``(N, 3, size, size)`` batch."""
    import cv2
    if not osp.isdir(folder):
        raise WidthTransferError(f'calibration image folder not found: {folder!r}; give a folder of images '
                                 f'(e.g. data/coco/train2017)')
    if num_images < 1:
        raise ValueError(f'num_images must be >= 1, got {num_images}')
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    images = []
    for name in names:
        if len(images) == num_images:
            break
        image = cv2.imread(osp.join(folder, name), cv2.IMREAD_COLOR)
        if image is not None:  # unreadable files are skipped
            images.append(preprocess_image(image, size))
    if not images:
        raise WidthTransferError(f'no readable image ({", ".join(IMAGE_EXTENSIONS)}) in {folder!r}')
    return torch.stack(images)


def _batches(images: torch.Tensor, batch_size: int) -> Iterable[torch.Tensor]:
    return images.split(batch_size)


@torch.no_grad()
def calibrate_batchnorm(model: torch.nn.Module, images: torch.Tensor, norms: Optional[Iterable[str]] = None,
                        batch_size: int = 16) -> int:
    """Re-estimate BatchNorm running statistics on ``images`` (a ``(N, 3, H, W)`` batch).

    A cumulative average over the batches (``momentum=None``) replaces the old statistics of the
    norm layers named in ``norms`` (module names such as ``blocks.3.conv_pwl.bn``; every
    BatchNorm when None). The rest of the model runs in eval mode;
    the model is left in eval mode. Returns the number of norm layers re-estimated.
    """
    model.eval()
    batches = _batches(images, batch_size)
    feed = iter(batches)
    return reestimate_batchnorm(model, lambda: model(next(feed)), steps=len(batches), names=norms)


@torch.no_grad()
def feature_drift(source: torch.nn.Module, target: torch.nn.Module, plan: TransferPlan, images: torch.Tensor,
                  taps: Sequence[int], batch_size: int = 16) -> Dict[str, float]:
    """Relative L2 distance, per feature point, between ``target``'s features and the source's,
    each target channel compared with its source channel: ``||t - s[:, g]|| / ||s[:, g]||``.

    ``source`` and ``target`` are backbones returning ``taps`` (their ``out_indices``), in eval mode.
    """
    source.eval()
    target.eval()
    names = [spec.name for spec in tap_specs(plan.dst_width)]
    num = torch.zeros(len(taps), dtype=torch.float64)
    den = torch.zeros(len(taps), dtype=torch.float64)
    for batch in _batches(images, batch_size):
        for k, (s, t, tap) in enumerate(zip(source(batch), target(batch), taps)):
            s = s.index_select(1, plan.tap_index(tap))
            num[k] += float((t.double() - s.double()).pow(2).sum())
            den[k] += float(s.double().pow(2).sum())
    return {names[tap]: float((n / d.clamp_min(1e-30)).sqrt()) for tap, n, d in zip(taps, num, den)}


def _build_backbone(widen_factor: float, out_indices: Sequence[int]) -> torch.nn.Module:
    # Through the registry: rexnet.py imports this module, so it is not imported here.
    from mmdet.registry import MODELS
    model = MODELS.build(dict(type='ReXNet', widen_factor=widen_factor, out_indices=tuple(out_indices),
                              init_cfg=None))
    return model.eval()


def _available_taps(state_dict: Dict[str, torch.Tensor]) -> Tuple[int, ...]:
    if 'final_conv.conv.weight' in state_dict:
        return DRIFT_TAPS
    last = max((int(k.split('.')[1]) for k in state_dict if k.startswith('blocks.') and '.conv_pwl.' in k),
               default=-1)
    return tuple(t for t in DRIFT_TAPS if t != 6 and tap_specs(1.0)[t].block <= last)


@dataclass
class Calibration:
    """Feature drift of a narrowed model before and after BatchNorm re-estimation."""
    num_images: int
    norms: int
    before: Dict[str, float]
    after: Dict[str, float]


def calibrate_transfer(result: WidthTransfer, images: torch.Tensor, source_state: Dict[str, torch.Tensor],
                       batch_size: int = 16) -> Calibration:
    """Re-estimate, on ``images``, the BatchNorm statistics the transfer changed (in ``result``,
    in place) and measure the feature drift from the source before and after."""
    taps = _available_taps(source_state)
    if not taps:
        raise WidthTransferError('the source weights stop before C2: nothing to compare')
    source = _build_backbone(result.plan.src_width, taps)
    source.load_state_dict(source_state, strict=False)
    target = _build_backbone(result.plan.dst_width, taps)
    target.load_state_dict(result.state_dict, strict=False)
    before = feature_drift(source, target, result.plan, images, taps, batch_size)
    norms = result.plan.changed_norms()
    count = calibrate_batchnorm(target, images, norms, batch_size)
    after = feature_drift(source, target, result.plan, images, taps, batch_size)
    fitted = target.state_dict()
    for key in result.state_dict:
        if key in fitted and key.rpartition('.')[0] in norms:
            result.state_dict[key] = fitted[key].clone()
    return Calibration(int(images.shape[0]), count, before, after)


# ----------------------------------------------------------------- files
@dataclass
class TransferReport:
    """What :func:`transfer_checkpoint` did, for printing."""
    source: str
    source_format: str
    destination: str
    destination_format: str
    plan: TransferPlan
    classifier: bool
    noise: float
    calibration: Optional[Calibration] = None

    def lines(self) -> List[str]:
        plan = self.plan
        how = 'exact widening (function-preserving)' if plan.exact else \
            'narrowing (most important channels kept; approximate)'
        lines = [f'{self.source} ({self.source_format} format, widen_factor={_w(plan.src_width)}) -> '
                 f'{self.destination} ({self.destination_format} format, widen_factor={_w(plan.dst_width)}): {how}']
        rows = [('stage', 'blocks', 'output channels', 'all layers', 'done')] + plan.stage_rows()
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines += ['  ' + '  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        if self.classifier:
            lines.append('  classifier kept: its inputs follow the final conv\'s channels (split among copies)')
        if self.noise:
            lines.append(f'  noise: {self.noise:g} x each conv/linear weight\'s std added (breaks copy symmetry; '
                         f'no longer exact)')
        cal = self.calibration
        if cal is not None:
            taps = list(cal.before)
            lines.append(f'  feature drift from the source (relative L2, {cal.num_images} images; '
                         f'{cal.norms} BatchNorm layers re-estimated):')
            lines.append('    ' + '  '.join(f'{t:>10}' for t in ['', *taps]))
            lines.append('    ' + '  '.join(f'{v:>10}' for v in ['before', *[f'{cal.before[t]:.4f}' for t in taps]]))
            lines.append('    ' + '  '.join(f'{v:>10}' for v in ['after', *[f'{cal.after[t]:.4f}' for t in taps]]))
        elif not plan.exact:
            lines.append('  BatchNorm statistics not re-estimated: give --calibrate-images DIR (e.g. COCO train '
                         'images) for a closer start')
        return lines


def read_source(path_or_url: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor], str]:
    """Read a checkpoint of any known format: (backbone state in this project's keys, classifier, format)."""
    raw = read_state_dict(path_or_url)
    fmt = detect_format(raw)
    classifier = extract_classifier(raw, fmt) if 'backbone.stem.conv.weight' not in raw else {}
    state = to_own_format(raw, fmt)
    if fmt == 'rexnet_mmdet':
        state = {k: v for k, v in state.items() if not k.startswith('head.')}
    return state, classifier, fmt


def transfer_checkpoint(src: str, dst: str, widen_factor: float, fmt: str = 'rexnet_mmdet',
                        require_exact: bool = False, noise: float = 0.0, seed: int = 0,
                        calibrate_images: Optional[str] = None, num_images: int = 64,
                        image_size: int = 224) -> TransferReport:
    """Write the weights of ``src`` (any known format, any width) carried to ``widen_factor`` at ``dst``.

    ``fmt`` 'official' or 'timm' keeps the source's classifier (carried exactly when widening);
    'rexnet_mmdet' writes the backbone only. ``calibrate_images``: a folder of images on which the
    BatchNorm statistics a narrowing changed are re-estimated (first ``num_images``, sorted by name).
    """
    from .formats import FORMATS
    if fmt not in FORMATS:
        raise ValueError(f'format must be one of {", ".join(FORMATS)}, got {fmt!r}')
    state, classifier, src_fmt = read_source(src)
    result = transfer_state_dict(state, widen_factor, classifier=classifier, require_exact=require_exact,
                                 noise=noise, seed=seed)
    calibration = None
    if calibrate_images is not None:
        images = load_images(calibrate_images, num_images, image_size)
        calibration = calibrate_transfer(result, images, state)
    note = (f'{osp.basename(src)} ({src_fmt}, widen_factor={_w(result.plan.src_width)}), '
            + ('widened exactly' if result.exact else 'narrowed'))
    if fmt == 'rexnet_mmdet':
        save_own_format(result.state_dict, dst, result.plan.dst_width, source=note)
    else:
        out = from_own_format(result.state_dict, fmt)
        out.update(classifier_to_format(result.classifier, fmt))
        os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
        if dst.endswith('.safetensors'):
            from safetensors.torch import save_file
            save_file(out, dst)
        else:
            torch.save(out, dst)
    return TransferReport(src, src_fmt, dst, fmt, result.plan, bool(result.classifier) and fmt != 'rexnet_mmdet',
                          noise, calibration)


# ----------------------------------------------------------------- from a config
def load_transferred_weights(model: torch.nn.Module, path_or_url: str, noise: float = 0.0) -> Optional[WidthTransfer]:
    """Load weights of any width into a :class:`ReXNet` ``model``, carried to its width.

    A checkpoint already at the model's width loads directly (no transfer). Otherwise it is widened
    exactly or narrowed (without BatchNorm re-estimation: no images at this point), and one log line
    says what was done. Used by ``init_cfg=dict(type='Pretrained', checkpoint=..., width_transfer=True)``;
    ``noise`` (``width_transfer_noise``) is as in :func:`transfer_state_dict`.
    """
    from mmengine.logging import print_log

    from .formats import load_backbone_weights
    if getattr(model, 'block_channels', None) is not None:
        raise WidthTransferError('width_transfer needs a backbone that follows the linear channel rule; this '
                                 'one has explicit block_channels')
    state, _, fmt = read_source(path_or_url)
    own = model.state_dict()
    if all(k in state and state[k].shape == v.shape for k, v in own.items() if not k.endswith('num_batches_tracked')):
        load_backbone_weights(model, path_or_url)  # already at this width
        return None
    result = transfer_state_dict(state, model.widen_factor, noise=noise)
    missing = [k for k in own if k not in result.state_dict and not k.endswith('num_batches_tracked')]
    if missing:
        raise WidthTransferError(f'{path_or_url} ({fmt} format) has no weights for layer {missing[0]!r} of '
                                 f'ReXNet(widen_factor={_w(model.widen_factor)}) (a detector backbone that stops '
                                 f'earlier?); give a complete ImageNet checkpoint')
    model.load_state_dict({k: v for k, v in result.state_dict.items() if k in own}, strict=False)
    plan = result.plan
    if result.exact:
        how = 'widened exactly (the same function and ImageNet accuracy as the source)'
    else:
        dropped = sum(m.dropped for m in plan.maps.values())
        how = (f'narrowed ({dropped} channels dropped, the most important kept by BatchNorm |gamma|; BatchNorm '
               f'statistics NOT re-estimated, there are no images at init time: for a closer start run '
               f'tools/model_converters/convert_weights.py SRC DST --widen-factor {_w(plan.dst_width)} --calibrate-images DIR '
               f'and give DST as init_cfg.checkpoint)')
    if noise:
        how += f', then noise of {noise:g} x each weight\'s std added to break the symmetry of copies'
    print_log(f'ReXNet ImageNet weights: widen_factor {_w(plan.src_width)} -> {_w(plan.dst_width)}, {how}; source '
              f'{path_or_url} ({fmt} format)', logger='current')
    return result


__all__ = ['ChannelMap', 'TransferPlan', 'WidthTransfer', 'WidthTransferError', 'Calibration', 'TransferReport',
           'channel_importance', 'plan_transfer', 'transfer_state_dict', 'extract_classifier',
           'classifier_to_format', 'preprocess_image', 'load_images', 'calibrate_batchnorm', 'feature_drift',
           'calibrate_transfer', 'read_source', 'transfer_checkpoint', 'load_transferred_weights']
