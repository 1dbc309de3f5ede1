"""The paper's random-layer rank study (§3, Figure 1).

For a layer with output ``f(BN(W X))``, ``W`` of shape ``d_out x d_in`` and the
input ``X`` of ``d_in`` channels over ``N`` samples (``N > d_out > d_in``), the
*rank ratio* is ``rank(f(BN(W X))) / d_out`` and the *dimension ratio* is
``d_in / d_out`` (the reciprocal of the expansion ratio). ``d_out`` is drawn at
random for every trial and ``d_in = round(ratio * d_out)`` for every dimension
ratio in ``[0.1, 1.0]``; the rank ratio is averaged over the trials. BN uses the
batch statistics, as in training.

Four layer types, as in Figure 1 (a)-(d):

- ``conv1x1``: one 1x1 convolution, i.e. ``W X`` on ``N`` independent samples.
- ``conv3x3``: one 3x3 convolution (padding 1) on ``B x d_in x 8 x 8`` inputs,
  ``N = B * 64`` (every pixel is a sample).
- ``ib_conv3x3`` / ``ib_dwconv3x3``: an inverted bottleneck as in MobileNetV2
  and ReXNet: 1x1 expansion to ``6 * d_in`` channels, a 3x3 (full or depthwise)
  convolution, each followed by BN and the nonlinearity, then a linear 1x1
  projection to ``d_out`` with BN and the shortcut. As in the paper (footnote 2)
  the block's input is the expansion's input and its output is taken after the
  shortcut addition; the shortcut adds the input to the first ``d_in`` output
  channels (ReXNet's partial residual).

Choices the paper leaves open, and why they were made so:

- *Tolerance of the rank.* With the float32 machine tolerance of
  ``torch.linalg.matrix_rank`` every nonlinearity makes almost every layer full
  rank (an elementwise nonlinearity of a low-rank matrix is generically full
  rank; only its tiny higher-order terms fill the missing directions), so the
  curves carry no information. The study therefore counts the singular values
  above ``rtol * sigma_max`` with ``rtol = 0.1`` by default: the directions that
  carry at least 1% of the leading direction's variance.
- *Centring.* Each output channel is centred over the samples before the rank is
  taken. A constant offset adds at most one to the rank, and the next layer's BN
  removes it, but uncentred it dominates ``sigma_max`` for offset nonlinearities
  (SoftPlus, ReLU) and so the relative tolerance.
- *Spatial inputs.* Inputs of the 3x3 layers are white noise blurred with a
  Gaussian of ``input_blur = 1`` pixel: feature maps are spatially correlated,
  and on white noise a 3x3 convolution sees ``9 * d_in`` independent inputs, so
  it is full rank from a dimension ratio of about 1/9 on.

All three are arguments (``rtol``, ``center``, ``input_blur``).
"""
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

#: Every nonlinearity the study knows, by the name used in the plots.
NONLINEARITIES: Dict[str, Callable[[Tensor], Tensor]] = {
    'linear': lambda x: x,
    'ReLU': F.relu,
    'ReLU6': F.relu6,
    'LeakyReLU': lambda x: F.leaky_relu(x, 0.01),
    'ELU': F.elu,
    'SoftPlus': F.softplus,
    'HardSwish': F.hardswish,
    'SiLU': F.silu,
    'GELU': F.gelu,
    'Sigmoid': torch.sigmoid,
    'Tanh': torch.tanh,
}
#: The nonlinearities the paper lists (§3.2, footnote 1), plus ``linear`` as the reference.
PAPER_NONLINEARITIES: Tuple[str, ...] = (
    'linear', 'ReLU', 'ReLU6', 'LeakyReLU', 'ELU', 'SoftPlus', 'HardSwish', 'SiLU')
LAYER_TYPES: Tuple[str, ...] = ('conv1x1', 'conv3x3', 'ib_conv3x3', 'ib_dwconv3x3')
LAYER_TITLES: Dict[str, str] = {
    'conv1x1': '(a) 1x1 convolution',
    'conv3x3': '(b) 3x3 convolution',
    'ib_conv3x3': '(c) inverted bottleneck, 3x3 conv',
    'ib_dwconv3x3': '(d) inverted bottleneck, 3x3 depthwise conv',
}
DEFAULT_RATIOS: Tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(1, 11))


