"""Make the synthetic COCO-format shapes dataset (no download).

    python tools/misc/make_synthetic_dataset.py [--config CONFIG | options] [--out DIR]

With --config, the settings and folder are the ones the config's datasets use (what training
would make on first use anyway). Otherwise the options below decide. The result is an ordinary
COCO instance dataset (annotations/instances_<split>.json, <split>/*.png) that any COCO tool
reads.
"""
import argparse
import os.path as osp
import sys

from rexnet_mmdet.datasets.synthetic import ShapesSettings, ann_file_name, generate_shapes_dataset
from rexnet_mmdet.engine.data_checks import DatasetCheckError
from rexnet_mmdet.utils.cli import tool_main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Make the synthetic shapes dataset (COCO format)')
    parser.add_argument('--config', help='take folder and settings from this config (e.g. a configs/demo/ config)')
    parser.add_argument('--out', default='data/shapes', help='dataset folder (default: %(default)s)')
    defaults = ShapesSettings()
    parser.add_argument('--image-size', type=int, default=defaults.image_size, help='image side in pixels')
    parser.add_argument('--train', type=int, default=defaults.splits['train'], help='training images')
    parser.add_argument('--val', type=int, default=defaults.splits['val'], help='validation images')
    parser.add_argument('--min-objects', type=int, default=defaults.min_objects)
    parser.add_argument('--max-objects', type=int, default=defaults.max_objects)
    parser.add_argument('--colour-by-class', action='store_true', help='one hue range per category (easier)')
    parser.add_argument('--seed', type=int, default=defaults.seed)
    parser.add_argument('--overwrite', action='store_true',
                        help='make it again even if it is there (replaces a dataset made with other settings)')
    return parser.parse_args(argv)


@tool_main(errors=(DatasetCheckError,))
def main(argv=None) -> None:
    args = parse_args(argv)
    if args.config:
        from mmengine.config import Config

        from rexnet_mmdet.engine.data_checks import prepare_synthetic_datasets
        cfg = Config.fromfile(args.config)
        prepare_synthetic_datasets(cfg, ['train_dataloader', 'val_dataloader', 'test_dataloader'])
        return
    settings = ShapesSettings(image_size=args.image_size, splits={'train': args.train, 'val': args.val},
                              min_objects=args.min_objects, max_objects=args.max_objects,
                              colour_by_class=args.colour_by_class, seed=args.seed)
    root = generate_shapes_dataset(args.out, settings, overwrite=args.overwrite)
    for split in settings.splits:
        print(f'{split}: {osp.join(root, ann_file_name(split))}, images in {osp.join(root, split)}/')


if __name__ == '__main__':
    sys.exit(main())
