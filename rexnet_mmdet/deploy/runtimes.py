"""Run an exported SSD / SSDLite graph (:mod:`rexnet_mmdet.deploy.ssdlite_export`) with ONNX Runtime or OpenVINO.

::

    import cv2
    from rexnet_mmdet.deploy.runtimes import Detector

    detector = Detector('ssdlite_rexnet_x1.0.onnx', backend='openvino', threads=2)   # or 'onnxruntime'
    boxes, scores, labels = detector.predict(cv2.imread('street.jpg'))   # BGR, as cv2 reads it
    names = [detector.classes[i] for i in labels] if detector.classes else labels
    # bfloat16 in OpenVINO, on CPUs that have it: faster, scores differ in the third decimal
    fast = Detector('ssdlite_rexnet_x1.0.onnx', backend='openvino', threads=2, precision='bf16')

:meth:`Detector.predict` preprocesses as the config's test pipeline and data preprocessor do
(resize to the graph's input size without keeping the aspect ratio, bilinear; BGR to RGB;
``(x - mean) / std``), with the values the export stored in the file's metadata, and returns
NumPy arrays: boxes ``(N, 4)`` as ``x1, y1, x2, y2`` in the given image's pixels, scores ``(N,)``
and labels ``(N,)``, best first. The graph needs neither PyTorch nor MMDetection; this module uses
only NumPy, OpenCV, onnx (for the metadata) and the runtime.
"""
import json
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .backends import PRECISIONS, RUNTIMES, check_backend

#: The precisions the runtimes compute in (bfloat16 in OpenVINO only), as OpenVINO's hint names them.
OPENVINO_PRECISIONS = {'fp32': 'f32', 'bf16': 'bf16'}
#: Metadata keys the export writes (``metadata_props`` of the ONNX model).
META_KEYS = ('input_size', 'mean', 'std', 'bgr_to_rgb', 'classes')


def _check_precision(precision: str) -> None:
    if precision not in OPENVINO_PRECISIONS:
        raise ValueError(f'precision must be one of {", ".join(OPENVINO_PRECISIONS)} in the runtimes, got '
                         f'{precision!r}' + (' (fp16 runs in PyTorch on CUDA)' if precision in PRECISIONS else ''))


def read_metadata(path: str) -> Dict[str, object]:
    """The preprocessing the export recorded in ``path``: input size ``(H, W)``, mean, std,
    ``bgr_to_rgb`` and class names (``None`` when unknown)."""
    try:
        import onnx
    except ImportError as e:
        raise ImportError('reading an exported model needs onnx: pip install onnx') from e
    props = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    missing = [k for k in META_KEYS if k not in props]
    if missing:
        raise ValueError(f'{path} lacks the metadata {", ".join(missing)}: export it with '
                         f'rexnet_mmdet.deploy.ssdlite_export.export_ssdlite (tools/deployment/ssdlite_onnx.py)')
    return {k: json.loads(props[k]) for k in META_KEYS}


