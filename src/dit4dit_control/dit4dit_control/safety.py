"""
Safety filter: the last stage before a joint command leaves the executor.

Whatever it is fed (NaN, inf, huge values), every command it returns lies within the joint's
position limits, moves at most ``max_velocity * dt`` per tick, and changes its per-tick velocity by
at most ``max_acceleration * dt``. A non-finite target holds: the command brakes to rest at the
acceleration limit (a moving command cannot stop in one tick without breaking that limit).

Targets are tracked with velocity feed-forward (a smoothly moving target is followed without lag)
and a discrete braking curve: the largest step from which the command can still stop on the target,
or before a position limit, decelerating by ``max_acceleration * dt`` per tick. The braking curve
towards the limits is applied on every tick, so braking for a limit never needs more than the
acceleration limit, and the position clamp is absolute on top of it.
"""

from dataclasses import dataclass
import math
import typing

import numpy as np

COUNTERS = ('non_finite', 'position_clamped', 'velocity_limited', 'acceleration_limited')


@dataclass(eq=False)
class JointLimits:
    """Per-joint position [rad], velocity [rad/s] and acceleration [rad/s^2] limits, validated."""

    names: typing.List[str]
    lower: np.ndarray
    upper: np.ndarray
    max_velocity: np.ndarray
    max_acceleration: np.ndarray

    def __post_init__(self):
        """Convert the limits to read-only float arrays and validate them."""
        self.names = [str(name) for name in self.names]
        if not self.names:
            raise ValueError('joint limits: no joints')
        for key in ('lower', 'upper', 'max_velocity', 'max_acceleration'):
            setattr(self, key, _joint_array(getattr(self, key), len(self.names), key))
        inverted = [n for n, lo, hi in zip(self.names, self.lower, self.upper) if not lo < hi]
        if inverted:
            raise ValueError(f'joint limits: lower >= upper for {", ".join(inverted)}')
        for key in ('max_velocity', 'max_acceleration'):
            bad = [n for n, v in zip(self.names, getattr(self, key)) if not v > 0]
            if bad:
                raise ValueError(f'joint limits: {key} must be > 0 for {", ".join(bad)}')

    @property
    def size(self) -> int:
        """Return the number of joints."""
        return len(self.names)


def _joint_array(value, size: int, key: str) -> np.ndarray:
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f'joint limits: {key}: {exc}') from exc
    if array.shape != (size,):
        raise ValueError(f'joint limits: {key} has shape {array.shape}, expected ({size},)')
    if not np.all(np.isfinite(array)):
        raise ValueError(f'joint limits: {key} must be finite')
    array.flags.writeable = False
    return array


def stopping_step(distance: np.ndarray, step_change: np.ndarray) -> np.ndarray:
    """
    Return the largest per-tick step from which a command can stop within ``distance``.

    Stopping means the steps s, s - c, s - 2c, ... (c = ``step_change``, the most a step may
    shrink per tick) until zero; their sum must not exceed ``distance``. The result is exact for
    that discrete sequence, so after taking it the next tick's bound is exactly one ``c`` lower:
    following it never asks for more deceleration than allowed.
    """
    x = np.maximum(distance, 0.0) / step_change             # distance in units of c
    m = 0.5 * (np.sqrt(1.0 + 8.0 * x) - 1.0)                  # solves m (m + 1) / 2 = x
    whole = np.maximum(np.ceil(m) - 1.0, 0.0)                 # full multiples of c in the step
    frac = _clip((x - 0.5 * whole * (whole + 1.0)) / (whole + 1.0), 0.0, 1.0)
    return (whole + frac) * step_change