def singular_values(features: Tensor, center: bool = False) -> Tensor:
    """Descending singular values of ``features`` (``[..., m, n]``, batched), in float64.

    Computed from the eigenvalues of the ``m x m`` Gram matrix in float64: much
    faster than an SVD for ``m << n`` and accurate to about ``1e-7 * sigma_max``,
    ample for the tolerances used here.

    Args:
        center: subtract each row's mean (over the ``n`` columns) first.
    """
    if features.dim() < 2:
        raise ValueError(f'features must be a matrix or a batch of matrices, got shape '
                         f'{tuple(features.shape)}')
    f = features.detach().double()
    if center:
        f = f - f.mean(-1, keepdim=True)
    if f.shape[-2] > f.shape[-1]:
        f = f.transpose(-2, -1)
    eig = torch.linalg.eigvalsh(f @ f.transpose(-2, -1))
    return eig.clamp_min(0).sqrt().flip(-1)


def numerical_rank(features: Tensor, rtol: Optional[float] = None,
                   center: bool = False) -> Tensor:
    """Numerical rank of ``features`` (``[..., m, n]``, batched over leading dims).

    A singular value counts when it exceeds ``rtol * sigma_max``. ``rtol=None``
    is ``torch.linalg.matrix_rank``'s rule for float32 data, ``max(m, n) * eps``.
    """
    if rtol is None:
        rtol = max(features.shape[-2:]) * torch.finfo(torch.float32).eps
    if not rtol >= 0:
        raise ValueError(f'rtol must be a non-negative number, got {rtol!r}')
    sv = singular_values(features, center=center)
    return (sv > rtol * sv[..., :1]).sum(-1)


def _batch_norm(x: Tensor) -> Tensor:
    """BN with batch statistics (training mode), unit scale and zero shift."""
    return F.batch_norm(x, None, None, training=True, eps=1e-5)


def _to_matrix(x: Tensor) -> Tensor:
    """``[B, C, H, W]`` -> ``[C, B*H*W]``: channels are rows, samples columns."""
    return x.transpose(0, 1).reshape(x.shape[1], -1)


def _blur_radius(sigma: float) -> int:
    return max(1, int(math.ceil(2 * sigma))) if sigma > 0 else 0


