"""The paper's published numbers, in one place, for the analysis tools and tests to compare against.

Sources: "Rethinking Channel Dimensions for Efficient Model Design" (CVPR 2021), Table 5
(ImageNet), Tables 6, 7 and 9 (COCO) and the official README. FLOPs follow the paper's
convention: one multiply-add counts as one FLOP.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple


@dataclass(frozen=True)
class PaperDetector:
    """One detector row of the paper.

    Attributes:
        detector, backbone: names as the paper prints them.
        input_size: ``(width, height)`` the paper's FLOPs refer to.
        params_m: parameters, millions.
        gflops: GFLOPs (multiply-adds) at ``input_size``.
        box_ap, mask_ap: COCO AP (val2017 unless ``note`` says otherwise).
        widen_factor: ReXNet width, ``None`` for the ResNet-50 reference.
        flops_input_size: ``(width, height)`` at which a count reproduces ``gflops``. For the
            R-CNNs this is 1280x800, not the 1200x800 the paper states: counted from the image
            tensor to the heads' outputs (1000 proposals), this project's configs give 122.9 /
            124.0 / 153.7 GFLOPs at 1280x800 (paper 123.0 / 124.1 / 153.8) but 117.5 / 118.5 /
            146.8 at 1216x800 (1200x800 padded to a multiple of 32). 1280x800 is the default input
            of MMDetection 2.x's ``get_flops.py``. (MMDetection 3.3's own R50 config counts 206.4
            there, 2% over the paper's 202.2.) The paper's Mask R-CNN FLOPs equal its Faster R-CNN
            FLOPs: the mask head is not in them.
    """
    detector: str
    backbone: str
    input_size: Tuple[int, int]
    params_m: float
    gflops: float
    box_ap: float
    mask_ap: Optional[float] = None
    widen_factor: Optional[float] = None
    note: str = ''
    flops_input_size: Optional[Tuple[int, int]] = None

    @property
    def ap_split(self) -> str:
        """The COCO split of ``box_ap``: Table 6 (SSDLite) is on test-dev, Tables 7 and 9 on val2017."""
        return 'test-dev2017' if self.detector == 'SSDLite' else 'val2017'

    @property
    def counted_size(self) -> Tuple[int, int]:
        """Input size whose count reproduces ``gflops``."""
        return self.flops_input_size or self.input_size


#: Detector rows keyed by config name (``configs/<name>.py``); the ResNet-50 row is the paper's
#: reference, with no config of this project.
PAPER_DETECTORS: Dict[str, PaperDetector] = {
    'ssdlite_rexnet_x0.9': PaperDetector('SSDLite', 'ReXNet 0.9', (320, 320), 5.0, 0.88, 24.7,
                                         widen_factor=0.9, note='box AP on test-dev'),
    'ssdlite_rexnet_x1.0': PaperDetector('SSDLite', 'ReXNet 1.0', (320, 320), 5.7, 1.01, 25.3,
                                         widen_factor=1.0),
    'ssdlite_rexnet_x1.3': PaperDetector('SSDLite', 'ReXNet 1.3', (320, 320), 8.4, 1.60, 27.3,
                                         widen_factor=1.3),
    'faster_rcnn_rexnet_x0.9_fpn': PaperDetector('Faster R-CNN + FPN', 'ReXNet 0.9', (1200, 800),
                                                 20.1, 123.0, 38.0, widen_factor=0.9,
                                                 flops_input_size=(1280, 800)),
    'faster_rcnn_rexnet_x1.0_fpn': PaperDetector('Faster R-CNN + FPN', 'ReXNet 1.0', (1200, 800),
                                                 20.7, 124.1, 38.5, widen_factor=1.0,
                                                 flops_input_size=(1280, 800)),
    'faster_rcnn_rexnet_x2.2_fpn': PaperDetector('Faster R-CNN + FPN', 'ReXNet 2.2', (1200, 800),
                                                 33.0, 153.8, 41.5, widen_factor=2.2,
                                                 flops_input_size=(1280, 800)),
    'faster_rcnn_r50_fpn': PaperDetector('Faster R-CNN + FPN', 'ResNet-50', (1200, 800),
                                         41.8, 202.2, 37.6, note='reference, no config here',
                                         flops_input_size=(1280, 800)),
    'mask_rcnn_rexnet_x0.9_fpn': PaperDetector('Mask R-CNN + FPN', 'ReXNet 0.9', (1200, 800),
                                               22.8, 123.0, 38.7, 35.2, widen_factor=0.9,
                                               flops_input_size=(1280, 800)),
    'mask_rcnn_rexnet_x1.0_fpn': PaperDetector('Mask R-CNN + FPN', 'ReXNet 1.0', (1200, 800),
                                               23.3, 124.1, 38.9, 35.4, widen_factor=1.0,
                                               flops_input_size=(1280, 800)),
    'mask_rcnn_rexnet_x2.2_fpn': PaperDetector('Mask R-CNN + FPN', 'ReXNet 2.2', (1200, 800),
                                               35.6, 153.8, 42.0, 37.8, widen_factor=2.2,
                                               flops_input_size=(1280, 800)),
    # References the paper compares against, with no config here: Table 6 (test-dev) and Table 9.
    'ssdlite_mobilenetv2': PaperDetector('SSDLite', 'MobileNetV2', (320, 320), 4.3, 0.79, 22.1,
                                         note='reference, no config here; box AP on test-dev'),
    'mask_rcnn_r50_fpn': PaperDetector('Mask R-CNN + FPN', 'ResNet-50', (1200, 800), 44.2, 206.5, 38.5, 34.6,
                                       note='reference, no config here', flops_input_size=(1280, 800)),
}

#: The nine configs of this project, in table order.
CONFIG_NAMES: Tuple[str, ...] = tuple(k for k in PAPER_DETECTORS if 'rexnet' in k)

#: The paper's COCO tables, by number, as this project's configs. Table 6: SSDLite, box AP on test-dev
#: (COCO's evaluation server). Tables 7 and 9 (val2017) report x0.9 and x2.2; the x1.0 rows come from
#: the official README.
PAPER_TABLES: Dict[str, Tuple[str, ...]] = {
    '6': ('ssdlite_rexnet_x0.9', 'ssdlite_rexnet_x1.0', 'ssdlite_rexnet_x1.3'),
    '7': ('faster_rcnn_rexnet_x0.9_fpn', 'faster_rcnn_rexnet_x1.0_fpn', 'faster_rcnn_rexnet_x2.2_fpn'),
    '9': ('mask_rcnn_rexnet_x0.9_fpn', 'mask_rcnn_rexnet_x1.0_fpn', 'mask_rcnn_rexnet_x2.2_fpn'),
}

#: The paper's non-ReXNet reference detector of each detector family (ResNet-50, MobileNetV2).
PAPER_REFERENCES: Dict[str, str] = {
    'SSDLite': 'ssdlite_mobilenetv2',
    'Faster R-CNN + FPN': 'faster_rcnn_r50_fpn',
    'Mask R-CNN + FPN': 'mask_rcnn_r50_fpn',
}


@dataclass(frozen=True)
class PaperClassifier:
    """ImageNet classifier (224x224) of the paper's Table 5."""
    top1: float
    gflops: float
    params_m: float


