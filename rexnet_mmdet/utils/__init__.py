"""What the tools, the engine, the inference path and the analyses share: building models from
configs (``build``), timing (``timing``), tables (``tables``) and the tools' one way to fail (``cli``).

Imports only :mod:`rexnet_mmdet.models` and :mod:`rexnet_mmdet.datasets` of this package; the
submodules are imported on use so that importing one does not pull in the detector stack.
"""
