"""
Chunk executor: turns late, stamped action chunks into the joint target for "now".

A chunk computed from the observation at ``stamp`` holds action ``k`` for ``stamp + k * dt``. It
arrives after the inference latency, so its first actions are already in the past. The executor
indexes every chunk by time, never by arrival: the target for ``now`` is interpolated between the
two actions around ``now``. A new chunk therefore continues from where the motion is (no jump back
to its first action), and a chunk that has run out yields None: the caller holds, nothing stale is
replayed. Stale, out-of-order, future-stamped and malformed chunks are refused with a log line.

Transitions between chunks are strategies picked by name from ``STRATEGIES``: ``replace`` switches
at once; ``crossfade`` blends from the old trajectory to the new one over ``crossfade_s``; ``rtc``
(real-time chunking) switches with a blend of at most one action period, the policy having
conditioned the new chunk on ``executing_prefix``, the actions executed while it was computed.

ROS-free, numpy only: the ``action_executor`` node wraps it.
"""

from dataclasses import dataclass
import math
import typing

import numpy as np

_MAX_BLENDS = 4          # nested blends kept; deeper ones are finished early (chunk flood)
_EPS = 1e-9              # tolerance on "which action is due", against float rounding of times


def _finite(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f'{what} must be a number, got {value!r}')
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f'{what} must be finite, got {value}')
    return value


@dataclass(eq=False)
class Chunk:
    """Actions ``positions[k]`` [H, n] meant for times ``stamp + k * dt``."""

    stamp: float            # observation time [s] the chunk was computed from
    dt: float               # period between actions [s]
    positions: np.ndarray   # [H, n]; rows with NaN/inf are kept and count as missing actions
    index: int = 0          # chunk counter from the policy

    def __post_init__(self):
        """Validate; keep a read-only float copy of ``positions``."""
        self.stamp = _finite(self.stamp, 'stamp')
        self.dt = _finite(self.dt, 'dt')
        if self.dt <= 0:
            raise ValueError(f'dt must be > 0, got {self.dt}')
        try:
            positions = np.array(self.positions, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f'positions: {exc}') from exc
        if positions.ndim != 2 or positions.shape[0] < 1 or positions.shape[1] < 1:
            raise ValueError(f'positions must be [H >= 1, n >= 1], got shape {positions.shape}')
        positions.flags.writeable = False
        self.positions = positions
        self.index = int(self.index)
        self._ok = np.all(np.isfinite(positions), axis=1)
        self._valid = np.flatnonzero(self._ok)
        self._last_segment = positions.shape[0] >= 2 and bool(self._ok[-2:].all())

    @property
    def horizon(self) -> int:
        """Return the number of actions H."""
        return self.positions.shape[0]

    @property
    def num_joints(self) -> int:
        """Return the number of joints n."""
        return self.positions.shape[1]

    @property
    def end(self) -> float:
        """Return the time after which the chunk has nothing left (last action + one period)."""
        return self.time_of(self.horizon)

    def time_of(self, k: float) -> float:
        """Return the time action ``k`` is meant for."""
        return self.stamp + k * self.dt

    def valid_from(self, k: int) -> bool:
        """Return whether any finite action has index ``k`` or later."""
        return bool(self._valid.size) and int(self._valid[-1]) >= k

    def sample(self, t: float, interpolate: bool = True) -> typing.Optional[np.ndarray]:
        """
        Return the target at time ``t``, or None where the chunk has no valid action for it.

        Linear between the actions around ``t``, skipping missing ones; over the period after the
        last action, the last segment continues (a held last action would stall the motion while
        the next chunk is on its way); after that, None. With ``interpolate`` off, the action due
        at ``t`` (each action holds for its period).
        """
        u = max((t - self.stamp) / self.dt, 0.0)
        last = self.horizon - 1
        if u > last + 1:
            return None
        k = min(int(math.floor(u + _EPS)), last)
        if not interpolate or abs(u - k) <= _EPS or (k == last and not self._last_segment):
            return self.positions[k].copy() if self._ok[k] else None
        if k == last:                                     # extrapolate over the last period
            lo, hi = last - 1, last
        else:
            i = int(np.searchsorted(self._valid, u))      # first valid action after u
            if i == 0 or i == self._valid.size:
                return None
            lo, hi = self._valid[i - 1], self._valid[i]
        w = (u - lo) / (hi - lo)
        with np.errstate(over='ignore', invalid='ignore'):      # huge actions may extrapolate
            value = (1.0 - w) * self.positions[lo] + w * self.positions[hi]
        return value if np.isfinite(value).all() else None


