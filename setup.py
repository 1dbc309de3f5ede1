import re

from setuptools import find_packages, setup

# The supported torch range has one home, in the package (read here without importing it).
with open('rexnet_mmdet/utils/torch_version.py', encoding='utf-8') as f:
    TORCH_REQUIREMENT = re.search(r"^TORCH_REQUIREMENT = '([^']+)'", f.read(), re.M).group(1)

setup(
    name='rexnet_mmdet',
    version='0.1.0',
    description='ReXNet backbone and detectors for MMDetection 3.x',
    long_description=(
        'The ReXNet backbones (ReXNet-v1 from "Rethinking Channel Dimensions for Efficient Model Design", '
        "CVPR 2021; ReXNet-lite; ReXNet-R) as an MMDetection 3.x plugin: type='ReXNet' in any detector config, "
        "the paper's SSDLite, Faster R-CNN and Mask R-CNN configs, ImageNet weights in every published format, "
        'and tools to train, evaluate, export and analyse them. '
        'Documentation: README.md and docs/ in the source repository.'),
    long_description_content_type='text/plain',
    packages=find_packages(include=['rexnet_mmdet', 'rexnet_mmdet.*']),
    python_requires='>=3.8',
    install_requires=[TORCH_REQUIREMENT, 'mmcv>=2.0.0rc4,<2.2.0', 'mmengine>=0.7.1,<1.0.0', 'mmdet>=3.0.0,<3.4.0'],
    extras_require={'tests': ['pytest', 'pycocotools'],
                    'tools': ['matplotlib', 'safetensors', 'onnx', 'onnxruntime', 'openvino']},
    license='Apache-2.0',
)
