import os.path as osp
import runpy

from setuptools import find_packages, setup

# The supported ranges have one home, in the package; that module needs only the standard library, so it is
# run here without importing the package (whose import checks the environment).
ENVIRONMENT = runpy.run_path(osp.join(osp.dirname(osp.abspath(__file__)), 'rexnet_mmdet', 'utils', 'environment.py'))

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
    python_requires=ENVIRONMENT['PYTHON_REQUIRES'],
    install_requires=ENVIRONMENT['INSTALL_REQUIRES'],
    extras_require={'tests': ['pytest', 'pycocotools'],
                    'tools': ['matplotlib', 'safetensors', 'onnx', 'onnxruntime', 'openvino']},
    license='Apache-2.0',
)
