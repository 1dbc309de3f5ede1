"""A COCO-format instance dataset drawn on the fly: coloured shapes on textured backgrounds.

It needs no download and is made on first use, so the whole train/evaluate loop can be
shown on any machine. Each category is a shape (circle, triangle, square, star); colours
are random, so the model has to learn the shape, not the colour. Objects never overlap, so
every polygon is exactly the visible region of its object and masks are exact.

Layout under ``root`` (the same as ``data/coco``, one folder per split)::

    annotations/instances_train.json   annotations/instances_val.json
    train/000000.jpg ...                val/000000.jpg ...
    synthetic.json                      the settings it was made with

The images are a pure function of the settings (``seed`` included): two machines make the
same dataset.
"""
import fcntl
import json
import math
import os
import os.path as osp
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

#: Category names, in category-id order (ids start at 1 as in COCO).
SHAPE_CLASSES: Tuple[str, ...] = ('circle', 'triangle', 'square', 'star')
#: Colours for drawing each category's detections (RGB).
SHAPE_PALETTE: List[Tuple[int, int, int]] = [(220, 20, 60), (0, 130, 200), (60, 180, 75), (245, 130, 48)]
#: Written last into ``root``; its presence means the dataset is complete.
STAMP_FILE = 'synthetic.json'
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ShapesSettings:
    """Everything that decides the dataset's content.

    Args:
        image_size: side of the square images in pixels.
        splits: number of images per split, e.g. ``{'train': 400, 'val': 60}``.
        min_objects / max_objects: objects per image (inclusive). ``min_objects=0`` allows
            images without any object.
        min_size / max_size: object size as a fraction of ``image_size``.
        colour_by_class: give each category its own range of hues (red circles, green
            triangles, blue squares, yellow stars, with some spread) instead of random colours:
            an easier task, learnt in fewer iterations.
        seed: the random seed; each split has its own stream, so changing the number of
            training images does not change the validation images.
    """
    image_size: int = 256
    splits: Dict[str, int] = field(default_factory=lambda: {'train': 400, 'val': 60})
    min_objects: int = 1
    max_objects: int = 4
    min_size: float = 0.14
    max_size: float = 0.40
    colour_by_class: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not (isinstance(self.image_size, int) and self.image_size >= 32):
            problems.append(f'image_size must be an integer >= 32, got {self.image_size!r}')
        if not self.splits or not all(isinstance(n, int) and n > 0 for n in self.splits.values()):
            problems.append(f'splits must map split names to positive image counts, got {self.splits!r}')
        if not 0 <= self.min_objects <= self.max_objects:
            problems.append(f'need 0 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}')
        if not 0 < self.min_size <= self.max_size <= 0.9:
            problems.append(f'need 0 < min_size <= max_size <= 0.9, got {self.min_size}, {self.max_size}')
        if problems:
            raise ValueError('invalid synthetic dataset settings: ' + '; '.join(problems))

    def to_dict(self) -> dict:
        return dict(asdict(self), format_version=FORMAT_VERSION, classes=list(SHAPE_CLASSES))


def ann_file_name(split: str) -> str:
    """Annotation file of ``split``, relative to the dataset root."""
    return f'annotations/instances_{split}.json'


# ---------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------

def _shape_polygon(name: str, cx: float, cy: float, size: float, angle: float) -> np.ndarray:
    """Vertices (N, 2) of a shape whose bounding circle has diameter ``size``."""
    r = size / 2
    if name == 'circle':
        t = np.linspace(0, 2 * math.pi, 32, endpoint=False)
        radii = np.full_like(t, r)
    elif name == 'triangle':
        t = angle + np.arange(3) * 2 * math.pi / 3
        radii = np.full_like(t, r)
    elif name == 'square':
        t = angle + math.pi / 4 + np.arange(4) * math.pi / 2
        radii = np.full_like(t, r)
    elif name == 'star':
        t = angle + np.arange(10) * math.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
    else:
        raise ValueError(f'unknown shape {name!r}; known shapes: {SHAPE_CLASSES}')
    return np.stack([cx + radii * np.cos(t), cy + radii * np.sin(t)], axis=1)


#: Hue (degrees) of each category when ``colour_by_class`` is set.
CLASS_HUES = (0, 120, 230, 55)


