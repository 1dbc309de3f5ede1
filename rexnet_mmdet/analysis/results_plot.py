"""Box AP against cost (parameters, FLOPs, prediction latency): gathered runs beside the paper's points.

The paper's points are its ReXNet rows and its reference backbone of the same detector (ResNet-50 for the
R-CNNs, MobileNetV2 for SSDLite: Tables 6, 7 and 9), drawn hollow and labelled as the paper's. The runs
are drawn filled, labelled by config. The paper's FLOPs are its own (counted at 1280x800 for the R-CNNs,
see :mod:`.paper`); the runs' are this project's count at each config's test input.
"""
from typing import Dict, List, Optional, Sequence

from .paper import PAPER_DETECTORS, PAPER_REFERENCES, PaperDetector
from .results import RunResult

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
    fig = Figure(figsize=(6 * len(panels), 5.2))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    colours = {'Faster R-CNN + FPN': 'tab:blue', 'Mask R-CNN + FPN': 'tab:green', 'SSDLite': 'tab:orange'}
    for ax, (key, label) in zip(axes, panels):
        if key != 'latency':
            for name, rows in paper.items():
                for row in rows:
                    x = row.params_m if key == 'params' else row.gflops
                    reference = 'rexnet' not in row.backbone.lower()
                    ax.scatter([x], [row.box_ap], s=60, facecolors='none', edgecolors=colours.get(name, 'grey'),
                               marker='s' if reference else 'o', linewidths=1.5)
                    split = ', test-dev' if row.ap_split == 'test-dev2017' else ''
                    ax.annotate(f'paper: {name.split(" ")[0]} {row.backbone}{split}', (x, row.box_ap), fontsize=7,
                                textcoords='offset points', xytext=(5, -3), color=colours.get(name, 'grey'))
        for run in plotted:
            x = {'params': run.params / 1e6 if run.params is not None else None,
                 'flops': run.flops / 1e9 if run.flops is not None else None, 'latency': run.latency_ms}[key]
            if x is None:
                continue
            colour = colours.get(DETECTOR_NAMES.get(run.detector, ''), 'black')
            ax.scatter([x], [run.box_ap], s=70, color=colour, marker='*' if run.status == 'finished' else 'x')
            source = 'test' if run.test_box else 'val'
            ax.annotate(f'run: {run.config} ({source}{", " + run.status if run.status != "finished" else ""})',
                        (x, run.box_ap), fontsize=7, textcoords='offset points', xytext=(5, 4))
        ax.set_xlabel(label)
        ax.set_ylabel('box AP (%)')
        ax.grid(alpha=0.3)
        if key == 'flops':
            ax.set_xscale('log')
    axes[0].set_title('hollow: the paper\'s numbers (COCO); filled: runs')
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


__all__ = ['DETECTOR_NAMES', 'paper_points', 'plot_results']
