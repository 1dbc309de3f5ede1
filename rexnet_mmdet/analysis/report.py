"""Tables and figures of the analyses' results: speed and stage timings, training memory, the rank
study (paper Figure 1) and the feature rank (paper Figure 5).

Figures are drawn on ``matplotlib.figure.Figure`` with the Agg canvas directly: no pyplot, so
nothing here changes the process's matplotlib backend.
"""
import json
import math
import os
import os.path as osp
import textwrap
from typing import Any, Dict, Optional, Sequence

from ..utils.tables import format_count, table
from .feature_rank import FeatureRank, singular_value_cdf
from .rank_study import LAYER_TITLES, RankStudyResult
from ..deploy.treatments import TREATMENT_LABELS, batches_roi_align
from .detector_speed import StageTimer
from .precision import precision_label, within
from .speed import BASELINE_BACKBONES, REFERENCE_NAME, Timing


def _figure(**kwargs):
    """A figure with the Agg canvas attached (PNG output without pyplot or a backend switch)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _ms(seconds: float) -> str:
    return f'{seconds * 1e3:.1f}' if seconds < 10 else f'{seconds * 1e3:.0f}'


def timing_table(rows: Sequence[Timing], markdown: bool = False) -> str:
    """One table for the rows of one part (backbones or detectors)."""
    if not rows:
        return ''
    part = rows[0].part
    # Ratio columns: every reference some row was compared with, in a stable order.
    references = [n for n in BASELINE_BACKBONES if any(n in r.ratios for r in rows)]
    references += sorted({ref for r in rows for ref in r.ratios} - set(references))
    header = ['model', 'batch', 'input', 'params', 'median ms', 'ms/image', 'IQR/median']
    if part == 'detectors':
        header = ['detector', 'backbone', 'batch', 'input (padded)', 'params', 'RoIs', 'dets', 'median ms',
                  'min ms', 'IQR/median']
    header += [f'/ {ref}' for ref in references]
    body = []
    for r in rows:
        ratios = [f'{r.ratios[ref]:.2f}x' if ref in r.ratios else '-' for ref in references]
        if part == 'detectors':
            body.append(['Faster R-CNN + FPN', r.label, r.batch, f'{r.input[0]}x{r.input[1]}', format_count(r.params),
                         r.notes.get('rois', '-'), r.notes.get('detections', '-'), _ms(r.median), _ms(r.minimum),
                         f'{r.spread:.2f}'] + ratios)
        else:
            body.append([r.label, r.batch, f'{r.input[0]}x{r.input[1]}', format_count(r.params), _ms(r.median),
                         _ms(r.median / r.batch), f'{r.spread:.2f}'] + ratios)
    return table(header, body, markdown)


def treatment_table(rows: Sequence[Timing], markdown: bool = False, reference: str = REFERENCE_NAME,
                    numeric: Optional[Dict[str, Any]] = None) -> str:
    """One line per model (and batch), one column pair per treatment and precision: median ms and
    the ratio to ``reference`` under the same treatment and precision. The header names each
    column's treatment (and, for detectors, their RoI Align) and precision (TF32 named, from
    ``numeric``)."""
    if not rows:
        return ''
    columns = list(dict.fromkeys((r.mode, r.precision) for r in rows))
    keys = list(dict.fromkeys((r.name, r.batch) for r in rows))
    by_key = {(r.name, r.batch, r.mode, r.precision): r for r in rows}
    detectors = rows[0].part == 'detectors'
    header = ['model', 'batch']
    for t, p in columns:
        label = TREATMENT_LABELS.get(t, t)
        if detectors:  # what treat_detector adds to the backbone's treatment
            label += ', batched RoI Align' if batches_roi_align(t) else ", mmcv's RoI Align"
        label += f', {precision_label(p, numeric)}'
        header += [f'{label}: ms', f'/ {reference} ({t}, {p})']
    body = []
    for name, batch in keys:
        line = [name, batch]
        for t, p in columns:
            r, ref = by_key.get((name, batch, t, p)), by_key.get((reference, batch, t, p))
            line += [_ms(r.median) if r else '-',
                     f'{r.median / ref.median:.2f}x' if r and ref and ref is not r else '-']
        body.append(line)
    return table(header, body, markdown)


def accuracy_table(rows: Sequence[Timing], markdown: bool = False) -> str:
    """Each row's outputs against the model as built in the most exact setting (see
    :mod:`~rexnet_mmdet.analysis.precision`): in the row's precision, the relative difference, that
    of the model as built run the same way and the bound rounding explains; then the same for the
    row's treatment in fp32 with TF32 off, where an error stands out however much a random network
    amplifies rounding."""
    header = ['model', 'batch', 'precision', 'relative difference', 'as built, same precision', 'bound', 'within',
              'fp32 (TF32 off): relative difference', 'bound', 'within']
    body = []
    for r in rows:
        if 'rel_diff' not in r.notes:
            continue
        n = r.notes
        body.append([r.label, r.batch, r.precision, f'{n["rel_diff"]:.1e}', f'{n["rel_diff_as_built"]:.1e}',
                     f'{n["tolerance"]:.1e}', _verdict(n['rel_diff'], n['tolerance']),
                     f'{n["fp32_rel_diff"]:.1e}', f'{n["fp32_tolerance"]:.1e}',
                     _verdict(n['fp32_rel_diff'], n['fp32_tolerance'])])
    return table(header, body, markdown)


def _verdict(difference: float, bound: float) -> str:
    return 'yes' if within(difference, bound) else 'NO: check this model'


def roi_align_table(rows: Sequence[Timing], markdown: bool = False) -> str:
    """The RoI Align timings (:func:`~rexnet_mmdet.analysis.speed.benchmark_roi_align`): one line per layer
    and map layout, the ratio to the first (mmcv's) and the largest difference to its output."""
    first = rows[0].label if rows else ''
    header = ['RoI Align', 'maps', 'RoIs', 'channels', 'median ms', 'min ms', 'IQR/median', f'/ {first}',
              'max |diff|']
    body = [[r.name, r.mode, r.notes['rois'], r.notes['channels'], _ms(r.median), _ms(r.minimum), f'{r.spread:.2f}',
             f'{r.ratios[first]:.2f}x' if first in r.ratios else '-', f'{r.notes["max_abs_diff"]:.1e}'] for r in rows]
    return table(header, body, markdown)


def stage_table(rows: Sequence[Timing], markdown: bool = False) -> str:
    """Median milliseconds per stage of each detector (see :class:`StageTimer`); ``-`` where a
    stage is not timed on its own (a lever runs backbone and neck as one)."""
    stages = [st for st, _, _ in StageTimer.STAGES if any(st in r.notes.get('stages_ms', {}) for r in rows)]
    stages.append('other')
    header = ['backbone', 'batch'] + [f'{st} ms' for st in stages] + ['total ms']
    body = [[r.label, r.batch] + [_ms(r.notes['stages_ms'][st] / 1e3) if st in r.notes['stages_ms'] else '-'
                                  for st in stages] + [_ms(r.median)]
            for r in rows if r.notes.get('stages_ms')]
    return table(header, body, markdown)


def phase_table(rows: Sequence[Timing], markdown: bool = False) -> str:
    """Where each comparison's time went, per batch size: the reference and accuracy passes, the
    warm-up calls (cuDNN's autotuning, when on, and graph captures) and the timed calls."""
    first = {}
    for r in rows:
        if 'warmup_s' in r.notes:
            first.setdefault(r.batch, r)
    header = ['batch', 'models', 'reference + accuracy s', 'warm-up s', 'timed s']
    body = [[b, sum(r.batch == b for r in rows), f"{r.notes['prepare_s']:.1f}", f"{r.notes['warmup_s']:.1f}",
             f"{r.notes['timed_s']:.1f}"] for b, r in first.items()]
    return table(header, body, markdown)


class LiveTables:
    """A run's tables and record as they grow: the text (``md_path``) and the record (``json_path``,
    with ``complete`` false until :meth:`finish`) are rewritten through a temporary file and a rename
    whenever a section changes, so that a run stopped at any moment leaves every row it measured.
    Either path may be ``None``."""

    def __init__(self, md_path: Optional[str], json_path: Optional[str], record: Dict[str, Any]):
        self.md_path, self.json_path, self.record = md_path, json_path, record
        self.sections: Dict[str, str] = {}
        for path in (md_path, json_path):
            if path:
                os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)

    def update(self, key: str, text: str) -> None:
        """Set section ``key`` (sections keep the order they first came in) and write both files."""
        self.sections[key] = text
        self.write()

    def text(self) -> str:
        return '\n'.join(self.sections.values())

    def write(self, complete: bool = False) -> None:
        self.record['complete'] = complete
        if self.md_path:
            _replace(self.md_path, self.text() + '\n')
        if self.json_path:
            _replace(self.json_path, json.dumps(self.record, indent=1, default=str))

    def finish(self) -> None:
        self.write(complete=True)


