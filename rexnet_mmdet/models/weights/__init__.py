"""Everything about weight files: the one safe loader for every source, the ImageNet key formats, the
families and widths checkpoints are made for, loading into a backbone, conversion and width transfer."""
from .convert import convert_checkpoint
from .families import CheckpointFamily, infer_family, infer_widen_factor
from .formats import CLASSIFIER_PREFIXES, FORMATS, detect_format, from_own_format, layer_table, to_own_format
from .pretrained import PRETRAINED_URLS, load_backbone_weights
from .safe_load import CHECKPOINT_GLOBALS, download_checkpoint, is_url, load_checkpoint, load_checkpoint_file
from .weight_files import OWN_FORMAT_TAG, read_state_dict, save_own_format, unwrap_state_dict

__all__ = [
    'CLASSIFIER_PREFIXES', 'CheckpointFamily', 'infer_family',
    'FORMATS', 'OWN_FORMAT_TAG', 'PRETRAINED_URLS', 'convert_checkpoint', 'detect_format', 'from_own_format',
    'infer_widen_factor', 'layer_table', 'load_backbone_weights', 'read_state_dict', 'save_own_format',
    'to_own_format', 'unwrap_state_dict', 'CHECKPOINT_GLOBALS', 'download_checkpoint', 'is_url', 'load_checkpoint',
    'load_checkpoint_file'
]
