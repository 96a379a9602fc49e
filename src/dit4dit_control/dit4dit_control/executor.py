"""
The action executor's state machine, ROS-free: enable, ramp-in, run, hold, watchdogs, e-stop.

States (the values of ``dit4dit_msgs/ExecutorStatus``; a test keeps them equal): DISABLED ->
``enable`` -> RAMPING_IN (from the measured pose onto the policy over ``ramp_in_s``) -> RUNNING;
HOLDING when nothing valid is left, on ``hold``, or when a watchdog fires (joint states or policy
chunks too old); ESTOP stops every command until ``enable``.

Chunks may command any subset of the executor's joints (an arms-only policy on a robot with
hands): the joints a chunk leaves out hold where they are commanded now (the measured pose before
the first command). A chunk naming a joint the executor does not command is refused, and the
reason stays visible in ``message`` while the executor holds for want of chunks.

Episodes: a START forgets every chunk, refuses chunks observed before it and disables; an end
disables too (no command until the next START: a held pose would drag the next episode). With
``auto_enable`` (simulation, no operator) the executor enables itself at the first joint state
and at the first joint state of each new episode; without it (a robot) only ``enable`` does, after
the operator has seen the new episode's pose. Time (``now``, seconds of the node's clock) is
passed in.
"""

from dataclasses import dataclass
import typing

import numpy as np

from .chunk_executor import Chunk, ChunkExecutor, ExecutorConfig
from .safety import JointLimits, SafetyFilter

DISABLED, RAMPING_IN, RUNNING, HOLDING, ESTOP = range(5)
STATE_NAMES = ('disabled', 'ramping_in', 'running', 'holding', 'estop')
HOLD_REQUESTED = 'hold requested'
NO_CHUNK = 'watchdog: no chunk from the policy'


@dataclass(frozen=True)
class ExecutorSettings:
    """Timing of the state machine (the node's parameters)."""

    control_rate_hz: float = 250.0
    ramp_in_s: float = 2.0
    policy_timeout_s: float = 0.5
    max_observation_age_s: float = 0.25

    def __post_init__(self):
        """Validate."""
        if not 1.0 <= self.control_rate_hz <= 500.0:
            raise ValueError(f'control_rate_hz {self.control_rate_hz} must be in [1, 500]')
        for key in ('ramp_in_s', 'policy_timeout_s', 'max_observation_age_s'):
            value = getattr(self, key)
            if not 0.0 <= value < float('inf') or (key != 'ramp_in_s' and value == 0.0):
                raise ValueError(f'{key} {value} must be finite and > 0 (ramp_in_s >= 0)')