#: ImageNet classifiers by width (Table 5 and the official README). No x2.2 model is published.
PAPER_IMAGENET: Dict[float, PaperClassifier] = {
    0.9: PaperClassifier(77.2, 0.35, 4.1),
    1.0: PaperClassifier(77.9, 0.40, 4.8),
    1.3: PaperClassifier(79.5, 0.66, 7.6),
    1.5: PaperClassifier(80.3, 0.88, 9.7),
    2.0: PaperClassifier(81.6, 1.5, 16.0),
    3.0: PaperClassifier(82.8, 3.4, 34.0),
}


def paper_detector(config_name: str) -> Optional[PaperDetector]:
    """The paper's row for a config name (``'faster_rcnn_rexnet_x1.0_fpn'``, with or without ``.py``)."""
    name = config_name[:-3] if config_name.endswith('.py') else config_name
    return PAPER_DETECTORS.get(name)


def paper_classifier(widen_factor: float) -> Optional[PaperClassifier]:
    """The paper's ImageNet row for a width, ``None`` where the paper has none."""
    for w, row in PAPER_IMAGENET.items():
        if abs(w - widen_factor) < 1e-9:
            return row
    return None


#: Exact parameter counts of the official ImageNet classifiers (1000 classes), counted on the
#: official model (timm's count is the same). The paper rounds them (Table 5).
OFFICIAL_CLASSIFIER_PARAMS: Dict[float, int] = {
    0.9: 4_091_257, 1.0: 4_796_873, 1.3: 7_557_091, 1.5: 9_728_593, 2.0: 16_366_620,
    2.2: 19_485_308, 3.0: 34_708_792,
}
