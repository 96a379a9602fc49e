"""
Feature statistics as LeRobot 0.6 keeps them: per episode and for the whole dataset.

Every feature (the standard columns too) gets ``min``, ``max``, ``mean``, ``std``, ``count`` and
the quantiles ``q01``, ``q10``, ``q50``, ``q90``, ``q99``. Per episode they are stored as
``stats/<feature>/<stat>`` columns of ``meta/episodes``; ``meta/stats.json`` aggregates them with
LeRobot's rule (min of mins, max of maxes, count-weighted mean and pooled variance, and
count-weighted means of the episodes' quantiles), so LeRobot's editing tools, which recompute
``stats.json`` from the episode columns, get the same numbers.

Numeric features: exact statistics over every frame of the episode. Videos: per channel in
[0, 1] over every frame of the episode (not a sample), each frame strided down to about 150 px
as LeRobot does for its sample (``downsample``); quantiles are exact on the 8-bit values (one
256-bin histogram per channel); ``count`` is the number of frames, nested as [3, 1, 1].
"""

import typing

import numpy as np

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f'q{int(round(q * 100)):02d}' for q in QUANTILES)
STAT_KEYS = ('min', 'max', 'mean', 'std', 'count') + QUANTILE_KEYS
TARGET_SIDE, DOWNSAMPLE_FROM = 150, 300     # LeRobot's auto_downsample_height_width


def vector_stats(values) -> dict:
    """Return the exact stats of ``values`` [n, d] (or [n]) per component, as numpy arrays."""
    values = np.asarray(values)
    flat = values.reshape(len(values), -1)
    if not len(flat):
        raise ValueError('statistics need at least one frame')
    wide = flat.astype(np.float64)
    stats = {'min': flat.min(axis=0), 'max': flat.max(axis=0), 'mean': wide.mean(axis=0),
             'std': wide.std(axis=0), 'count': np.array([len(flat)])}
    for key, value in zip(QUANTILE_KEYS, np.quantile(wide, QUANTILES, axis=0)):
        stats[key] = value
    return stats


def downsample(image: np.ndarray) -> np.ndarray:
    """Return ``image`` [H, W, C] strided to about 150 px on its long side (>= 300 px only)."""
    height, width = image.shape[:2]
    if max(height, width) < DOWNSAMPLE_FROM:
        return image
    stride = int(max(height, width) / TARGET_SIDE)
    return image[::stride, ::stride]


class ImageStats:
    """Per-channel statistics of uint8 frames in [0, 1], accumulated one frame at a time."""

    def __init__(self, channels: int = 3):
        """Start empty."""
        self.histogram = np.zeros((channels, 256), np.int64)
        self.frames = 0

    def add(self, image: np.ndarray):
        """Count one (H, W, C) uint8 frame."""
        pixels = downsample(image).reshape(-1, self.histogram.shape[0])
        for channel in range(self.histogram.shape[0]):
            self.histogram[channel] += np.bincount(pixels[:, channel], minlength=256)
        self.frames += 1

    def stats(self) -> dict:
        """Return min, max, mean, std and quantiles as [C, 1, 1] arrays, count [1] in frames."""
        if not self.frames:
            raise ValueError('image statistics need at least one frame')
        levels = np.arange(256) / 255.0
        total = self.histogram.sum(axis=1)
        mean = self.histogram @ levels / total
        var = self.histogram @ levels ** 2 / total - mean ** 2
        cumulative = np.cumsum(self.histogram, axis=1)
        seen = np.flatnonzero
        out = {'min': np.array([levels[seen(h)[0]] for h in self.histogram]),
               'max': np.array([levels[seen(h)[-1]] for h in self.histogram]),
               'mean': mean, 'std': np.sqrt(np.maximum(var, 0.0))}
        for key, q in zip(QUANTILE_KEYS, QUANTILES):
            out[key] = np.array([levels[int(np.searchsorted(c, q * c[-1]))]
                                 for c in cumulative])
        out = {k: v.reshape(-1, 1, 1) for k, v in out.items()}
        out['count'] = np.array([self.frames])
        return out


def aggregate(stats_list: typing.Sequence[dict]) -> dict:
    """Return the stats of several samples together (LeRobot's aggregate_feature_stats rule)."""
    stats_list = [s for s in stats_list if s]
    if not stats_list:
        return {}
    counts = np.array([float(np.asarray(s['count']).reshape(-1)[0]) for s in stats_list])
    total = counts.sum()
    means = [np.asarray(s['mean'], np.float64) for s in stats_list]
    weights = [c / total for c in counts]
    mean = sum(w * m for w, m in zip(weights, means))
    var = sum(w * (np.asarray(s['std'], np.float64) ** 2 + (m - mean) ** 2)
              for w, s, m in zip(weights, stats_list, means))
    out = {'min': np.min(np.stack([np.asarray(s['min']) for s in stats_list]), axis=0),
           'max': np.max(np.stack([np.asarray(s['max']) for s in stats_list]), axis=0),
           'mean': mean, 'std': np.sqrt(var), 'count': np.array([int(total)])}
    for key in QUANTILE_KEYS:
        if all(key in s for s in stats_list):
            out[key] = sum(w * np.asarray(s[key], np.float64)
                           for w, s in zip(weights, stats_list))
    return out


def to_json(stats: dict) -> dict:
    """Return ``stats`` as plain lists (for ``stats.json`` and the episode columns)."""
    return {key: np.asarray(value).tolist() for key, value in stats.items()}


def from_json(entry: dict) -> dict:
    """Return a ``stats.json`` entry as numpy arrays (None when it is not a stats entry)."""
    if not {'min', 'max', 'mean', 'std', 'count'} <= set(entry):
        return None
    return {key: np.asarray(value) for key, value in entry.items()
            if key in STAT_KEYS or key.startswith('q')}


def episode_columns(stats_by_feature: typing.Dict[str, dict]) -> dict:
    """Return the ``stats/<feature>/<stat>`` columns of one episode row (LeRobot's layout)."""
    return {f'stats/{feature}/{key}': np.asarray(value).tolist()
            for feature, stats in stats_by_feature.items() for key, value in stats.items()}