class SafetyFilter:
    """Turn joint targets into commands within position, velocity and acceleration limits."""

    def __init__(self, limits: JointLimits, dt: float):
        """Filter for ``limits`` at control period ``dt`` [s]; call ``reset`` before ``apply``."""
        if not isinstance(limits, JointLimits):
            raise TypeError('limits must be a JointLimits')
        if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not (
                math.isfinite(dt) and dt > 0):
            raise ValueError(f'dt must be a finite number > 0, got {dt!r}')
        self.limits = limits
        self.dt = float(dt)
        self._max_step = limits.max_velocity * self.dt
        self._max_step_change = limits.max_acceleration * self.dt * self.dt
        self._command = None
        self._step = np.zeros(limits.size)
        self._max_step_change3 = np.tile(self._max_step_change, 3)
        self._zero = np.zeros(limits.size)
        self._last_goal = None
        self._counters = dict.fromkeys(COUNTERS, 0)

    @property
    def command(self) -> typing.Optional[np.ndarray]:
        """Return the last command, or None before ``reset``."""
        return None if self._command is None else self._command.copy()

    @property
    def velocity(self) -> np.ndarray:
        """Return the velocity of the last command [rad/s]."""
        return self._step / self.dt

    @property
    def counters(self) -> typing.Dict[str, int]:
        """Return how many ticks hit each limit (or had a non-finite target)."""
        return dict(self._counters)

    def reset(self, measured) -> None:
        """Start from the measured pose (clamped into the limits) at rest."""
        measured = self._vector(measured, 'measured')
        if not np.isfinite(measured).all():
            raise ValueError('measured pose must be finite')
        self._command = _clip(measured, self.limits.lower, self.limits.upper)
        self._step = np.zeros(self.limits.size)
        self._last_goal = None

    def apply(self, target) -> np.ndarray:
        """Return the command for this tick towards ``target`` (ValueError on a wrong length)."""
        if self._command is None:
            raise RuntimeError('reset() the safety filter with the measured pose first')
        target = self._vector(target, 'target')
        lower, upper, q = self.limits.lower, self.limits.upper, self._command
        hits = set()
        if np.isfinite(target).all():
            goal = _clip(target, lower, upper)
            if (goal != target).any():
                hits.add('position_clamped')
            # Follow the goal's own motion (feed-forward) and close the error left from the last
            # tick along the braking curve, so that a goal that stops is not overshot.
            goal_step = self._zero if self._last_goal is None else _clip(
                goal - self._last_goal, -self._max_step, self._max_step)
            residual = goal - q - goal_step
        else:
            hits.add('non_finite')
            goal = None
            goal_step = residual = self._zero             # hold: brake to rest as soon as allowed
        # One braking-curve evaluation: towards the goal, and before each position limit.
        room = stopping_step(np.concatenate((np.abs(residual), upper - q, q - lower)),
                             self._max_step_change3)
        n = self.limits.size
        desired = goal_step + np.sign(residual) * room[:n]
        command = _clip(q + self._limit_step(desired, room[n:2 * n], room[2 * n:], hits),
                        lower, upper)
        self._last_goal = goal
        self._step = command - q
        self._command = command
        for key in hits:                               # counters count ticks, not joints
            self._counters[key] += 1
        return command.copy()

    def _vector(self, value, what: str) -> np.ndarray:
        try:
            vector = np.array(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f'{what}: {exc}') from exc
        if vector.shape != (self.limits.size,):
            raise ValueError(f'{what} has shape {vector.shape}, expected ({self.limits.size},)')
        return vector

    def _limit_step(self, desired, room_up, room_down, hits) -> np.ndarray:
        step = _clip(desired, -self._max_step, self._max_step)
        if (step != desired).any():
            hits.add('velocity_limited')
        limited = _clip(step, self._step - self._max_step_change,
                        self._step + self._max_step_change)
        if (limited != step).any():
            hits.add('acceleration_limited')
        # Braking for a limit wins over everything but the velocity bound; it is always feasible
        # within the acceleration limit because every earlier tick respected the same curve.
        braked = _clip(limited, -room_down, room_up)
        if (braked != limited).any():
            hits.add('position_clamped')
        return _clip(braked, -self._max_step, self._max_step)


def _clip(value, low, high):
    return np.minimum(np.maximum(value, low), high)        # np.clip costs twice as much
