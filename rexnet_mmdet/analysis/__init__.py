"""Analyses of the paper and of this implementation, one job per module:

- ``complexity``: parameters and FLOPs of backbones, classifiers and detectors.
- ``speed``: what the speed comparisons share (the models compared, the timed row, ratios);
  ``backbone_speed``, ``detector_speed`` and ``roi_align_speed``: the comparisons, every model in
  every treatment and precision; ``precision``: precisions, TF32, and the output check.
- ``train_speed``: images per second and peak memory of training steps.
- ``memory``: peak memory of a training step, with and without gradient checkpointing.
- ``rank_study``: the random-layer rank study (paper §3).
- ``feature_rank``: the rank of a backbone's features over images (paper §6).
- ``report``: tables and figures of their results.
- ``paper``: the paper's numbers; ``channel_configs``: channel configurations to compare against.
- ``results``: finished training runs read from their work dirs; ``results_report``: their table and
  AP-against-cost picture beside the paper's; ``paper_runs``: the commands that train, test and gather
  the paper's COCO tables on a cluster.

Submodules are imported on use (``from rexnet_mmdet.analysis import detector_speed``) so that importing one
does not pull in matplotlib or the detector stack.
"""
