"""
Lockstep execution: one action of the current chunk per observation, nothing when none is due.

For simulators that step only once a command answers their last observation (``sim_bridge``
with ``lockstep``), and for commands that are not positions (LIBERO's OSC deltas: repeating or
holding one keeps the arm moving, and nothing measures them). This is how benchmark clients run a
chunked policy: the chunk computed from the observation at ``stamp`` gives action ``k`` to the
observation at ``stamp + k * dt``, open loop; when the chunk is used up, the observation waits
unanswered for the next chunk (computed from that observation), so the simulation waits for the
policy however slow it is, and the result does not depend on the CPU.

A chunk must command every joint (a rate command cannot be "held"), with finite values, stamped
after the current chunk and not before the episode started. An observation is answered at most
once; a chunk arriving for an observation still unanswered answers it at once. Values are clipped
to ``[lower, upper]``. ROS-free, numpy only: the ``lockstep_executor`` node wraps it.
"""

import math
import typing

import numpy as np

_TOLERANCE = 1e-3     # how far from an action's time an observation may be [periods]


class LockstepExecutor:
    """See the module docstring."""

    def __init__(self, joints: typing.Sequence[str], lower=-math.inf, upper=math.inf):
        """Execute chunks over ``joints``; clip every command to ``[lower, upper]``."""
        self.joints = [str(j) for j in joints]
        if not self.joints or len(set(self.joints)) != len(self.joints):
            raise ValueError(f'joints must be non-empty and unique, got {self.joints}')
        self.lower = np.broadcast_to(np.asarray(lower, dtype=float), (len(self.joints),))
        self.upper = np.broadcast_to(np.asarray(upper, dtype=float), (len(self.joints),))
        if np.isnan(self.lower).any() or np.isnan(self.upper).any() or \
                not np.all(self.lower < self.upper):
            raise ValueError('lower must be below upper for every joint')
        self.chunk: typing.Optional[np.ndarray] = None       # [H, n] in ``joints`` order
        self.chunk_stamp = self.chunk_dt = 0.0
        self.not_before = -math.inf
        self.observed: typing.Optional[float] = None         # the newest observation's stamp
        self.answered: typing.Optional[float] = None         # the newest one answered
        self.executed = self.refused = self.clipped = self.chunks = 0
        self.last_refusal = ''

    def episode_started(self, stamp: float):
        """Forget the chunk; refuse chunks observed before ``stamp``."""
        self.chunk, self.not_before = None, float(stamp)
        if self.observed is not None and self.observed < stamp:
            self.observed = self.answered = None
        # else the episode's first observation came before its START (another topic): keep it

    def episode_ended(self):
        """Forget the chunk: nothing of this episode may answer the next one."""
        self.chunk = None

    def on_chunk(self, names, positions, stamp: float, dt: float) -> typing.Optional[np.ndarray]:
        """
        Accept or refuse a chunk (``last_refusal`` says why, ``refused`` counts).

        Return the command for the newest observation if the chunk answers it, else None.
        """
        reason = self._refusal(names, positions, stamp, dt)
        if reason:
            self.refused += 1
            self.last_refusal = reason
            return None
        order = [list(names).index(j) for j in self.joints]
        self.chunk = np.asarray(positions, dtype=float)[:, order]
        self.chunk_stamp, self.chunk_dt = float(stamp), float(dt)
        self.chunks += 1
        self.last_refusal = ''
        if self.observed is not None and self.observed != self.answered:
            return self.on_observation(self.observed)
        return None

    def _refusal(self, names, positions, stamp, dt) -> str:
        names = list(names)
        if sorted(names) != sorted(self.joints):
            return (f'chunk commands {", ".join(names[:8])}; lockstep execution needs exactly '
                    f'{", ".join(self.joints)}')
        try:
            positions = np.asarray(positions, dtype=float)
        except (TypeError, ValueError) as exc:
            return f'chunk positions: {exc}'
        if positions.ndim != 2 or positions.shape[0] < 1 or positions.shape[1] != len(names):
            return f'chunk positions {positions.shape} do not fit {len(names)} joints'
        if not np.all(np.isfinite(positions)):
            return 'chunk has NaN or inf actions'
        if not (math.isfinite(stamp) and math.isfinite(dt) and dt > 0):
            return f'chunk stamp {stamp} / period {dt} invalid'
        if stamp < self.not_before:
            return 'chunk observed before the episode started'
        if self.chunk is not None and stamp <= self.chunk_stamp:
            return f'chunk stamp {stamp:.3f} not after the current chunk {self.chunk_stamp:.3f}'
        return ''

    def on_observation(self, stamp: float) -> typing.Optional[np.ndarray]:
        """Return the command answering the observation at ``stamp``, or None (none is due)."""
        stamp = float(stamp)
        if self.observed is None or stamp > self.observed:
            self.observed = stamp
        if stamp != self.observed or stamp == self.answered or self.chunk is None:
            return None
        u = (stamp - self.chunk_stamp) / self.chunk_dt
        k = int(round(u))
        if abs(u - k) > _TOLERANCE or not 0 <= k < len(self.chunk):
            return None                # before the chunk, between its actions, or used up
        command = self.chunk[k]
        clipped = np.clip(command, self.lower, self.upper)
        self.clipped += int(np.any(clipped != command))
        self.answered = stamp
        self.executed += 1
        return clipped