class ExecutorCore:
    """See the module docstring."""

    def __init__(self, limits: JointLimits, settings: ExecutorSettings,
                 chunks: typing.Optional[ExecutorConfig] = None):
        """Build the chunk scheduler and safety filter for ``limits.names``."""
        self.joints = list(limits.names)
        self.index = {name: i for i, name in enumerate(self.joints)}
        self.settings = settings
        self.dt = 1.0 / settings.control_rate_hz
        self.limits = limits
        self.safety = SafetyFilter(limits, self.dt)
        self.chunks = ChunkExecutor(len(self.joints), chunks or ExecutorConfig())
        self.state, self.message = DISABLED, ''
        self.measured: typing.Optional[np.ndarray] = None
        self.measured_stamp: typing.Optional[float] = None
        self.last_chunk_time: typing.Optional[float] = None
        self.ramp_start = self.ramp_from = None
        self.refused_chunks = 0
        self.last_refusal = ''
        self.episode_start: typing.Optional[float] = None  # START awaiting its first joint state
        self.auto_enable = False                           # enable without an operator (sim)
        self._enable_pending = True                        # at the next fresh joint state
        self.transitions: typing.List[str] = []            # log lines, drained by the node

    # -- inputs ------------------------------------------------------------------------------
    def on_joints(self, names, positions, stamp: float, now: float) -> str:
        """Store the measured pose of the executor's joints; return why refused, or ''."""
        lookup = {n: i for i, n in enumerate(names)}
        missing = [j for j in self.joints if j not in lookup]
        if missing:
            return f'joint_states lack {", ".join(missing[:4])}'
        if len(positions) != len(names):
            return f'{len(positions)} positions for {len(names)} joint names'
        q = np.array([positions[lookup[j]] for j in self.joints], dtype=float)
        if not np.all(np.isfinite(q)):
            return 'joint_states contain NaN or inf'
        self.measured, self.measured_stamp = q, now
        if self.episode_start is not None:
            if stamp < self.episode_start:
                return ''                   # still the previous episode's pose
            self.episode_start = None
            self._enable_pending = True
        if self.auto_enable and self._enable_pending and self.state == DISABLED:
            self._enable_pending = False
            self.enable(now)
        return ''

    def on_chunk(self, names, positions, stamp: float, dt: float, now: float) -> str:
        """
        Submit a chunk whose columns are ``names`` (a subset of the executor's joints).

        Return the scheduler's line; refusals start with 'refused' and are counted.
        """
        try:
            chunk = Chunk(stamp=stamp, dt=dt, positions=self._full_width(names, positions))
        except ValueError as exc:
            return self.refuse(str(exc))
        line = self.chunks.submit(chunk, now)
        if line.startswith('refused'):
            self.refused_chunks += 1
            self.last_refusal = line.split(': ', 1)[-1]
            return line
        self.last_chunk_time, self.last_refusal = now, ''
        return line

    def _full_width(self, names, positions) -> np.ndarray:
        """Return [H, n_joints]: the chunk's columns in place, the others held."""
        unknown = [n for n in names if n not in self.index]
        if unknown:
            raise ValueError(f'chunk commands joints the executor does not: '
                             f'{", ".join(unknown[:4])}')
        if len(set(names)) != len(names):
            raise ValueError('chunk names a joint twice')
        positions = np.asarray(positions, dtype=float)
        if positions.ndim != 2 or positions.shape[1] != len(names) or positions.shape[0] < 1:
            raise ValueError(f'chunk positions {positions.shape} do not fit {len(names)} joints')
        held = self._held_pose()
        if held is None and len(names) < len(self.joints):
            raise ValueError('chunk leaves joints out and there is no pose to hold them at yet')
        full = np.empty((positions.shape[0], len(self.joints)))
        if held is not None:
            full[:] = held
        full[:, [self.index[n] for n in names]] = positions
        return full

    def _held_pose(self) -> typing.Optional[np.ndarray]:
        if self.state not in (DISABLED, ESTOP) and self.safety.command is not None:
            return self.safety.command
        return self.measured

    def refuse(self, reason: str) -> str:
        """Count a refused chunk and remember why; return the log line."""
        self.refused_chunks += 1
        self.last_refusal = reason
        return f'refused: {reason}'

    def episode_started(self, start: float, index: int):
        """Forget chunks; refuse older ones; re-enable on the first joint state at/after start."""
        self.chunks.reset(not_before=start)
        self.last_chunk_time = None
        self.episode_start = start
        self._set(DISABLED, f'episode {index} starting')

    def episode_ended(self, index: int):
        """Publish nothing until the next START (a held pose would drag the next episode)."""
        if self.state != ESTOP:
            self._set(DISABLED, f'episode {index} ended')

    # -- services ----------------------------------------------------------------------------
    def enable(self, now: float) -> str:
        """Start ramping in from the measured pose; return a message (RuntimeError if not)."""
        if self.measured is None:
            raise RuntimeError('no joint states yet')
        self.safety.reset(self.measured)
        self.ramp_start, self.ramp_from = now, self.safety.command.copy()
        self._set(RAMPING_IN, '')
        return f'ramping in over {self.settings.ramp_in_s:.1f} s'

    def hold(self) -> str:
        """Hold the current command (RuntimeError when not enabled)."""
        if self.state in (DISABLED, ESTOP):
            raise RuntimeError('not enabled')
        self._set(HOLDING, HOLD_REQUESTED)
        return 'holding'

    def estop(self) -> str:
        """Stop every command until ``enable``."""
        self._set(ESTOP, 'e-stop')
        return 'e-stop: commands stopped'

    def _set(self, state: int, message: str):
        if state != self.state:
            self.transitions.append(
                f'state {STATE_NAMES[self.state]} -> {STATE_NAMES[state]} {message}'.strip())
        self.state, self.message = state, message

    # -- control loop ------------------------------------------------------------------------
    def tick(self, now: float) -> typing.Optional[np.ndarray]:
        """Return this period's command (None: publish nothing)."""
        if self.state in (DISABLED, ESTOP):
            return None
        reason = self._watchdog(now)
        target = None if reason else self.chunks.target(now)
        if self.state == RAMPING_IN and not reason:
            ramp = max(self.settings.ramp_in_s, 1e-6)
            alpha = min(1.0, (now - self.ramp_start) / ramp)
            goal = target if target is not None else self.ramp_from
            target = (1 - alpha) * self.ramp_from + alpha * goal
            if alpha >= 1.0:
                self._set(RUNNING, '')
        elif reason:
            self._set(HOLDING, reason)
        elif self.state == HOLDING and self.message == HOLD_REQUESTED:
            target = None
        elif target is None:
            self._set(HOLDING, 'no valid action left')
        else:
            self._set(RUNNING, '')
        return self.safety.apply(target if target is not None else self.safety.command)

    def _watchdog(self, now: float) -> str:
        if self.measured_stamp is None or \
                now - self.measured_stamp > self.settings.max_observation_age_s:
            return 'watchdog: joint states too old'
        if self.last_chunk_time is None:
            # Ramping in may start before the first chunk (it blends toward the measured pose).
            return '' if self.state == RAMPING_IN else self._no_chunk()
        if now - self.last_chunk_time > self.settings.policy_timeout_s:
            return self._no_chunk()           # in every state, ramp-in included
        return ''

    def _no_chunk(self) -> str:
        if self.last_refusal:
            return f'{NO_CHUNK} (last chunk refused: {self.last_refusal})'
        return NO_CHUNK

    def chunk_age(self, now: float) -> typing.Optional[float]:
        """Return the time since the last accepted chunk, or None."""
        return None if self.last_chunk_time is None else now - self.last_chunk_time
