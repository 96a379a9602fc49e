"""
Normalisation of states and actions; it is saved with the weights and travels with them.

- Actions: min-max to [-1, 1] per dimension (dimensions can be exempted, e.g. a gripper already in
  [0, 1]), zero-padded to the model's action width; the padded dimensions are masked out of the
  loss. Un-normalising clips to [-1, 1] first, so no action leaves the range seen in training.
- States: sin and cos of the raw values (no statistics), laid out per key as
  [sin(key), cos(key)] and concatenated, then zero-padded to the model's state width.
"""

from dataclasses import dataclass, field
import json
import typing

import numpy as np


class NormalizationError(ValueError):
    """Statistics are missing, non-finite or do not fit the data or the model."""


@dataclass
class Normalizer:
    """Statistics and layout that turn raw states/actions into model inputs and back."""

    action_min: typing.List[float]
    action_max: typing.List[float]
    action_dim: int                      # model width (padded)
    state_dim: int                       # model width (padded)
    state_keys: typing.List[typing.Tuple[str, int]] = field(default_factory=list)
    action_names: typing.List[str] = field(default_factory=list)
    normalize_mask: typing.List[bool] = field(default_factory=list)  # [] = all normalised

    def __post_init__(self):
        """Validate."""
        n = len(self.action_min)
        if n == 0 or len(self.action_max) != n:
            raise NormalizationError('action_min and action_max must be non-empty, equal length')
        lo, hi = np.asarray(self.action_min, float), np.asarray(self.action_max, float)
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise NormalizationError('action statistics contain NaN or inf')
        if np.any(hi < lo):
            raise NormalizationError('action_max is below action_min for some dimension')
        if n > self.action_dim:
            raise NormalizationError(
                f'{n} action dims do not fit the model width {self.action_dim}')
        if not self.normalize_mask:
            self.normalize_mask = [True] * n
        if len(self.normalize_mask) != n:
            raise NormalizationError('normalize_mask must have one entry per action dim')
        if self.action_names and len(self.action_names) != n:
            raise NormalizationError('action_names must have one entry per action dim')
        self.state_keys = [(str(k), int(s)) for k, s in self.state_keys]
        if 2 * self.raw_state_dim > self.state_dim:
            raise NormalizationError(f'sin/cos of {self.raw_state_dim} state values do not fit '
                                     f'the model width {self.state_dim}')

    @property
    def raw_action_dim(self) -> int:
        """Return the number of real action dimensions."""
        return len(self.action_min)

    @property
    def raw_state_dim(self) -> int:
        """Return the number of raw state values."""
        return sum(size for _, size in self.state_keys)

    @classmethod
    def from_data(cls, actions, state_keys, action_dim, state_dim, normalize_mask=(),
                  action_names=()):
        """Compute action statistics from an [N, raw_action_dim] array."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2 or len(actions) == 0:
            raise NormalizationError(f'expected [N, dims] actions, got shape {actions.shape}')
        if not np.all(np.isfinite(actions)):
            raise NormalizationError('actions contain NaN or inf; clean the dataset first')
        return cls(action_min=actions.min(0).tolist(), action_max=actions.max(0).tolist(),
                   action_dim=action_dim, state_dim=state_dim, state_keys=list(state_keys),
                   normalize_mask=list(normalize_mask), action_names=list(action_names))

    # -- actions -------------------------------------------------------------------------------
    def _arrays(self):
        lo = np.asarray(self.action_min, np.float64)
        span = np.asarray(self.action_max, np.float64) - lo
        mask = np.asarray(self.normalize_mask, bool)
        return lo, span, mask

    def normalize_actions(self, raw) -> np.ndarray:
        """Return [..., action_dim] model actions (padded with zeros) from raw [..., raw dims]."""
        raw = np.asarray(raw, np.float64)
        self._check_last(raw, self.raw_action_dim, 'actions')
        lo, span, mask = self._arrays()
        safe = np.where(span > 0, span, 1.0)
        scaled = np.where(span > 0, 2.0 * (raw - lo) / safe - 1.0, 0.0)
        out = np.where(mask, scaled, raw)
        pad = np.zeros(raw.shape[:-1] + (self.action_dim - self.raw_action_dim,))
        return np.concatenate([out, pad], axis=-1).astype(np.float32)

    def unnormalize_actions(self, model) -> np.ndarray:
        """Return raw [..., raw dims] actions from model outputs, clipped to [-1, 1] first."""
        model = np.clip(np.asarray(model, np.float64)[..., : self.raw_action_dim], -1.0, 1.0)
        lo, span, mask = self._arrays()
        return np.where(mask, (model + 1.0) / 2.0 * span + lo, model)

    def action_mask(self) -> np.ndarray:
        """Return the [action_dim] bool mask of real action dimensions."""
        mask = np.zeros(self.action_dim, bool)
        mask[: self.raw_action_dim] = True
        return mask

    # -- states --------------------------------------------------------------------------------
    def encode_state(self, raw) -> np.ndarray:
        """Return [..., state_dim]: per key [sin, cos], concatenated, zero-padded."""
        raw = np.asarray(raw, np.float64)
        self._check_last(raw, self.raw_state_dim, 'state')
        parts, start = [], 0
        for _, size in self.state_keys:
            chunk = raw[..., start:start + size]
            parts += [np.sin(chunk), np.cos(chunk)]
            start += size
        pad = np.zeros(raw.shape[:-1] + (self.state_dim - 2 * self.raw_state_dim,))
        return np.concatenate(parts + [pad], axis=-1).astype(np.float32)

    @staticmethod
    def _check_last(arr, n, what):
        if arr.shape[-1:] != (n,):
            raise NormalizationError(f'{what} have {arr.shape[-1:]} values per step, expected {n}')
        if not np.all(np.isfinite(arr)):
            raise NormalizationError(f'{what} contain NaN or inf')

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Return plain data."""
        return {
            'action_min': list(map(float, self.action_min)),
            'action_max': list(map(float, self.action_max)),
            'action_dim': self.action_dim, 'state_dim': self.state_dim,
            'state_keys': [[k, s] for k, s in self.state_keys],
            'action_names': list(self.action_names),
            'normalize_mask': list(map(bool, self.normalize_mask)),
        }

    @classmethod
    def from_dict(cls, data: dict) -> 'Normalizer':
        """Build from plain data, refusing missing or unknown keys."""
        expected = set(cls.__dataclass_fields__)
        if set(data) != expected:
            raise NormalizationError(
                f'normalisation statistics: missing {sorted(expected - set(data))}, '
                f'unknown {sorted(set(data) - expected)}')
        return cls(**data)

    def dumps(self) -> str:
        """Return JSON text."""
        return json.dumps(self.to_dict(), indent=2) + '\n'


def identity_normalizer(action_dim, state_dim, raw_action_dim, raw_state_dim) -> Normalizer:
    """Return statistics that map [-1, 1] to itself (synthetic data and tests)."""
    return Normalizer(action_min=[-1.0] * raw_action_dim, action_max=[1.0] * raw_action_dim,
                      action_dim=action_dim, state_dim=state_dim,
                      state_keys=[('state', raw_state_dim)])