class Transition:
    """How the executor moves from the running trajectory onto a newly accepted chunk."""

    name = ''

    def blend_s(self, config: 'ExecutorConfig', chunk: Chunk) -> float:
        """Return how long to blend from the old trajectory into ``chunk`` [s]."""
        raise NotImplementedError


class Replace(Transition):
    """Switch to the new chunk at once."""

    name = 'replace'

    def blend_s(self, config, chunk):
        """Return 0: no blend."""
        return 0.0


class Crossfade(Transition):
    """Blend linearly from the old trajectory to the new chunk over ``crossfade_s``."""

    name = 'crossfade'

    def blend_s(self, config, chunk):
        """Return ``config.crossfade_s``."""
        return config.crossfade_s


class RealTimeChunking(Transition):
    """Switch to a chunk inpainted on ``executing_prefix``; absorb the residual in one period."""

    name = 'rtc'

    def blend_s(self, config, chunk):
        """Return one action period of the new chunk."""
        return chunk.dt


STRATEGIES = {cls.name: cls for cls in (Replace, Crossfade, RealTimeChunking)}


def make_strategy(name: str) -> Transition:
    """Return the transition strategy called ``name`` (ValueError listing the valid names)."""
    try:
        return STRATEGIES[name]()
    except (KeyError, TypeError):
        raise ValueError(f'unknown strategy {name!r}; valid: '
                         f'{", ".join(sorted(STRATEGIES))}') from None


@dataclass
class ExecutorConfig:
    """Chunk executor settings, validated."""

    strategy: str = 'crossfade'     # a name in STRATEGIES
    crossfade_s: float = 0.1        # blend duration of 'crossfade' [s]
    max_chunk_age_s: float = 1.0    # refuse chunks whose observation is older on receipt [s]
    interpolate: bool = True        # linear between actions; False: hold each action its period
    max_future_s: float = 0.01      # refuse chunks stamped later than receipt + this [s]

    def __post_init__(self):
        """Validate."""
        make_strategy(self.strategy)
        self.crossfade_s = _finite(self.crossfade_s, 'crossfade_s')
        self.max_chunk_age_s = _finite(self.max_chunk_age_s, 'max_chunk_age_s')
        self.max_future_s = _finite(self.max_future_s, 'max_future_s')
        if self.crossfade_s < 0 or self.max_future_s < 0:
            raise ValueError('crossfade_s and max_future_s must be >= 0')
        if self.max_chunk_age_s <= 0:
            raise ValueError('max_chunk_age_s must be > 0')
        if not isinstance(self.interpolate, bool):
            raise ValueError(f'interpolate must be a bool, got {self.interpolate!r}')


@dataclass(eq=False)
class _Blend:
    old: typing.Union[Chunk, '_Blend']   # the trajectory that was running at ``start``
    new: Chunk
    start: float
    end: float


class Prefix(typing.NamedTuple):
    """Targets the executor will follow: ``positions[k]`` at ``stamp + k * dt``."""

    stamp: float
    dt: float
    positions: np.ndarray


def _evaluate(source, t: float, interpolate: bool) -> typing.Optional[np.ndarray]:
    if isinstance(source, Chunk):
        return source.sample(t, interpolate)
    new = source.new.sample(t, interpolate)
    if new is None or t >= source.end:
        return new
    old = _evaluate(source.old, t, interpolate)
    if old is None:
        return new
    w = max(0.0, (t - source.start) / (source.end - source.start))
    return (1.0 - w) * old + w * new


def _settle(source, now: float, depth: int = 0):
    # Replace finished blends by their chunk so that the nesting stays short.
    if isinstance(source, Chunk):
        return source
    if now >= source.end or depth >= _MAX_BLENDS:
        return source.new
    source.old = _settle(source.old, now, depth + 1)
    return source


