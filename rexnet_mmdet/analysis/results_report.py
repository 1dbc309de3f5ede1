"""Gathered runs as tables (Markdown, CSV, JSON) and as a picture: box AP against cost (parameters,
FLOPs, prediction latency) beside the paper's points.

The paper's points are its ReXNet rows and its reference backbone of the same detector (ResNet-50 for the
R-CNNs, MobileNetV2 for SSDLite: Tables 6, 7 and 9), drawn hollow and labelled as the paper's. The runs
are drawn filled, labelled by config. The paper's FLOPs are its own (counted at 1280x800 for the R-CNNs,
see :mod:`.paper`); the runs' are this project's count at each config's test input.
"""
import csv
import io
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

from ..models.width_names import width_tag
from ..utils.tables import format_count, markdown_table, text_table
from .paper import PAPER_DETECTORS, PAPER_REFERENCES, PaperDetector
from .results import BOX_KEYS, RunResult

# ----------------------------------------------------------------------------- tables
TABLE_HEADER = ('run', 'status', 'detector', 'backbone', 'ImageNet start', 'schedule (img × GPUs)',
                'box AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'best AP (when)', 'mask AP', 'test box AP',
                'paper AP', 'Δ paper', 'params', 'FLOPs (input)', 'train time', 'peak mem', 'latency')


def _pct(value: Optional[float], signed: bool = False) -> str:
    return '–' if value is None else (f'{value:+.1f}' if signed else f'{value:.1f}')


def _hours(seconds: Optional[float]) -> str:
    if seconds is None:
        return '–'
    return f'{seconds / 3600:.1f} h' if seconds >= 3600 else f'{seconds / 60:.1f} min'


def table_row(run: RunResult) -> List[str]:
    status = run.status + (f' ({run.progress})' if run.progress and run.status != 'finished' else '')
    if run.problems:
        status += ': ' + '; '.join(run.problems)
    backbone = run.backbone + (f' {width_tag(run.width)}' if run.width is not None else '')
    batch = f'{run.images_per_batch if run.images_per_batch is not None else "?"} × {run.gpus or "?"}'
    paper = _pct(run.paper_box_ap) + (' (test-dev)' if run.paper_split == 'test-dev2017' else '')
    mask = _pct(run.mask.get('AP')) if run.mask else '–'
    if run.test_mask:
        mask += f' (test {run.test_mask.get("AP", float("nan")):.1f})'
    return [run.config or osp.basename(run.work_dir), status, run.detector or '–', backbone or '–',
            run.imagenet_start or '–', f'{run.schedule or "?"} ({batch})',
            *[_pct(run.box.get(name)) for name, _ in BOX_KEYS],
            f'{_pct(run.best_box_ap)} ({run.best_at})' if run.best_box_ap is not None else '–', mask,
            _pct(run.test_box.get('AP')) + (f' ({run.test_checkpoint})' if run.test_checkpoint else '')
            if run.test_box else '–',
            paper, _pct(run.box_ap_difference, signed=True),
            format_count(run.params) if run.params is not None else '–',
            f'{format_count(run.flops)} ({run.flops_input})' if run.flops is not None else '–',
            _hours(run.train_time_s), f'{run.peak_memory_mib:.0f} MiB' if run.peak_memory_mib is not None else '–',
            f'{run.latency_ms:.1f} ms' if run.latency_ms is not None else '–']


def results_table(runs: Sequence[RunResult], markdown: bool = True) -> str:
    """The runs as a Markdown (or plain text) table, one row each."""
    rows = [table_row(r) for r in runs]
    return markdown_table(TABLE_HEADER, rows) if markdown else text_table(TABLE_HEADER, rows)


def results_csv(runs: Sequence[RunResult]) -> str:
    """The runs as CSV: every field of :class:`RunResult`, the COCO numbers as ``box_AP50`` … columns."""
    flat = []
    for run in runs:
        d = run.to_dict()
        for part in ('box', 'mask', 'test_box', 'test_mask'):
            for name, _ in BOX_KEYS:
                d[f'{part}_{name}'] = d[part].get(name)
            del d[part]
        d['problems'] = '; '.join(d['problems'])
        flat.append(d)
    out = io.StringIO()
    if flat:
        writer = csv.DictWriter(out, fieldnames=list(flat[0]))
        writer.writeheader()
        writer.writerows(flat)
    return out.getvalue()


def results_json(runs: Sequence[RunResult]) -> str:
    return json.dumps([r.to_dict() for r in runs], indent=1)


