"""
The DiT4DiT model, ROS-free: configuration, video DiT feature tap, action DiT, training losses.

Typical use::

    from dit4dit_policy.model import DiT4DiT, preset, save_checkpoint, load_checkpoint
    model = DiT4DiT(preset('tiny'))
"""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint, verify_checkpoint
from .config import ConfigError, DiT4DiTConfig, preset, PRESETS
from .dit4dit import DiT4DiT, to_model_frames
from .normalization import identity_normalizer, NormalizationError, Normalizer

__all__ = [
    'CheckpointError', 'ConfigError', 'DiT4DiT', 'DiT4DiTConfig', 'identity_normalizer',
    'load_checkpoint', 'NormalizationError', 'Normalizer', 'preset', 'PRESETS',
    'save_checkpoint', 'to_model_frames', 'verify_checkpoint',
]
