"""Analysis tools: model complexity, the rank studies of the paper (§3, §6) and
channel configurations to compare against.

Submodules are imported on use (``from rexnet_mmdet.analysis import rank``) so
that importing one does not pull in matplotlib or the detector stack.
"""