def write_results(runs: Sequence[RunResult], out_prefix: str) -> List[str]:
    """``<out_prefix>.md``, ``.csv`` and ``.json``; returns their paths."""
    folder = osp.dirname(osp.abspath(out_prefix))
    os.makedirs(folder, exist_ok=True)
    written = []
    for ext, text in (('md', results_table(runs) + '\n'), ('csv', results_csv(runs)), ('json', results_json(runs))):
        path = f'{out_prefix}.{ext}'
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)
        written.append(path)
    return written



# ----------------------------------------------------------------------------- picture
#: mmdet model types and the paper's detector names.
DETECTOR_NAMES: Dict[str, str] = {'FasterRCNN': 'Faster R-CNN + FPN', 'MaskRCNN': 'Mask R-CNN + FPN',
                                  'SingleStageDetector': 'SSDLite'}


def paper_points(detectors: Optional[Sequence[str]] = None) -> Dict[str, List[PaperDetector]]:
    """The paper's rows by detector name (all three, or those named), references included."""
    names = list(detectors) if detectors else list(PAPER_REFERENCES)
    return {name: [row for row in PAPER_DETECTORS.values() if row.detector == name] for name in names}


def plot_results(runs: Sequence[RunResult], path: str, title: str = '') -> str:
    """Draw box AP against parameters, FLOPs and (where a run has one) latency into ``path`` (PNG)."""
    from matplotlib.figure import Figure

    plotted = [r for r in runs if r.box_ap is not None]
    families = sorted({DETECTOR_NAMES[r.detector] for r in plotted if r.detector in DETECTOR_NAMES})
    paper = paper_points(families or None)
    with_latency = any(r.latency_ms is not None for r in plotted)
    panels = [('params', 'parameters (M)'), ('flops', 'FLOPs (G, multiply-adds)')]
    if with_latency:
        panels.append(('latency', 'prediction latency (ms, batch 1)'))
    fig = Figure(figsize=(6.5 * len(panels), 5.5))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    colours = {'Faster R-CNN + FPN': 'tab:blue', 'Mask R-CNN + FPN': 'tab:green', 'SSDLite': 'tab:orange'}
    for ax, (key, label) in zip(axes, panels):
        if key != 'latency':
            for name, rows in paper.items():
                colour = colours.get(name, 'grey')
                split = ', test-dev' if rows and rows[0].ap_split == 'test-dev2017' else ''
                rexnet = sorted((r for r in rows if r.widen_factor is not None), key=lambda r: r.widen_factor)
                xs = [r.params_m if key == 'params' else r.gflops for r in rexnet]
                ax.plot(xs, [r.box_ap for r in rexnet], 'o-', color=colour, mfc='none', linewidth=1, markersize=7,
                        label=f'paper: {name}, ReXNet{split}')
                for x, r in zip(xs, rexnet):
                    ax.annotate(f'×{r.widen_factor:g}', (x, r.box_ap), fontsize=7, color=colour,
                                textcoords='offset points', xytext=(4, -9))
                for r in (r for r in rows if r.widen_factor is None):
                    ax.scatter([r.params_m if key == 'params' else r.gflops], [r.box_ap], marker='s', s=50,
                               facecolors='none', edgecolors=colour, label=f'paper: {name}, {r.backbone}{split}')
        for run in plotted:
            x = {'params': run.params / 1e6 if run.params is not None else None,
                 'flops': run.flops / 1e9 if run.flops is not None else None, 'latency': run.latency_ms}[key]
            if x is None:
                continue
            colour = colours.get(DETECTOR_NAMES.get(run.detector, ''), 'black')
            source = 'tools/test.py' if run.test_box else 'last validation'
            ax.scatter([x], [run.box_ap], s=90, color=colour, marker='*' if run.status == 'finished' else 'X',
                       label=f'run: {run.config} ({source}{", " + run.status if run.status != "finished" else ""})')
        ax.set_xlabel(label)
        ax.set_ylabel('box AP (%)')
        ax.grid(alpha=0.3)
        if key == 'flops':
            ax.set_xscale('log')
    axes[0].legend(fontsize=7, loc='best')
    fig.suptitle(title or 'Box AP against cost: the paper\'s COCO numbers (hollow) and runs (filled)')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


__all__ = ['TABLE_HEADER', 'table_row', 'results_table', 'results_csv', 'results_json', 'write_results',
           'DETECTOR_NAMES', 'paper_points', 'plot_results']
