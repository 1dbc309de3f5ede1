"""Trim an unpacked mmcv 2.1.0 source tree to the detection CUDA op set before building it.

    python scripts/mmcv_cuda_ops.py MMCV_SOURCE_DIR

Used by ``scripts/setup.sh --gpu`` with ``MMCV_CUDA_OPS=detection``. The trimmed build compiles the
CUDA kernels of nms, roi_align and the sigmoid focal loss (what Faster/Mask R-CNN, RetinaNet and
SSDLite call on a GPU) instead of mmcv's ~90 kernel files; every other op keeps its CPU kernel and
stops with mmcv's "not compiled with GPU support" on a CUDA tensor. Idempotent (a marker file).
"""
import os.path as osp
import re
import sys

#: The ops whose CUDA kernels the detection build keeps: (kernel file stem, a registered implementation).
DETECTION_OPS = (('nms', 'nms_impl'), ('roi_align', 'roi_align_forward_impl'),
                 ('focal_loss', 'sigmoid_focal_loss_forward_impl'))
#: Sources that call CUDA kernels directly instead of through mmcv's device registry: built CPU-only.
DIRECT_CUDA_CALLERS = ('deform_conv', 'nms_quadri', 'nms_rotated', 'spconv_ops')
MARKER = '.rexnet-mmdet-detection-ops'
_KERNEL_GLOB = "glob.glob('./mmcv/ops/csrc/pytorch/cuda/*.cu') + \\"


def keep_registrations(cudabind: str, implementations) -> str:
    """``cudabind.cpp`` with only the sections that register one of ``implementations``.

    The file is a run of sections, each some declarations followed by its ``REGISTER_DEVICE_IMPL``
    lines; a section is kept whole or dropped whole.
    """
    first_two, body = cudabind.split('\n', 2)[:2], cudabind.split('\n', 2)[2]
    parts = re.split(r'((?:REGISTER_DEVICE_IMPL\([^;]*\);\s*)+)', body)
    sections = [parts[i] + parts[i + 1] for i in range(0, len(parts) - 1, 2)]
    wanted = '|'.join(re.escape(name) for name in implementations)
    kept = [s for s in sections if re.search(rf'REGISTER_DEVICE_IMPL\(({wanted}),', s)]
    if len(kept) != len(implementations):
        raise SystemExit(f'mmcv_cuda_ops: found {len(kept)} of the {len(implementations)} registrations '
                         f'{implementations} in cudabind.cpp: not mmcv 2.1.0\'s source?')
    return '\n'.join(first_two) + '\n' + '\n'.join(kept)


def trim(source: str) -> bool:
    """Trim the mmcv source tree at ``source``; False when it was already trimmed."""
    if osp.exists(osp.join(source, MARKER)):
        return False
    cudabind = osp.join(source, 'mmcv/ops/csrc/pytorch/cuda/cudabind.cpp')
    with open(cudabind) as f:
        text = keep_registrations(f.read(), [impl for _, impl in DETECTION_OPS])
    setup_py = osp.join(source, 'setup.py')
    with open(setup_py) as f:
        setup_text = f.read()
    if _KERNEL_GLOB not in setup_text:
        raise SystemExit('mmcv_cuda_ops: mmcv\'s setup.py does not list its CUDA kernels as expected: '
                         'not mmcv 2.1.0\'s source?')
    kernels = ', '.join(repr(stem) for stem, _ in DETECTION_OPS)
    setup_text = setup_text.replace(
        _KERNEL_GLOB, f"[f'./mmcv/ops/csrc/pytorch/cuda/{{n}}_cuda.cu' for n in ({kernels})] + \\")
    with open(cudabind, 'w') as f:
        f.write(text)
    with open(setup_py, 'w') as f:
        f.write(setup_text)
    for name in DIRECT_CUDA_CALLERS:
        path = osp.join(source, f'mmcv/ops/csrc/pytorch/{name}.cpp')
        with open(path) as f:
            code = f.read()
        with open(path, 'w') as f:
            f.write('#undef MMCV_WITH_CUDA  // detection op set: CPU kernel only\n' + code)
    open(osp.join(source, MARKER), 'w').close()
    return True


if __name__ == '__main__':
    if len(sys.argv) != 2 or not osp.isfile(osp.join(sys.argv[1], 'setup.py')):
        raise SystemExit('usage: python scripts/mmcv_cuda_ops.py MMCV_SOURCE_DIR (an unpacked mmcv 2.1.0 sdist)')
    changed = trim(sys.argv[1])
    print(f'mmcv CUDA kernels: {", ".join(stem for stem, _ in DETECTION_OPS)} only'
          + ('' if changed else ' (already trimmed)'))