def _random_colour(rng: np.random.Generator, saturation: Tuple[float, float],
                   value: Tuple[float, float], hue: Optional[float] = None) -> np.ndarray:
    """A random colour (BGR, float 0-255) drawn in HSV space (``hue`` in degrees, else random)."""
    hue = rng.uniform(0, 360) if hue is None else hue % 360
    hsv = np.array([[[hue / 2, rng.uniform(*saturation) * 255, rng.uniform(*value) * 255]]],
                   dtype=np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A textured background: smooth colour blobs, stripes and grain, in muted colours."""
    coarse = rng.uniform(0, 1, (rng.integers(3, 8), rng.integers(3, 8), 3)).astype(np.float32)
    img = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    base = _random_colour(rng, (0.0, 0.35), (0.3, 0.8))
    img = base + (img - 0.5) * rng.uniform(40, 110)
    if rng.random() < 0.6:  # stripes, so that edges alone do not give the objects away
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        theta = rng.uniform(0, math.pi)
        period = rng.uniform(6, 24)
        wave = np.sin((xx * math.cos(theta) + yy * math.sin(theta)) * 2 * math.pi / period)
        img += (wave * rng.uniform(8, 30))[..., None]
    return img


def draw_image(rng: np.random.Generator, settings: ShapesSettings) -> Tuple[np.ndarray, List[dict]]:
    """Draw one image; return it (uint8 BGR, HxWx3) and its objects.

    Each object is ``dict(category=index into SHAPE_CLASSES, polygon=(N, 2) array)``.
    """
    size = settings.image_size
    img = _background(rng, size)
    objects: List[dict] = []
    boxes: List[Tuple[float, float, float, float]] = []
    wanted = int(rng.integers(settings.min_objects, settings.max_objects + 1))
    for _ in range(wanted * 20):  # rejection sampling; crowded images simply get fewer objects
        if len(objects) == wanted:
            break
        category = int(rng.integers(len(SHAPE_CLASSES)))
        diameter = rng.uniform(settings.min_size, settings.max_size) * size
        cx, cy = rng.uniform(diameter / 2 + 1, size - diameter / 2 - 1, 2)
        poly = _shape_polygon(SHAPE_CLASSES[category], cx, cy, diameter, rng.uniform(0, 2 * math.pi))
        x0, y0 = poly.min(0)
        x1, y1 = poly.max(0)
        margin = 3  # keep objects apart: every polygon stays the exact visible region
        if any(x0 < bx1 + margin and bx0 < x1 + margin and y0 < by1 + margin and by0 < y1 + margin
               for bx0, by0, bx1, by1 in boxes):
            continue
        boxes.append((x0, y0, x1, y1))
        objects.append(dict(category=category, polygon=poly))
        hue = CLASS_HUES[category] + rng.uniform(-20, 20) if settings.colour_by_class else None
        colour = _random_colour(rng, (0.55, 1.0), (0.55, 1.0), hue)
        mask = np.zeros((size, size), np.float32)
        # 4 bits of sub-pixel precision and anti-aliasing: the drawn edge follows the polygon.
        cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=4)
        # Light shading across the object, so that it is not one flat colour.
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        shade = 1 + 0.25 * ((xx - cx) * rng.uniform(-1, 1) + (yy - cy) * rng.uniform(-1, 1)) / diameter
        fill = colour[None, None, :] * shade[..., None]
        img = img * (1 - mask[..., None]) + fill * mask[..., None]
    img += rng.normal(0, rng.uniform(3, 12), img.shape).astype(np.float32)  # sensor grain
    return np.clip(img, 0, 255).astype(np.uint8), objects


def _polygon_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


# ---------------------------------------------------------------------------------------
# Writing the dataset
# ---------------------------------------------------------------------------------------

def _progress(message: str) -> None:
    print(f'[shapes dataset] {message}', file=sys.stderr, flush=True)


def _write_split(root: str, split: str, count: int, settings: ShapesSettings) -> None:
    # One random stream per split: the val images do not depend on how many train images there are.
    split_seed = [settings.seed, sum(map(ord, split)), len(split)]
    rng = np.random.default_rng(split_seed)
    os.makedirs(osp.join(root, split), exist_ok=True)
    images, annotations = [], []
    step = max(1, -(-count // 4))  # progress at every quarter
    start = time.monotonic()
    for index in range(count):
        img, objects = draw_image(rng, settings)
        file_name = f'{index:06d}.png'
        if not cv2.imwrite(osp.join(root, split, file_name), img, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise OSError(f'could not write {osp.join(root, split, file_name)}')
        image_id = index + 1
        images.append(dict(id=image_id, file_name=file_name, width=settings.image_size,
                           height=settings.image_size))
        for obj in objects:
            poly = obj['polygon']
            x0, y0 = poly.min(0)
            x1, y1 = poly.max(0)
            annotations.append(dict(
                id=len(annotations) + 1, image_id=image_id, category_id=obj['category'] + 1,
                bbox=[round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2), round(float(y1 - y0), 2)],
                area=round(_polygon_area(poly), 2),
                segmentation=[[round(float(v), 2) for v in poly.reshape(-1)]],
                iscrowd=0))
        if (index + 1) % step == 0 or index + 1 == count:
            _progress(f'{split}: {index + 1}/{count} images ({time.monotonic() - start:.1f}s)')
    coco = dict(
        info=dict(description='Synthetic shapes (rexnet_mmdet.datasets.synthetic)', version=str(FORMAT_VERSION)),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=[dict(id=i + 1, name=name, supercategory='shape') for i, name in enumerate(SHAPE_CLASSES)])
    with open(osp.join(root, ann_file_name(split)), 'w') as f:
        json.dump(coco, f)


def _read_stamp(root: str) -> Optional[dict]:
    try:
        with open(osp.join(root, STAMP_FILE)) as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def is_complete(root: str, settings: Optional[ShapesSettings] = None) -> bool:
    """Whether ``root`` holds a finished dataset (made with ``settings``, if given)."""
    stamp = _read_stamp(root)
    return stamp is not None and (settings is None or stamp == settings.to_dict())


def _other_settings_error(root: str, stamp: dict, settings: ShapesSettings) -> FileExistsError:
    wanted = settings.to_dict()
    differences = [f'{key} {stamp.get(key)!r} there, {value!r} wanted' for key, value in wanted.items()
                   if stamp.get(key) != value]
    return FileExistsError(
        f'{root} holds a synthetic shapes dataset made with other settings ({"; ".join(differences)}); '
        f'refusing to replace it. Keep it by moving it away (mv {root} {root}_mine) or by pointing the config '
        f'at another folder; or delete it to have it made with these settings')


def generate_shapes_dataset(root: str, settings: Optional[ShapesSettings] = None,
                            overwrite: bool = False) -> str:
    """Make the dataset under ``root`` unless it is already there; return ``root``.

    Safe to call from several processes at once (e.g. every rank of a distributed run):
    one makes it while the others wait on a lock, and the dataset appears under ``root``
    only when complete (it is written beside it and renamed into place).

    A folder at ``root`` that this function did not make is never deleted. One it made with
    other settings (say by ``tools/misc/make_synthetic_dataset.py`` with other options) is
    refused with a ``FileExistsError`` that names the differences, unless ``overwrite``.
    """
    settings = settings or ShapesSettings()
    root = osp.abspath(root)
    if not overwrite and is_complete(root, settings):
        return root
    parent = osp.dirname(root)
    os.makedirs(parent, exist_ok=True)
    with open(osp.join(parent, f'.{osp.basename(root)}.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not overwrite and is_complete(root, settings):
            return root  # another process made it while we waited
        if osp.exists(root) and not osp.exists(osp.join(root, STAMP_FILE)):
            raise FileExistsError(
                f'{root} exists but is not a synthetic shapes dataset (no {STAMP_FILE} in it); '
                f'refusing to overwrite it. Move it away or choose another data_root.')
        stamp = _read_stamp(root)
        if stamp is not None and not overwrite:
            raise _other_settings_error(root, stamp, settings)
        total = sum(settings.splits.values())
        _progress(f'making {total} images of {settings.image_size}x{settings.image_size} px in {root} '
                  f'(splits {settings.splits}, seed {settings.seed})')
        staging = tempfile.mkdtemp(prefix=osp.basename(root) + '.partial-', dir=parent)
        try:
            os.makedirs(osp.join(staging, 'annotations'))
            for split, count in settings.splits.items():
                _write_split(staging, split, count, settings)
            with open(osp.join(staging, STAMP_FILE), 'w') as f:
                json.dump(settings.to_dict(), f, indent=1)
            if osp.exists(root):  # made by us, asked to be made again (overwrite)
                shutil.rmtree(root)
            os.rename(staging, root)
        finally:
            if osp.exists(staging):
                shutil.rmtree(staging, ignore_errors=True)
        _progress(f'done: {root}')
    return root


def settings_from_config(config: Optional[dict]) -> ShapesSettings:
    """``ShapesSettings`` from a config dict (unknown keys are an error, to catch typos)."""
    config = dict(config or {})
    known = set(ShapesSettings.__dataclass_fields__)
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f'unknown synthetic dataset settings {unknown}; known: {sorted(known)}')
    if 'splits' in config:
        config['splits'] = dict(config['splits'])
    return ShapesSettings(**config)
