"""Datasets: a synthetic COCO-format instance dataset that needs no download.

Importing this package registers ``ShapesDataset`` in mmdet's DATASETS.
"""
from .shapes_dataset import ShapesDataset
from .synthetic import SHAPE_CLASSES, ShapesSettings, generate_shapes_dataset

__all__ = ['ShapesDataset', 'SHAPE_CLASSES', 'ShapesSettings', 'generate_shapes_dataset']
