"""Rank analyses of the paper: the random-layer study (§3, Figure 1) and the
rank of a trained backbone's features (§6, Figure 5).

The random-layer study
----------------------
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
import os
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


# --------------------------------------------------------------------------- ranks
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
    if layer not in LAYER_TYPES:
        raise ValueError(f'unknown layer type {layer!r}; expected one of {", ".join(LAYER_TYPES)}')
    unknown = [n for n in nonlinearities if n not in NONLINEARITIES]
    if unknown:
        raise ValueError(f'unknown nonlinearities {unknown}; expected names from '
                         f'{", ".join(NONLINEARITIES)}')
    if not 0 < d_in <= d_out:
        raise ValueError(f'need 0 < d_in <= d_out, got d_in={d_in}, d_out={d_out}')
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

    # Inverted bottlenecks: one set of weights, the nonlinearity swapped in both places.
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


def plot_rank_study(result: RankStudyResult, path: str) -> None:
    """Figure 1 of the paper: rank ratio vs. dimension ratio, one panel per layer type."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    n = len(result.layer_types)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 4.8 * rows), squeeze=False)
    colors = plt.get_cmap('tab10')
    markers = ['o', 's', '^', 'v', 'D', 'P', 'X', '*', '<', '>', 'h']
    x = result.ratios
    for l, layer in enumerate(result.layer_types):
        ax = axes[l // cols][l % cols]
        ax.plot([0, 1], [0, 1], color='0.6', ls=':', lw=1.2, label='input dimension (y = x)')
        for k, name in enumerate(result.nonlinearities):
            # Distinct markers: ReLU, ReLU6 and LeakyReLU coincide almost everywhere.
            style = dict(color='black', ls='--', lw=1.4) if name == 'linear' else \
                dict(color=colors(k % 10), lw=1.5, marker=markers[k % len(markers)], ms=4,
                     mfc='none' if k % 2 else None)
            ax.plot(x, result.mean[l, k].tolist(), label=name, **style)
        ax.set_title(LAYER_TITLES[layer])
        ax.set_xlabel('dimension ratio  d_in / d_out')
        ax.set_ylabel('rank ratio  rank / d_out')
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    for l in range(n, rows * cols):
        axes[l // cols][l % cols].axis('off')
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc='lower center', ncol=min(len(labels), 5), frameon=False)
    st = result.settings
    tol = 'float32 machine tolerance' if st.get('rtol') is None else \
        f'singular values > {st.get("rtol"):g} x largest'
    fig.suptitle(f'Rank of random layers: mean over {result.trials} random sizes per point, '
                 f'd_out in [{result.d_out_range[0]}, {result.d_out_range[1]}], N = {result.num_samples}\n'
                 f'rank = {tol}' + (', channels centred' if st.get('center') else '')
                 + f', 3x3 inputs blurred {st.get("input_blur", 0):g} px')
    legend_rows = math.ceil(len(labels) / 5)
    fig.tight_layout(rect=(0, 0.035 * legend_rows + 0.02, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- feature rank
@dataclass
class FeatureRank:
    """Rank statistics of a feature matrix ``[num_images, channels]``.

    Attributes:
        singular_values: descending singular values.
        nuclear_norm: sum of the singular values (the paper's rank measure).
        normalized_nuclear_norm: ``nuclear_norm / sigma_max``, independent of the
            features' scale: between 1 (rank 1) and ``min(num_images, channels)``.
        rank: numerical rank (``torch.linalg.matrix_rank`` rule).
        shape: shape of the feature matrix.
    """
    singular_values: Tensor
    nuclear_norm: float
    normalized_nuclear_norm: float
    rank: int
    shape: Tuple[int, int]


def feature_rank(features: Tensor, center: bool = True) -> FeatureRank:
    """Singular values, nuclear norm and numerical rank of ``[num_images, channels]`` features.

    ``center`` subtracts the mean feature over the images first: the mean is one shared
    direction that would otherwise dominate the largest singular value (features after
    SiLU are mostly positive) and says nothing about how the images differ.
    """
    if features.dim() != 2 or min(features.shape) < 1:
        raise ValueError(f'features must be a non-empty [num_images, channels] matrix, '
                         f'got shape {tuple(features.shape)}')
    f = features.detach().double()
    if center:
        f = f - f.mean(0, keepdim=True)
    sv = torch.linalg.svdvals(f)
    smax = float(sv[0]) if sv.numel() else 0.0
    tol = max(f.shape) * torch.finfo(torch.float32).eps * smax
    return FeatureRank(
        singular_values=sv, nuclear_norm=float(sv.sum()),
        normalized_nuclear_norm=float(sv.sum()) / smax if smax > 0 else 0.0,
        rank=int((sv > tol).sum()), shape=(f.shape[0], f.shape[1]))


def singular_value_cdf(singular_values: Tensor, grid: Optional[Tensor] = None
                       ) -> Tuple[Tensor, Tensor]:
    """Cumulative distribution of the singular values normalised to ``[0, 1]`` (paper Fig. 5, right).

    The singular values are divided by the largest one; the curve gives, for
    each ``x`` in ``grid``, the fraction of singular values ``<= x``. A curve that
    stays lower (rises later) means more large singular values: a higher rank.
    """
    sv = singular_values.double()
    if grid is None:
        grid = torch.linspace(0, 1, 201, dtype=torch.float64)
    if sv.numel() == 0 or float(sv.max()) <= 0:
        return grid, torch.ones_like(grid)
    norm = sv / sv.max()
    cdf = (norm[None, :] <= grid[:, None]).double().mean(1)
    return grid, cdf


# --------------------------------------------------------------------------- features of a backbone
#: ImageNet normalisation (RGB, 0-255), as the detector configs' data preprocessors use it.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def _to_tensor(images_bgr: Sequence, size: int) -> Tensor:
    import cv2
    import numpy as np
    batch = []
    for img in images_bgr:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
        batch.append(img[..., ::-1].astype(np.float32))  # BGR -> RGB
    x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def folder_images(folder: str, size: int = 224, limit: Optional[int] = None) -> Tensor:
    """Images of ``folder`` (sorted by name, at most ``limit``), resized to ``size`` and normalised."""
    import os

    import cv2
    if not os.path.isdir(folder):
        raise FileNotFoundError(f'image folder {folder} does not exist; pass a folder of '
                                f'{"/".join(IMAGE_EXTENSIONS)} images, or --synthetic / no images '
                                f'for random inputs')
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    if limit is not None:
        names = names[:limit]
    if len(names) < 2:
        raise ValueError(f'{folder} has {len(names)} images ({", ".join(IMAGE_EXTENSIONS)}); the '
                         f'singular values need at least 2, better 100 or more')
    images = []
    for name in names:
        img = cv2.imread(os.path.join(folder, name), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f'could not read image {os.path.join(folder, name)}')
        images.append(img)
    return _to_tensor(images, size)


def synthetic_images(num: int, size: int = 224, seed: int = 0) -> Tensor:
    """``num`` images of the project's synthetic shapes dataset, drawn in memory."""
    import numpy as np

    from rexnet_mmdet.datasets.synthetic import ShapesSettings, draw_image
    rng = np.random.default_rng(seed)
    settings = ShapesSettings(image_size=size)
    return _to_tensor([draw_image(rng, settings)[0] for _ in range(num)], size)


def random_images(num: int, size: int = 224, seed: int = 0) -> Tensor:
    """``num`` standard-normal inputs (already "normalised" images)."""
    return torch.randn(num, 3, size, size, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def pooled_features(backbone: torch.nn.Module, images: Tensor, batch_size: int = 16,
                    output: int = -1) -> Tensor:
    """Globally average-pooled ``backbone`` output number ``output``: ``[num_images, channels]``."""
    backbone.eval()
    feats = []
    for start in range(0, images.shape[0], batch_size):
        outs = backbone(images[start:start + batch_size])
        out = outs[output] if isinstance(outs, (tuple, list)) else outs
        feats.append(out.mean(dim=(2, 3)).double())
    return torch.cat(feats)


@dataclass
class BackboneSpec:
    """A backbone to analyse: ``[LABEL=]rexnet:WIDTH[:CHECKPOINT]``,
    ``[LABEL=]rexnet-stagewise:WIDTH[:CHECKPOINT]`` or a detector config (``config=...``)."""
    label: str
    kind: str  # 'rexnet', 'rexnet-stagewise' or 'config'
    widen_factor: Optional[float] = None
    checkpoint: Optional[str] = None
    config: Optional[str] = None


BACKBONE_KINDS = ('rexnet', 'rexnet-stagewise')


def _width_text(w: float) -> str:
    return f'{w:.1f}' if round(w, 1) == w else f'{w:g}'


def parse_backbone_spec(text: str) -> BackboneSpec:
    """``'rexnet:1.0'``, ``'trained=rexnet:1.0:work_dirs/x/epoch_12.pth'`` -> :class:`BackboneSpec`."""
    label = None
    body = text
    if '=' in text.split(':', 1)[0]:
        label, body = text.split('=', 1)
    parts = body.split(':', 2)
    usage = ('expected [LABEL=]KIND:WIDTH[:CHECKPOINT] with KIND one of '
             f'{", ".join(BACKBONE_KINDS)}, e.g. rexnet:1.0 or trained=rexnet:1.0:epoch_12.pth')
    if len(parts) < 2 or parts[0] not in BACKBONE_KINDS:
        raise ValueError(f'cannot read backbone {text!r}: {usage}')
    try:
        width = float(parts[1])
    except ValueError:
        raise ValueError(f'cannot read backbone {text!r}: width {parts[1]!r} is not a number; {usage}')
    ckpt = parts[2] if len(parts) == 3 and parts[2] else None
    if label is None:
        label = f'{parts[0]} x{_width_text(width)}' + (
            f' ({os.path.basename(ckpt)})' if ckpt else ' (random init)')
    return BackboneSpec(label=label, kind=parts[0], widen_factor=width, checkpoint=ckpt)


def parse_config_spec(text: str) -> BackboneSpec:
    """``'[LABEL=]configs/x.py[:CHECKPOINT]'`` -> :class:`BackboneSpec` (the detector's backbone)."""
    label = None
    body = text
    if '=' in text.split('.py', 1)[0]:
        label, body = text.split('=', 1)
    if '.py' not in body:
        raise ValueError(f'cannot read config {text!r}: expected [LABEL=]CONFIG.py[:CHECKPOINT]')
    cfg, _, ckpt = body.partition('.py')
    cfg += '.py'
    ckpt = ckpt[1:] if ckpt.startswith(':') else None
    if label is None:
        label = os.path.splitext(os.path.basename(cfg))[0] + (
            f' ({os.path.basename(ckpt)})' if ckpt else ' (random init)')
    return BackboneSpec(label=label, kind='config', checkpoint=ckpt or None, config=cfg)


def build_backbone(spec: BackboneSpec, tap: Optional[int] = None) -> torch.nn.Module:
    """Build the backbone of ``spec`` (no download) and load its checkpoint, if any.

    ``tap`` (an ``out_indices`` entry) selects the returned feature; by default the final 1x1
    conv (6) of a ``rexnet`` spec and the last output a config's backbone is set up with.
    A checkpoint may be an ImageNet checkpoint (official, timm, own format) or a detector
    checkpoint (its ``backbone.*`` keys are used); it is read with ``weights_only`` loading.
    """
    from mmdet.registry import MODELS

    import rexnet_mmdet  # noqa: F401
    from rexnet_mmdet.models.weights import load_backbone_weights
    if spec.kind == 'config':
        from .benchmark import load_config
        cfg = load_config(spec.config)
        bcfg = cfg.model.backbone.copy()
        bcfg['init_cfg'] = None  # never fetch the config's ImageNet weights here
        if tap is not None:
            bcfg['out_indices'] = (tap,)
    else:
        channels = None
        if spec.kind == 'rexnet-stagewise':
            from .channel_configs import stagewise_block_channels
            channels = stagewise_block_channels(spec.widen_factor)
        bcfg = dict(type='ReXNet', widen_factor=spec.widen_factor,
                    out_indices=(6 if tap is None else tap,), block_channels=channels)
    if spec.checkpoint:
        if not os.path.isfile(spec.checkpoint):
            raise FileNotFoundError(f'checkpoint {spec.checkpoint} of {spec.label!r} does not exist')
        backbone = MODELS.build(bcfg)
        load_backbone_weights(backbone, spec.checkpoint)
        return backbone
    import logging

    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    # Random weights are asked for here: keep init_weights' per-parameter log and the
    # backbone's "random weights" training warning out of the output.
    logger.setLevel(logging.ERROR)
    try:
        backbone = MODELS.build(bcfg)
        backbone.init_weights()
    finally:
        logger.setLevel(level)
    return backbone


def recalibrate_batchnorm(backbone: torch.nn.Module, images: Tensor, batch_size: int = 16) -> None:
    """Set every BatchNorm's running statistics to their average over ``images``, then eval mode.

    A randomly initialised network has running statistics 0 and 1, so in eval mode its BN
    layers normalise nothing and the activations vanish over 16 blocks; with the statistics of
    the data it computes what a trained network's BN would. Trained checkpoints keep their own
    statistics. (The calibration itself is :func:`rexnet_mmdet.analysis.benchmark.calibrate_batchnorm`.)
    """
    from .benchmark import calibrate_batchnorm
    batches = iter(images.split(batch_size))
    calibrate_batchnorm(backbone, lambda: backbone(next(batches)), steps=-(-images.shape[0] // batch_size))
    backbone.eval()


def plot_feature_rank(results: Dict[str, FeatureRank], path: str, title: str = '') -> None:
    """Paper Figure 5 style: nuclear norms (bars), the cumulative distribution of the normalised
    singular values, and the normalised spectrum, one colour per model."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    labels = list(results)
    colors = plt.get_cmap('tab10')
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    ax = axes[0]
    values = [results[k].nuclear_norm for k in labels]
    bars = ax.bar(range(len(labels)), values, color=[colors(i % 10) for i in range(len(labels))])
    for bar, k in zip(bars, labels):
        ax.annotate(f'{results[k].nuclear_norm:.3g}\n(sum/max {results[k].normalized_nuclear_norm:.1f})',
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha='center', va='bottom',
                    fontsize=8)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=15, ha='right', fontsize=8)
    ax.set_ylabel('nuclear norm  (sum of singular values)')
    ax.set_title('(a) nuclear norm of the features')
    ax.set_ylim(0, max(values) * 1.25 if values and max(values) > 0 else 1)
    ax.grid(axis='y', alpha=0.3)
    for i, k in enumerate(labels):
        # Only the numerically non-zero singular values: centring removes one direction, and
        # round-off zeros would only stretch the log axis.
        sv = results[k].singular_values[:max(1, results[k].rank)]
        grid, cdf = singular_value_cdf(sv)
        axes[1].plot(grid.numpy(), cdf.numpy(), color=colors(i % 10), lw=1.8, label=k)
        norm = sv / sv[0] if float(sv[0]) > 0 else sv
        axes[2].semilogy(range(1, sv.numel() + 1), norm.numpy(), color=colors(i % 10), lw=1.5, label=k)
    axes[1].set_xlabel('singular value / largest singular value')
    axes[1].set_ylabel('fraction of (non-zero) singular values <= x')
    axes[1].set_title('(b) cumulative distribution (lower = higher rank)')
    axes[1].set_xlim(0, 1)
    axes[1].set_ylim(0, 1.02)
    axes[1].grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc='lower right')
    axes[2].set_xlabel('index of the singular value')
    axes[2].set_ylabel('singular value / largest')
    axes[2].set_title('(c) normalised singular value spectrum')
    axes[2].grid(alpha=0.3, which='both')
    axes[2].legend(fontsize=8, loc='lower left')
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.95 if title else 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
