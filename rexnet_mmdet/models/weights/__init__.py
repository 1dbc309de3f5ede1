"""Everything about weight files, below the model that loads them."""
from .formats import (CLASSIFIER_PREFIXES, FORMATS, OWN_FORMAT_TAG, PRETRAINED_URLS, CheckpointError,
                      convert_checkpoint, detect_format, download_checkpoint, from_own_format,
                      infer_widen_factor, layer_table, load_backbone_weights, read_state_dict,
                      save_own_format, to_own_format, unwrap_state_dict)

__all__ = ['CLASSIFIER_PREFIXES', 'FORMATS', 'OWN_FORMAT_TAG', 'PRETRAINED_URLS', 'CheckpointError',
           'convert_checkpoint', 'detect_format', 'download_checkpoint', 'from_own_format',
           'infer_widen_factor', 'layer_table', 'load_backbone_weights', 'read_state_dict',
           'save_own_format', 'to_own_format', 'unwrap_state_dict']
