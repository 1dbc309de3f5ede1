"""How ImageNet-trained ReXNet weights expect an image: RGB, 0-255, normalised per channel with the
ImageNet mean and standard deviation (the values MMDetection's detector configs give their data
preprocessor). The one home of these numbers; torch-free."""
from typing import Tuple

#: ImageNet per-channel mean, RGB order, on the 0-255 scale.
IMAGENET_MEAN: Tuple[float, float, float] = (123.675, 116.28, 103.53)
#: ImageNet per-channel standard deviation, RGB order, on the 0-255 scale.
IMAGENET_STD: Tuple[float, float, float] = (58.395, 57.12, 57.375)

__all__ = ['IMAGENET_MEAN', 'IMAGENET_STD']
