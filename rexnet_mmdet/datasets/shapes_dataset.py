"""``ShapesDataset``: the synthetic shapes dataset as an mmdet dataset, made on first use."""
import os.path as osp
from typing import Optional

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

from .synthetic import SHAPE_CLASSES, SHAPE_PALETTE, generate_shapes_dataset, settings_from_config


@DATASETS.register_module()
class ShapesDataset(CocoDataset):
    """COCO-format dataset of coloured shapes (see ``rexnet_mmdet.datasets.synthetic``).

    Behaves exactly like ``CocoDataset`` (and is evaluated by ``CocoMetric``); the only
    addition is that the images and annotation files are drawn under ``data_root`` when
    they are not there yet, as the dataset is loaded (not with ``lazy_init=True``, which
    asks only for its metainfo). A folder made with other settings is refused, never replaced.

    Args:
        synthetic: settings of the generator (``ShapesSettings`` fields: ``image_size``,
            ``splits``, ``min_objects``, ``max_objects``, ``min_size``, ``max_size``,
            ``seed``). Every dataset sharing a ``data_root`` must use the same settings.
        **kwargs: as for ``CocoDataset``; ``data_root`` is required.
    """

    METAINFO = dict(classes=SHAPE_CLASSES, palette=SHAPE_PALETTE)

    def __init__(self, *args, synthetic: Optional[dict] = None, **kwargs) -> None:
        data_root = kwargs.get('data_root')
        if not data_root:
            raise ValueError('ShapesDataset needs data_root: the folder the synthetic images are made in')
        self.synthetic = settings_from_config(synthetic)
        super().__init__(*args, **kwargs)

    def full_init(self) -> None:
        if not self._fully_initialized:
            generate_shapes_dataset(osp.expanduser(self.data_root), self.synthetic)
        super().full_init()