def _replace(path: str, text: str) -> None:
    tmp = f'{path}.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)
    os.replace(tmp, path)


def plot_timings(backbones: Sequence[Timing], detectors: Sequence[Timing], path: str,
                 title: str = '') -> str:
    """A PNG: backbone milliseconds per image at each batch size, and the detectors' predict time
    split into stages. Either list may be empty."""
    panels = [p for p in (backbones, detectors) if p]
    if not panels:
        raise ValueError('nothing to plot: no backbone and no detector timings')
    fig = _figure(figsize=(6.5 * len(panels), 4.5))
    axes = fig.subplots(1, len(panels), squeeze=False)
    axes = list(axes[0])
    if backbones:
        ax = axes.pop(0)
        labels = list(dict.fromkeys(r.label for r in backbones))
        batches = list(dict.fromkeys(r.batch for r in backbones))
        width = 0.8 / len(batches)
        for j, batch in enumerate(batches):
            values = [next((r.median / r.batch * 1e3 for r in backbones if r.label == lab and r.batch == batch), 0)
                      for lab in labels]
            ax.barh([i + j * width for i in range(len(labels))], values, height=width, label=f'batch {batch}')
        ax.set_yticks([i + width * (len(batches) - 1) / 2 for i in range(len(labels))], labels)
        ax.invert_yaxis()
        ax.set_xlabel('median ms per image')
        ax.set_title(f'Backbones, {backbones[0].input[0]}x{backbones[0].input[1]}')
        ax.legend()
    if detectors:
        ax = axes.pop(0)
        stages = [st for st, _, _ in StageTimer.STAGES
                  if any(st in r.notes.get('stages_ms', {}) for r in detectors)] + ['other']
        left = [0.0] * len(detectors)
        for st in stages:
            values = [r.notes.get('stages_ms', {}).get(st, 0.0) for r in detectors]
            ax.barh(range(len(detectors)), values, left=left, label=st)
            left = [a + b for a, b in zip(left, values)]
        for i, r in enumerate(detectors):
            # The ratio to the reference detector under the same treatment (label "ResNet-50 (mode)").
            ratio = r.ratios.get(f'{REFERENCE_NAME} ({r.mode})', r.ratios.get(REFERENCE_NAME))
            if ratio is not None:
                ax.text(left[i], i, f' {ratio:.2f}x', va='center', fontsize=8)
        several = len({r.batch for r in detectors}) > 1
        ax.set_yticks(range(len(detectors)), [f'{r.label}, batch {r.batch}' if several else r.label for r in detectors])
        ax.invert_yaxis()
        ax.set_xlabel('median ms per image (stages: medians)')
        ax.set_title(f'Faster R-CNN + FPN predict, {detectors[0].input[0]}x{detectors[0].input[1]}')
        ax.legend(fontsize=8, loc='upper center', bbox_to_anchor=(0.5, -0.13), ncol=5, frameon=False,
                  handlelength=1.2, columnspacing=0.8)
    if title:
        fig.suptitle(textwrap.fill(title, width=int(fig.get_figwidth() * 14)), fontsize=9)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def memory_table(results: Sequence[Dict[str, Any]], markdown: bool = False) -> str:
    """Peak memory with and without ``with_cp``, and the saving, per config and scope."""
    header = ['config', 'scope', 'batch', 'input (padded)', 'with_cp', 'peak MiB', 'saving', 'step s']
    body = []
    plain = {(r['config'], r['scope']): r for r in results if not r['with_cp']}
    for r in results:
        base = plain.get((r['config'], r['scope']))
        saving = '-'
        if r['with_cp'] and base and base['peak_mib'] > 0:
            saving = f"{(1 - r['peak_mib'] / base['peak_mib']) * 100:.0f}%"
        body.append([osp.basename(r['config']), r['scope'], r['batch'], r['padded'],
                     'yes' if r['with_cp'] else 'no', f"{r['peak_mib']:.0f}", saving, f"{r['step_s']:.1f}"])
    return table(header, body, markdown)


