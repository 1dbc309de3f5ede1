"""Everything about weight files: the one safe loader for every source, and the ImageNet key formats."""
from .formats import (CLASSIFIER_PREFIXES, FORMATS, CheckpointFamily, infer_family, OWN_FORMAT_TAG, PRETRAINED_URLS, convert_checkpoint, detect_format, from_own_format,
                      infer_widen_factor, layer_table, load_backbone_weights, read_state_dict, save_own_format,
                      to_own_format, unwrap_state_dict)
from .safe_load import CHECKPOINT_GLOBALS, download_checkpoint, is_url, load_checkpoint, load_checkpoint_file

__all__ = [
    'CLASSIFIER_PREFIXES', 'CheckpointFamily', 'infer_family',
    'FORMATS', 'OWN_FORMAT_TAG', 'PRETRAINED_URLS', 'convert_checkpoint', 'detect_format', 'from_own_format',
    'infer_widen_factor', 'layer_table', 'load_backbone_weights', 'read_state_dict', 'save_own_format',
    'to_own_format', 'unwrap_state_dict', 'CHECKPOINT_GLOBALS', 'download_checkpoint', 'is_url', 'load_checkpoint', 'load_checkpoint_file'
]
