"""Images for an ImageNet-trained backbone: which files are images, and how a picture becomes its input.

Two ways to reach the input size, chosen by the caller (``crop``):

- ``crop=True``: the ImageNet evaluation protocol, shorter side resized to ``size * 8 / 7`` and a centre
  crop of ``size``; what BatchNorm statistics estimated on ImageNet saw (width transfer's calibration);
- ``crop=False``: the whole picture resized to ``size x size``, the aspect ratio not kept (the
  feature-rank study, which pools the whole picture).

Either way BGR becomes RGB and each channel is normalised with :mod:`.imagenet`'s mean and std.
OpenCV is imported when an image is read.
"""
import os
import os.path as osp
from typing import List, Optional, Sequence

import numpy as np
import torch

from .imagenet import IMAGENET_MEAN, IMAGENET_STD

#: File endings read as images (lower case) wherever a folder of images is given.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')


def image_files(folder: str) -> List[str]:
    """The paths of the images in ``folder`` (by :data:`IMAGE_EXTENSIONS`), sorted by name."""
    return [osp.join(folder, n) for n in sorted(os.listdir(folder)) if n.lower().endswith(IMAGE_EXTENSIONS)]


def imagenet_input(image_bgr: np.ndarray, size: int = 224, crop: bool = True) -> torch.Tensor:
    """A uint8 BGR image as a ``(3, size, size)`` ImageNet-normalised RGB tensor (``crop``: see above)."""
    import cv2
    if crop:
        h, w = image_bgr.shape[:2]
        scale = size * 8 / 7 / min(h, w)
        resized = cv2.resize(image_bgr, (max(size, round(w * scale)), max(size, round(h * scale))),
                             interpolation=cv2.INTER_LINEAR)
        top, left = (resized.shape[0] - size) // 2, (resized.shape[1] - size) // 2
        image = resized[top:top + size, left:left + size]
    else:
        image = cv2.resize(image_bgr, (size, size), interpolation=cv2.INTER_LINEAR)
    rgb = image[..., ::-1].astype(np.float32)
    rgb = (rgb - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))


def load_image_folder(folder: str, size: int = 224, limit: Optional[int] = None, crop: bool = True,
                      skip_unreadable: bool = False) -> torch.Tensor:
    """The first ``limit`` images of ``folder`` (sorted by name; all without ``limit``) as an
    ``(N, 3, size, size)`` batch (``crop``: see above). A file OpenCV cannot read is skipped with
    ``skip_unreadable`` (the next one takes its place), else refused with a ``ValueError``. The
    batch may be empty: the caller says how many it needs."""
    import cv2
    images: List[torch.Tensor] = []
    for path in image_files(folder):
        if limit is not None and len(images) == limit:
            break
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            if skip_unreadable:
                continue
            raise ValueError(f'could not read image {path}')
        images.append(imagenet_input(image, size, crop))
    return torch.stack(images) if images else torch.empty(0, 3, size, size)


def imagenet_batch(images_bgr: Sequence[np.ndarray], size: int = 224, crop: bool = True) -> torch.Tensor:
    """Pictures in memory (uint8 BGR) as an ``(N, 3, size, size)`` batch (``crop``: see above)."""
    return torch.stack([imagenet_input(image, size, crop) for image in images_bgr])


__all__ = ['IMAGE_EXTENSIONS', 'image_files', 'imagenet_input', 'imagenet_batch', 'load_image_folder']
