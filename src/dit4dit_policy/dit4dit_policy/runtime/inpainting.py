"""
Real-time chunking on the policy side: which actions a new chunk must reproduce, and how firmly.

A chunk computed from the observation at ``t_obs`` reaches the executor about one inference
latency later; until then the executor keeps following the previous chunk. So the new chunk's
actions due before its arrival are already decided: the sampler inpaints them (weight 1) with the
previous chunk's values at the same times, and a few more actions with a weight that falls
linearly to 0, so the new plan bends smoothly away from the old one instead of jumping at the
switch. The executor's ``rtc`` strategy then switches within one action period.

``PrefixPlanner`` keeps the last published chunk and the recent observation-to-publish latencies
and returns the guide (raw actions and weights) for the next query. It plans from the chunk the
policy published, which is what the executor follows unless it clamps a target or holds. ROS-free.

Times are integer nanoseconds, as ROS stamps are: an epoch stamp in float seconds resolves only
~0.2 us, and the guide's fractional index is computed from the difference of two of them.
"""

from dataclasses import dataclass
import math
import typing

import numpy as np

# Index slack when comparing with the previous chunk's last action: stamps are whole nanoseconds,
# so a query "exactly" k periods later lands up to ~1 ns off (3e-8 steps at 30 Hz).
_INDEX_TOLERANCE = 1e-6


@dataclass
class InpaintingConfig:
    """How the guide is built."""

    soft_actions: int = 4          # actions after the frozen prefix with weights falling to 0
    latency_margin_s: float = 0.02  # added to the latency estimate (transport, executor tick)
    latency_window: int = 20       # recent latencies kept; the estimate is their maximum

    def __post_init__(self):
        """Validate."""
        if self.soft_actions < 0:
            raise ValueError(f'soft_actions must be >= 0, got {self.soft_actions}')
        if not (math.isfinite(self.latency_margin_s) and self.latency_margin_s >= 0):
            raise ValueError(f'latency_margin_s must be finite and >= 0, got '
                             f'{self.latency_margin_s}')
        if self.latency_window < 1:
            raise ValueError(f'latency_window must be >= 1, got {self.latency_window}')


@dataclass
class Guide:
    """Raw actions [G, D] for the first G steps of the next chunk, and their weights in [0, 1]."""

    actions: np.ndarray
    weights: np.ndarray

    @property
    def frozen(self) -> int:
        """Return the number of actions with weight 1."""
        return int(np.sum(self.weights >= 1.0))


class PrefixPlanner:
    """Remember published chunks and latencies; build the guide for the next query."""

    def __init__(self, chunk_size: int, config: typing.Optional[InpaintingConfig] = None):
        """Plan guides of at most ``chunk_size`` actions."""
        if chunk_size < 1:
            raise ValueError(f'chunk_size must be >= 1, got {chunk_size}')
        self.chunk_size = int(chunk_size)
        self.config = config or InpaintingConfig()
        # (stamp_ns, dt, actions) of the last chunk, replaced whole: another thread may reset it.
        self._last: typing.Optional[typing.Tuple[int, float, np.ndarray]] = None
        self._latencies: typing.List[float] = []

    def remember(self, stamp_ns: int, dt: float, actions, latency_s: float):
        """Record a published chunk (action k at ``stamp_ns`` + k ``dt`` s) and its latency."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2 or len(actions) < 1 or not np.all(np.isfinite(actions)):
            raise ValueError(f'actions must be a finite [H, D] array, got {actions.shape}')
        if not (math.isfinite(dt) and dt > 0):
            raise ValueError(f'dt must be > 0, got {dt}')
        self._last = (int(stamp_ns), float(dt), actions)
        if math.isfinite(latency_s) and latency_s >= 0:
            self._latencies = (self._latencies + [float(latency_s)])[-self.config.latency_window:]

    def reset(self):
        """Forget the previous chunk (a new task or episode: nothing is being executed)."""
        self._last = None

    @property
    def latency_s(self) -> float:
        """Return the latency estimate: the largest recent one (0 before any)."""
        return max(self._latencies, default=0.0)

    def guide(self, obs_stamp_ns: int) -> typing.Optional[Guide]:
        """
        Return the guide for a chunk computed from the observation at ``obs_stamp_ns``, or None.

        None when no chunk was published, or the previous one ends before the observation. The
        actions due up to the first one at or after observation + latency + margin (the
        expected arrival) get weight 1, the next
        ``soft_actions`` weights falling linearly toward 0; the guide stops where the previous
        chunk ends.
        """
        last = self._last
        if last is None:
            return None
        stamp_ns, dt, actions = last
        horizon = len(actions) - 1
        # The previous chunk's index at the observation; integer difference first (exact).
        first = (int(obs_stamp_ns) - stamp_ns) * 1e-9 / dt
        if first > horizon + _INDEX_TOLERANCE:
            return None
        # Frozen through the first action at or after the expected arrival: the executor's rtc
        # switch blends over the period that follows the arrival.
        frozen = int(math.ceil((self.latency_s + self.config.latency_margin_s) / dt - 1e-9)) + 1
        soft = self.config.soft_actions
        rows, weights = [], []
        for k in range(min(self.chunk_size, frozen + soft)):
            index = first + k
            if index > horizon + _INDEX_TOLERANCE:
                break
            rows.append(_interpolate(actions, max(index, 0.0)))
            weights.append(1.0 if k < frozen else 1.0 - (k - frozen + 1) / (soft + 1))
        return Guide(np.array(rows), np.array(weights))


def _interpolate(actions: np.ndarray, index: float) -> np.ndarray:
    """Return the actions linearly interpolated at fractional ``index``."""
    lo = min(int(math.floor(index)), len(actions) - 1)
    hi = min(lo + 1, len(actions) - 1)
    frac = index - lo
    return (1 - frac) * actions[lo] + frac * actions[hi]