class ChunkExecutor:
    """Latency-aware execution of action chunks (see the module docstring)."""

    def __init__(self, num_joints: int, config: typing.Optional[ExecutorConfig] = None):
        """Execute chunks of ``num_joints`` joints with ``config`` (default settings if None)."""
        if isinstance(num_joints, bool) or not isinstance(num_joints, int) or num_joints < 1:
            raise ValueError(f'num_joints must be an int >= 1, got {num_joints!r}')
        self.num_joints = num_joints
        self.config = config if config is not None else ExecutorConfig()
        if not isinstance(self.config, ExecutorConfig):
            raise TypeError('config must be an ExecutorConfig')
        self._transition = make_strategy(self.config.strategy)
        self._trajectory = None       # Chunk, or _Blend of the old trajectory into a new chunk
        self._current = None          # the newest accepted chunk
        self._dropped = 0
        self._refused = 0
        self._not_before = -math.inf   # chunks from observations before this are refused

    def reset(self, not_before: float = -math.inf):
        """Forget every chunk (a new episode); refuse chunks observed before ``not_before``."""
        not_before = float(not_before)
        if math.isnan(not_before):
            raise ValueError('not_before is NaN')
        self._trajectory = self._current = None
        self._not_before = not_before

    @property
    def strategy(self) -> str:
        """Return the transition strategy's name."""
        return self._transition.name

    @property
    def current_index(self) -> int:
        """Return the policy index of the newest accepted chunk (-1 before the first)."""
        return -1 if self._current is None else self._current.index

    @property
    def dropped_actions(self) -> int:
        """Return how many actions of accepted chunks were already past on arrival."""
        return self._dropped

    @property
    def refused_chunks(self) -> int:
        """Return how many chunks were refused."""
        return self._refused

    def submit(self, chunk: Chunk, now: float) -> str:
        """Offer ``chunk`` received at ``now``; return a log line ('accepted/refused ...')."""
        if not isinstance(chunk, Chunk):
            raise TypeError(f'expected a Chunk, got {type(chunk).__name__}')
        now = _finite(now, 'now')
        reason = self._refusal(chunk, now)
        if reason:
            self._refused += 1
            return f'refused chunk {chunk.index}: {reason}'
        past = min(max(int(math.floor((now - chunk.stamp) / chunk.dt + _EPS)), 0), chunk.horizon)
        self._dropped += past
        self._trajectory = self._switch(chunk, now)
        self._current = chunk
        return (f'accepted chunk {chunk.index} ({self.strategy}, {past} of {chunk.horizon} '
                f'actions already past)')

    def target(self, now: float) -> typing.Optional[np.ndarray]:
        """Return the joint target for ``now``, or None: nothing valid to execute, hold."""
        now = _finite(now, 'now')
        if self._trajectory is None:
            return None
        self._trajectory = _settle(self._trajectory, now)
        value = _evaluate(self._trajectory, now, self.config.interpolate)
        if value is None or not np.isfinite(value).all():
            return None
        return value

    def executing_prefix(self, now: float, horizon_s: float) -> Prefix:
        """
        Return the targets the executor will follow from ``now`` over ``horizon_s``.

        Sampled at the current chunk's action period from ``now`` on, as long as there is a
        valid target (empty before the first chunk, with dt 0). Give the policy the inference
        latency as ``horizon_s``: these are the actions its next chunk should be inpainted on.
        """
        now = _finite(now, 'now')
        horizon_s = _finite(horizon_s, 'horizon_s')
        if horizon_s < 0:
            raise ValueError(f'horizon_s must be >= 0, got {horizon_s}')
        rows = []
        if self._current is not None:
            dt = self._current.dt
            for k in range(int(math.floor(horizon_s / dt + _EPS)) + 1):
                value = _evaluate(self._trajectory, now + k * dt, self.config.interpolate)
                if value is None:
                    break
                rows.append(value)
        positions = np.array(rows).reshape(len(rows), self.num_joints)
        return Prefix(now, self._current.dt if self._current is not None else 0.0, positions)

    def _refusal(self, chunk: Chunk, now: float) -> str:
        if chunk.num_joints != self.num_joints:
            return f'wrong joint count ({chunk.num_joints}, expected {self.num_joints})'
        age = now - chunk.stamp
        if -age > self.config.max_future_s:
            return f'stamped {-age:.3f} s in the future (clocks disagree?)'
        if age > self.config.max_chunk_age_s:
            return f'older than {self.config.max_chunk_age_s:.2f} s (age {age:.2f} s)'
        if chunk.stamp < self._not_before:
            return (f'observed {self._not_before - chunk.stamp:.3f} s before the episode '
                    'started')
        if self._current is not None and chunk.stamp <= self._current.stamp:
            return (f'out of order (stamp {chunk.stamp:.3f} <= current chunk '
                    f'{self._current.index} stamp {self._current.stamp:.3f})')
        if now > chunk.end:
            return 'all actions already past'
        if not chunk.valid_from(int(math.floor(max(age, 0.0) / chunk.dt + _EPS))):
            return 'no finite action left'
        return ''

    def _switch(self, chunk: Chunk, now: float):
        old = self._trajectory
        if old is None:
            return chunk
        old = _settle(old, now)
        if _evaluate(old, now, self.config.interpolate) is None:
            return chunk                          # the old trajectory has ended: nothing to blend
        # Finish the blend by the time the old trajectory runs out, so that it never jumps.
        end = min(now + self._transition.blend_s(self.config, chunk), _end(old))
        if end <= now:
            return chunk
        return _Blend(old=old, new=chunk, start=now, end=end)


def _end(source) -> float:
    return source.end if isinstance(source, Chunk) else source.new.end