def _blur(x: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of every channel (valid padding: the border rows are cropped)."""
    radius = _blur_radius(sigma)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.norm()  # keep unit variance for white-noise inputs
    c = x.shape[1]
    x = F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)


def _weight(out_ch: int, in_ch: int, k: int, g: torch.Generator) -> Tensor:
    # He-style scale; BN follows every conv, so the scale only matters for clean numerics.
    return torch.randn(out_ch, in_ch, k, k, generator=g) / math.sqrt(in_ch * k * k)


def random_layer_features(layer: str, d_in: int, d_out: int,
                          nonlinearities: Sequence[str], num_samples: int = 256,
                          spatial: int = 8, expand_ratio: int = 6, input_blur: float = 0.0,
                          generator: Optional[torch.Generator] = None
                          ) -> Tensor:
    """Output features of one random layer for each nonlinearity.

    Args:
        layer: one of :data:`LAYER_TYPES`.
        d_in, d_out: input and output channels.
        nonlinearities: names from :data:`NONLINEARITIES`.
        num_samples: ``N``, the number of samples (columns of the feature matrix).
            For the convolutional layers it is rounded up to a multiple of
            ``spatial ** 2``.
        spatial: side of the random input maps of the 3x3 layers.
        expand_ratio: hidden channels of the inverted bottlenecks = ``expand_ratio * d_in``.
        input_blur: Gaussian blur (pixels) of the 3x3 layers' white-noise inputs; 0 = none.
        generator: random generator, for reproducible draws.

    Returns:
        ``[len(nonlinearities), d_out, N]`` float32 features; the same weights
        and inputs are used for every nonlinearity.
    """
    _check_layer(layer, d_in, d_out, nonlinearities)
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    funcs = [NONLINEARITIES[n] for n in nonlinearities]

    if layer == 'conv1x1':
        x = torch.randn(num_samples, d_in, generator=g)
        w = _weight(d_out, d_in, 1, g).flatten(1)
        z = _batch_norm(x @ w.t()).t()  # [d_out, N]
        return torch.stack([f(z) for f in funcs])

    batch = max(1, math.ceil(num_samples / spatial ** 2))
    pad = _blur_radius(input_blur)
    x = torch.randn(batch, d_in, spatial + 2 * pad, spatial + 2 * pad, generator=g)
    if input_blur > 0:
        x = _blur(x, input_blur)
    if layer == 'conv3x3':
        z = _batch_norm(F.conv2d(x, _weight(d_out, d_in, 3, g), padding=1))
        return torch.stack([_to_matrix(f(z)) for f in funcs])

    return _inverted_bottleneck_features(layer, x, d_out, expand_ratio, funcs, g)


def _check_layer(layer: str, d_in: int, d_out: int, nonlinearities: Sequence[str]) -> None:
    if layer not in LAYER_TYPES:
        raise ValueError(f'unknown layer type {layer!r}; expected one of {", ".join(LAYER_TYPES)}')
    unknown = [n for n in nonlinearities if n not in NONLINEARITIES]
    if unknown:
        raise ValueError(f'unknown nonlinearities {unknown}; expected names from '
                         f'{", ".join(NONLINEARITIES)}')
    if not 0 < d_in <= d_out:
        raise ValueError(f'need 0 < d_in <= d_out, got d_in={d_in}, d_out={d_out}')


def _inverted_bottleneck_features(layer: str, x: Tensor, d_out: int, expand_ratio: int, funcs: list,
                                  g: torch.Generator) -> Tensor:
    """``[len(funcs), d_out, N]`` outputs of a random inverted bottleneck (``'ib_conv3x3'`` or
    ``'ib_dwconv3x3'``) on ``x``: one set of weights, the nonlinearity swapped in both places."""
    d_in = x.shape[1]
    hidden = d_in * expand_ratio
    w_exp = _weight(hidden, d_in, 1, g)
    if layer == 'ib_conv3x3':
        w_mid, groups = _weight(hidden, hidden, 3, g), 1
    else:
        w_mid, groups = _weight(hidden, 1, 3, g), hidden
    w_proj = _weight(d_out, hidden, 1, g)
    outs = []
    for f in funcs:
        h = f(_batch_norm(F.conv2d(x, w_exp)))
        h = f(_batch_norm(F.conv2d(h, w_mid, padding=1, groups=groups)))
        y = _batch_norm(F.conv2d(h, w_proj))
        y = torch.cat([y[:, :d_in] + x, y[:, d_in:]], dim=1)
        outs.append(_to_matrix(y))
    return torch.stack(outs)


@dataclass
class RankStudyResult:
    """Mean (and standard deviation) rank ratio of the random-layer study.

    ``mean[l, n, r]`` is the rank ratio of layer ``layer_types[l]`` with
    nonlinearity ``nonlinearities[n]`` at dimension ratio ``ratios[r]``,
    averaged over ``trials`` random-sized layers.
    """
    layer_types: List[str]
    nonlinearities: List[str]
    ratios: List[float]
    mean: Tensor
    std: Tensor
    trials: int
    d_out_range: Tuple[int, int]
    num_samples: int
    seed: int
    settings: Dict[str, object] = field(default_factory=dict)

    def value(self, layer: str, nonlinearity: str, ratio: float) -> float:
        """Mean rank ratio at one point of the study."""
        r = min(range(len(self.ratios)), key=lambda i: abs(self.ratios[i] - ratio))
        if abs(self.ratios[r] - ratio) > 1e-6:
            raise ValueError(f'ratio {ratio} was not studied; studied: {self.ratios}')
        return float(self.mean[self.layer_types.index(layer),
                               self.nonlinearities.index(nonlinearity), r])


def rank_study(layer_types: Sequence[str] = LAYER_TYPES,
               nonlinearities: Sequence[str] = PAPER_NONLINEARITIES,
               ratios: Sequence[float] = DEFAULT_RATIOS, trials: int = 50,
               d_out_range: Tuple[int, int] = (32, 96), num_samples: int = 512,
               rtol: Optional[float] = 0.1, center: bool = True, input_blur: float = 1.0,
               expand_ratio: int = 6, seed: int = 0, num_threads: Optional[int] = 1,
               progress: Optional[Callable[[int, int], None]] = None) -> RankStudyResult:
    """Run the random-layer rank study of the paper's §3.

    Every trial draws ``d_out`` uniformly from ``d_out_range`` (inclusive) and,
    for every dimension ratio, sets ``d_in = max(1, round(ratio * d_out))`` and
    builds each layer type once with fresh random weights and inputs.

    Args:
        trials: random-sized layers per (layer type, ratio) point.
        num_samples: ``N``; must exceed the largest ``d_out``.
        rtol, center: how the rank is counted (see :func:`numerical_rank` and the
            module notes); ``rtol=None`` is the float32 machine tolerance.
        input_blur: Gaussian blur (pixels) of the 3x3 layers' random inputs.
        expand_ratio: expansion of the inverted bottlenecks' first 1x1 conv.
        seed: seed of the one random generator: equal arguments give equal results.
        num_threads: torch threads while the study runs (restored afterwards). The study is
            thousands of small operations: one thread is about as fast as two on an idle
            machine and several times faster on a busy one. ``None`` keeps the setting.
        progress: called as ``progress(done, total)`` after every trial.
    """
    if num_threads is None:
        return _rank_study(layer_types, nonlinearities, ratios, trials, d_out_range, num_samples,
                           rtol, center, input_blur, expand_ratio, seed, progress)
    saved = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        return _rank_study(layer_types, nonlinearities, ratios, trials, d_out_range, num_samples,
                           rtol, center, input_blur, expand_ratio, seed, progress)
    finally:
        torch.set_num_threads(saved)


def _rank_study(layer_types, nonlinearities, ratios, trials, d_out_range, num_samples, rtol, center,
                input_blur, expand_ratio, seed, progress) -> RankStudyResult:
    lo, hi = d_out_range
    if not 1 <= lo <= hi:
        raise ValueError(f'd_out_range must be (low, high) with 1 <= low <= high, got {d_out_range}')
    if num_samples <= hi:
        raise ValueError(f'num_samples (N={num_samples}) must exceed the largest d_out ({hi}): '
                         f'the study needs N > d_out so that the rank is not bounded by N')
    if trials < 1:
        raise ValueError(f'trials must be at least 1, got {trials}')
    if not ratios or not all(0 < r <= 1 for r in ratios):
        raise ValueError(f'ratios must be in (0, 1], got {list(ratios)}')
    for layer in layer_types:
        if layer not in LAYER_TYPES:
            raise ValueError(f'unknown layer type {layer!r}; expected one of {", ".join(LAYER_TYPES)}')
    unknown = [n for n in nonlinearities if n not in NONLINEARITIES]
    if unknown or not nonlinearities:
        raise ValueError(f'unknown nonlinearities {unknown or list(nonlinearities)}; expected names '
                         f'from {", ".join(NONLINEARITIES)}')
    g = torch.Generator().manual_seed(seed)
    values = torch.zeros(trials, len(layer_types), len(nonlinearities), len(ratios))
    for t in range(trials):
        d_out = int(torch.randint(lo, hi + 1, (1,), generator=g))
        for r, ratio in enumerate(ratios):
            d_in = max(1, int(round(ratio * d_out)))
            for l, layer in enumerate(layer_types):
                feats = random_layer_features(
                    layer, d_in, d_out, nonlinearities, num_samples=num_samples,
                    expand_ratio=expand_ratio, input_blur=input_blur, generator=g)
                values[t, l, :, r] = numerical_rank(feats, rtol, center).float() / d_out
        if progress is not None:
            progress(t + 1, trials)
    return RankStudyResult(
        layer_types=list(layer_types), nonlinearities=list(nonlinearities),
        ratios=[float(r) for r in ratios], mean=values.mean(0),
        std=values.std(0) if trials > 1 else torch.zeros_like(values[0]),
        trials=trials, d_out_range=(lo, hi), num_samples=num_samples, seed=seed,
        settings=dict(rtol=rtol, center=center, input_blur=input_blur,
                      expand_ratio=expand_ratio))


def summarize_rank_study(result: RankStudyResult) -> str:
    """Plain-text table of the study plus the paper's findings checked on it."""
    lo_r, hi_r = result.ratios[0], result.ratios[-1]
    st = result.settings
    tol = 'float32 machine tolerance' if st.get('rtol') is None else f'rtol {st.get("rtol"):g}'
    lines = [f'Rank ratio rank(f(BN(WX)))/d_out, mean over {result.trials} random layers per point '
             f'(d_out in [{result.d_out_range[0]}, {result.d_out_range[1]}], N={result.num_samples}, '
             f'{tol}, centred: {st.get("center")}, input blur {st.get("input_blur")} px, '
             f'seed {result.seed})']
    names = result.nonlinearities
    width = max(len(n) for n in names) + 2
    for l, layer in enumerate(result.layer_types):
        lines.append('')
        lines.append(f'{LAYER_TITLES[layer]}   (d_in/d_out = {lo_r:g} | {hi_r:g})')
        for n, name in enumerate(names):
            m = result.mean[l, n]
            lines.append(f'  {name:<{width}}{float(m[0]):.3f} | {float(m[-1]):.3f}')
    lines.append('')
    lines.append('Findings (paper §3.2):')
    nonlin = [n for n in names if n != 'linear']
    if nonlin:
        lifted = []
        for l, layer in enumerate(result.layer_types):
            m = torch.stack([result.mean[l, names.index(n), 0] for n in nonlin])
            lifted.append(f'{layer} {float(m.min()):.2f}-{float(m.max()):.2f}')
        lines.append(f'  (ii) nonlinearities lift the rank above the input dimension: at '
                     f'd_in/d_out = {lo_r:g} the rank ratio is ' + ', '.join(lifted)
                     + f' (input-dimension bound {lo_r:g})')
        harm = []
        for l, layer in enumerate(result.layer_types):
            m = torch.stack([result.mean[l, names.index(n)] for n in nonlin]).mean(0)
            harm.append(f'{layer} {float(m[0]):.2f} -> {float(m[-1]):.2f}')
        lines.append(f'  (i) drastic expansion lowers the rank ratio (mean over nonlinearities, '
                     f'd_in/d_out {lo_r:g} -> {hi_r:g}): ' + ', '.join(harm))
        if 'linear' in names:
            gains = []
            for l, layer in enumerate(result.layer_types):
                m = torch.stack([result.mean[l, names.index(n), 0] for n in nonlin]).mean(0)
                gains.append(f'{layer} {float(m - result.mean[l, names.index("linear"), 0]):+.2f}')
            lines.append(f'  (iii) gain of the nonlinearities over the linear layer at d_in/d_out = '
                         f'{lo_r:g} (mean over nonlinearities): ' + ', '.join(gains))
        for l, layer in enumerate(result.layer_types):
            order = sorted(nonlin, key=lambda n: -float(result.mean[l, names.index(n), 0]))
            lines.append(f'  {layer}: nonlinearities by rank ratio at d_in/d_out = {lo_r:g}: '
                         + ' > '.join(order))
    return '\n'.join(lines)



__all__ = ['NONLINEARITIES', 'PAPER_NONLINEARITIES', 'LAYER_TYPES', 'LAYER_TITLES', 'DEFAULT_RATIOS',
           'singular_values', 'numerical_rank', 'random_layer_features', 'RankStudyResult', 'rank_study',
           'summarize_rank_study']