def ort_session(path: str, threads: Optional[int] = None, optimization: str = 'all', sequential: bool = True,
                spinning: bool = True):
    """An ONNX Runtime CPU session: the one place this project makes one.

    Args:
        threads: intra-op threads (default: ONNX Runtime's own choice).
        optimization: graph optimisation level: ``'disable'``, ``'basic'``, ``'extended'`` or ``'all'``.
        sequential: sequential execution (one operator at a time, each using ``threads``).
        spinning: let worker threads spin after a call; off when other work (PyTorch's) needs the
            cores right after it.
    """
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ImportError('ONNX Runtime is not installed: pip install onnxruntime') from e
    levels = {'disable': ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              'basic': ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              'extended': ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              'all': ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    if optimization not in levels:
        raise ValueError(f'optimization must be one of {", ".join(levels)}, got {optimization!r}')
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[optimization]
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL if sequential else ort.ExecutionMode.ORT_PARALLEL
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1 if sequential else int(threads)
    if not spinning:
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def preprocess(image_bgr: np.ndarray, input_size: Sequence[int], mean: Sequence[float], std: Sequence[float],
               bgr_to_rgb: bool) -> Tuple[np.ndarray, np.ndarray]:
    """``image_bgr (H, W, 3)`` uint8 -> a graph's ``input (1, 3, h, w)`` and ``scale_factor (2,)``, with
    the preprocessing its metadata records (:func:`read_metadata`): resized to ``input_size (h, w)``
    without keeping the aspect ratio (bilinear), BGR to RGB when ``bgr_to_rgb``, ``(x - mean) / std``."""
    import cv2

    if image_bgr is None:
        raise ValueError('the image is None, not an (H, W, 3) BGR array: cv2.imread returns None for a file it '
                         'cannot read; check that the path exists and is an image')
    if not isinstance(image_bgr, np.ndarray):
        raise ValueError(f'expected an (H, W, 3) BGR image as a NumPy array (as cv2.imread returns it), got a '
                         f'{type(image_bgr).__name__}')
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f'expected an (H, W, 3) BGR image, got shape {tuple(image_bgr.shape)}')
    h, w = input_size
    resized = cv2.resize(image_bgr, (w, h), interpolation=cv2.INTER_LINEAR)
    if bgr_to_rgb:
        resized = resized[..., ::-1]
    x = (resized.astype(np.float32) - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    scale = np.array([w / image_bgr.shape[1], h / image_bgr.shape[0]], dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), scale


def openvino_has_bf16() -> bool:
    """Whether OpenVINO can compute in bfloat16 natively on this CPU (AVX512_BF16 or AMX)."""
    try:
        import openvino as ov
    except ImportError:
        return False
    return 'BF16' in ov.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES')


def openvino_model(path: str, threads: Optional[int] = None, precision: str = 'fp32', profile: bool = False):
    """An OpenVINO model compiled for the CPU, for latency (one stream), ``threads`` threads.

    ``precision``: ``'fp32'`` (default) computes in float32, PyTorch's numbers to rounding; OpenVINO
    would otherwise pick bfloat16 by itself on CPUs that have it. ``'bf16'`` lets OpenVINO compute
    in bfloat16 wherever it supports it (the convolutions above all): faster, scores and boxes
    differ from float32's in the third decimal; refused on CPUs without native bfloat16, where it
    would be emulated. ``profile`` turns on OpenVINO's per-layer counters (see :func:`openvino_profile`).
    """
    try:
        import openvino as ov
    except ImportError as e:
        raise ImportError('OpenVINO is not installed: pip install openvino') from e
    _check_precision(precision)
    core = ov.Core()
    if precision == 'bf16' and not openvino_has_bf16():
        raise ValueError(f'this CPU has no native bfloat16 (OpenVINO lists '
                         f'{core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")}): use precision fp32')
    config = {'PERFORMANCE_HINT': 'LATENCY', 'INFERENCE_PRECISION_HINT': OPENVINO_PRECISIONS[precision]}
    if profile:
        config['PERF_COUNT'] = True
    if threads:
        config['INFERENCE_NUM_THREADS'] = int(threads)
    return core.compile_model(core.read_model(path), 'CPU', config)


def openvino_profile(path: str, threads: Optional[int] = None, precision: str = 'fp32', calls: int = 20,
                     warmup: int = 5, inputs: Optional[Dict[str, np.ndarray]] = None) -> List[Tuple[str, float]]:
    """Where an exported graph's time goes in OpenVINO: milliseconds per call by layer type
    (``Convolution``, ``GroupConvolution`` for depthwise, ``TopK``, ...), from OpenVINO's own
    per-layer counters (``PERF_COUNT``) over ``calls`` calls, largest first. ``inputs`` by name
    (default: a fixed random ``input``, ``scale_factor`` 1): what passes the score threshold, and so
    the cost of TopK and NMS, depends on them."""
    compiled = openvino_model(path, threads, precision, profile=True)
    request = compiled.create_infer_request()
    if inputs is None:
        inputs = {}
        for port in compiled.inputs:
            shape = tuple(int(d) for d in port.get_partial_shape().to_shape())
            inputs[port.get_any_name()] = np.random.RandomState(0).randn(*shape).astype(np.float32)
        if 'scale_factor' in inputs:
            inputs['scale_factor'] = np.ones_like(inputs['scale_factor'])
    for _ in range(warmup):
        request.infer(inputs)
    totals: Dict[str, float] = {}
    for _ in range(calls):
        request.infer(inputs)
        for info in request.get_profiling_info():
            totals[info.node_type] = totals.get(info.node_type, 0.0) + info.real_time.total_seconds() * 1e3 / calls
    return sorted(totals.items(), key=lambda kv: -kv[1])


class Detector:
    """An exported SSD / SSDLite graph in ONNX Runtime or OpenVINO, with its preprocessing.

    Args:
        path: the ``.onnx`` file written by :func:`rexnet_mmdet.deploy.ssdlite_export.export_ssdlite`.
        backend: ``'onnxruntime'`` (ONNX Runtime) or ``'openvino'`` (:data:`RUNTIMES`).
        threads: CPU threads for the runtime (default: its own choice).
        precision: ``'fp32'`` (default) or ``'bf16'``, OpenVINO only (see :func:`openvino_model`).
    """

    def __init__(self, path: str, backend: str = 'onnxruntime', threads: Optional[int] = None,
                 precision: str = 'fp32'):
        backend = check_backend(backend, RUNTIMES)
        _check_precision(precision)
        if precision != 'fp32' and backend != 'openvino':
            raise ValueError(f"precision {precision!r} needs backend='openvino'; ONNX Runtime computes this "
                             f'graph in float32')
        meta = read_metadata(path)
        self.path = path
        self.backend = backend
        self.precision = precision
        self.input_size: Tuple[int, int] = tuple(int(v) for v in meta['input_size'])
        self.mean = np.asarray(meta['mean'], dtype=np.float32)
        self.std = np.asarray(meta['std'], dtype=np.float32)
        self.bgr_to_rgb = bool(meta['bgr_to_rgb'])
        self.classes: Optional[List[str]] = meta['classes']
        if backend == 'onnxruntime':
            session = ort_session(path, threads)
            names = [o.name for o in session.get_outputs()]

            def run(x: np.ndarray, scale: np.ndarray) -> List[np.ndarray]:
                return session.run(names, {'input': x, 'scale_factor': scale})
        else:
            compiled = openvino_model(path, threads, precision)
            request = compiled.create_infer_request()
            outputs = [compiled.output(name) for name in ('boxes', 'scores', 'labels')]

            def run(x: np.ndarray, scale: np.ndarray) -> List[np.ndarray]:
                result = request.infer({'input': x, 'scale_factor': scale})
                return [np.asarray(result[o]) for o in outputs]
        self._run = run

    def preprocess(self, image_bgr: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """``image_bgr (H, W, 3)`` uint8 -> the graph's ``input (1, 3, h, w)`` and ``scale_factor (2,)``."""
        return preprocess(image_bgr, self.input_size, self.mean, self.std, self.bgr_to_rgb)

    def run(self, x: np.ndarray, scale_factor: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The graph on a preprocessed input: boxes ``(N, 4)``, scores ``(N,)``, labels ``(N,)``."""
        boxes, scores, labels = self._run(np.ascontiguousarray(x, dtype=np.float32),
                                          np.ascontiguousarray(scale_factor, dtype=np.float32))
        return boxes, scores, labels.astype(np.int64)

    def predict(self, image_bgr: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Detections in ``image_bgr (H, W, 3)``, uint8 BGR: boxes ``(N, 4)`` in its pixels, scores, labels."""
        return self.run(*self.preprocess(image_bgr))


def draw_detections(image_bgr: np.ndarray, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                    classes: Optional[Sequence[str]] = None, score_thr: float = 0.3) -> np.ndarray:
    """A copy of ``image_bgr`` with the detections scoring at least ``score_thr`` drawn on it."""
    import cv2

    out = image_bgr.copy()
    thickness = max(1, round(max(out.shape[:2]) / 300))
    for box, score, label in zip(boxes, scores, labels):
        if score < score_thr:
            continue
        # A colour per class, fixed, well apart in hue.
        hue = (int(label) * 47) % 180
        colour = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0].tolist()
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        name = classes[int(label)] if classes and int(label) < len(classes) else str(int(label))
        cv2.putText(out, f'{name} {score:.2f}', (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.35 * thickness, colour, 1, cv2.LINE_AA)
    return out


__all__ = ['RUNTIMES', 'OPENVINO_PRECISIONS', 'META_KEYS', 'Detector', 'read_metadata', 'preprocess', 'ort_session',
           'openvino_model', 'openvino_has_bf16', 'openvino_profile', 'draw_detections']