def training_table(results: Sequence[Dict[str, Any]], markdown: bool = False) -> str:
    """Training throughput (:func:`~rexnet_mmdet.analysis.train_speed.benchmark_training`): one line
    per detector and setting, images/s, the ratio to its baseline in the same setting, step time
    and peak memory."""
    header = ['detector', 'precision', 'with_cp', 'batch', 'input (padded)', 'images/s', '/ baseline',
              'median step ms', 'peak MiB', 'losses finite']
    body = [[r['name'], 'AMP ' + r['precision'] if r['amp'] else 'fp32', 'yes' if r['with_cp'] else 'no', r['batch'],
             r['padded'], f"{r['images_per_s']:.1f}", f"{r['vs_baseline']:.2f}x" if 'vs_baseline' in r else '-',
             f"{r['step_ms']:.0f}", f"{r['peak_mib']:.0f}", 'yes' if r['losses_finite'] else 'NO']
            for r in results]
    return table(header, body, markdown)


def plot_rank_study(result: RankStudyResult, path: str) -> None:
    """Figure 1 of the paper: rank ratio vs. dimension ratio, one panel per layer type."""
    from matplotlib import colormaps

    n = len(result.layer_types)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig = _figure(figsize=(6.2 * cols, 4.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    colors = colormaps['tab10']
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


def plot_feature_rank(results: Dict[str, FeatureRank], path: str, title: str = '') -> None:
    """Paper Figure 5 style: nuclear norms (bars), the cumulative distribution of the normalised
    singular values, and the normalised spectrum, one colour per model."""
    from matplotlib import colormaps

    labels = list(results)
    colors = colormaps['tab10']
    fig = _figure(figsize=(16, 4.8))
    axes = fig.subplots(1, 3)
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


__all__ = ['timing_table', 'treatment_table', 'accuracy_table', 'roi_align_table', 'stage_table', 'training_table',
           'phase_table', 'LiveTables', 'plot_timings', 'memory_table', 'plot_rank_study', 'plot_feature_rank']
