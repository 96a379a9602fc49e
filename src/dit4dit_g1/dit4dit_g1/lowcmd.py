"""
Build Unitree G1 low-level commands from arrays, safely, without ROS.

Works on any object with the fields of ``unitree_hg/LowCmd`` (``mode_pr``, ``mode_machine``,
``motor_cmd[35]`` of ``mode, q, dq, tau, kp, kd, reserve``, ``reserve[4]``, ``crc``) and of
``unitree_hg/HandCmd`` (``motor_cmd`` of 7), so the rclpy node and tests fill the real messages
while this module never imports ROS.

* Joint order is the Unitree motor index (``G1Description.body_names``, 0-28); slot 29 carries
  the arm_sdk blend weight in ``.q``; slots 30-34 are unused and sent as zeros. Limits and gains
  come from the G1 description (``dit4dit_g1.description``); the protocol's constants are here.
* ``G1CommandBuilder.fill`` writes position targets (mode 1, dq = 0, ``tau`` the feed-forward
  given, e.g. gravity from ``dit4dit_g1.gravity``, else 0) clamped to the position limits again
  (defense in depth); a target with a NaN or infinity is refused whole and the previous accepted
  one is sent instead. ``arm_sdk`` mode writes the weight in [0, 1]; in both
  modes ``mode_pr`` is 0 (pitch/roll) and ``mode_machine`` is echoed from LowState; in ``lowcmd``
  mode every other body joint is held at a latched pose with stiff gains. The CRC is set last.
* ``WeightRamp`` moves the arm_sdk weight toward 0 or 1 at a bounded rate.
* ``damp`` writes kp = 0, kd > 0 on every body joint (the e-stop).
* ``fill_hand`` writes a Dex3 ``HandCmd`` (mode = index | 1 << 4, the hand's gains and limits);
  ``damp_hand`` its e-stop (kp = 0), ``stop_hand`` releases the hand (timeout bit set).
"""

import math
import typing

import numpy as np

from .crc import lowcmd_crc
from .description import DEX3_NUM_MOTORS, G1Description, NUM_BODY_MOTORS

NUM_MOTORS = 35
ARM_SDK_WEIGHT_INDEX = 29
MODES = ('arm_sdk', 'lowcmd')
# Motors that the arm_sdk consumer (the walking controller) blends: waist 12-14 and both arms.
ARM_SDK_MOTORS = tuple(range(12, 29))
# Dex3-1 HandCmd mode byte: bits 0-3 the motor index, bits 4-6 status (1 = enable), bit 7 timeout.
DEX3_ENABLE = 1 << 4
DEX3_TIMEOUT = 1 << 7


def _vector(values, n: int, name: str) -> np.ndarray:
    """Return ``values`` as a float array of length ``n`` (a scalar is broadcast)."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f'{name}: expected {n} values, got shape {arr.shape}')
    return arr


def rate_limit(previous, target, max_step) -> np.ndarray:
    """Return ``target`` moved no further than ``max_step`` (per joint) from ``previous``."""
    previous = np.asarray(previous, dtype=float)
    step = np.abs(np.asarray(max_step, dtype=float))
    return np.clip(np.asarray(target, dtype=float), previous - step, previous + step)


def _write_motor(cmd, mode, q, kp, kd, tau=0.0):
    """Write one MotorCmd as a position target (dq = 0, feed-forward ``tau``, reserve 0)."""
    cmd.mode = mode
    cmd.q = q
    cmd.dq = 0.0
    cmd.tau = tau
    cmd.kp = kp
    cmd.kd = kd
    cmd.reserve = 0


def _check_lowcmd(msg):
    """Raise ValueError unless ``msg`` looks like a unitree_hg LowCmd."""
    if len(msg.motor_cmd) != NUM_MOTORS:
        raise ValueError(f'LowCmd.motor_cmd must have {NUM_MOTORS} entries, '
                         f'got {len(msg.motor_cmd)}')


def _mode_machine(value) -> int:
    """Return a valid uint8 mode_machine."""
    value = int(value)
    if not 0 <= value <= 255:
        raise ValueError(f'mode_machine {value} is not a uint8')
    return value


class G1CommandBuilder:
    """
    Fill LowCmd messages for a fixed set of G1 motors (see the module docstring).

    ``description`` gives the limits and gains per motor slot; ``joint_indices`` are the commanded
    slots (0-28); ``kp`` and ``kd`` override the description's gains of the commanded joints
    (scalars broadcast). Motors that are not commanded are held at the pose given to
    ``set_hold_pose`` with the description's gains: all of them in ``lowcmd`` mode, the arm_sdk
    ones (12-28) in ``arm_sdk`` mode; other slots are sent as zeros.
    """

    def __init__(self, description: G1Description, mode: str,
                 joint_indices: typing.Sequence[int], kp=None, kd=None):
        """Validate and store the configuration."""
        if mode not in MODES:
            raise ValueError(f'mode {mode!r}: valid are {", ".join(MODES)}')
        indices = [int(i) for i in joint_indices]
        if not indices:
            raise ValueError('joint_indices is empty')
        if len(set(indices)) != len(indices):
            raise ValueError(f'joint_indices has duplicates: {indices}')
        bad = [i for i in indices if not 0 <= i < NUM_BODY_MOTORS]
        if bad:
            raise ValueError(f'joint_indices {bad} are not G1 body motors (0-28)')
        n = len(indices)
        self.description = description
        self.mode = mode
        self.indices = np.array(indices, dtype=int)
        self.kp = _vector(description.kp[self.indices] if kp is None else kp, n, 'kp')
        self.kd = _vector(description.kd[self.indices] if kd is None else kd, n, 'kd')
        self.lower = description.lower[self.indices]
        self.upper = description.upper[self.indices]
        self.hold_kp = description.kp
        self.hold_kd = description.kd
        for name, arr in (('kp', self.kp), ('kd', self.kd), ('hold_kp', self.hold_kp),
                          ('hold_kd', self.hold_kd)):
            if not np.all(np.isfinite(arr)) or np.any(arr < 0):
                raise ValueError(f'{name} must be finite and >= 0: {arr.tolist()}')
        # Held motors: every body motor not commanded (lowcmd) or only the arm_sdk ones.
        held = range(NUM_BODY_MOTORS) if mode == 'lowcmd' else ARM_SDK_MOTORS
        self.held = np.array([i for i in held if i not in set(indices)], dtype=int)
        self.hold_pose: typing.Optional[np.ndarray] = None
        self.previous: typing.Optional[np.ndarray] = None
        self._hand_previous: typing.Dict[str, np.ndarray] = {}

    @property
    def n(self) -> int:
        """Return the number of commanded joints."""
        return len(self.indices)

    def clamp(self, q) -> np.ndarray:
        """Return commanded-joint targets clipped to the position limits."""
        return np.clip(np.asarray(q, dtype=float), self.lower, self.upper)

    def set_hold_pose(self, q_measured):
        """
        Latch the pose (29 measured positions, motor order) at which non-commanded motors hold.

        Raise ValueError if a value is not finite. The pose is clipped to the URDF limits.
        """
        q = _vector(q_measured, NUM_BODY_MOTORS, 'hold pose')
        if not np.all(np.isfinite(q)):
            raise ValueError('hold pose has non-finite values')
        self.hold_pose = np.clip(q, self.description.lower, self.description.upper)

    def reset(self, q=None):
        """Forget the previous accepted target, or set it to ``q`` (commanded joints)."""
        if q is None:
            self.previous = None
            return
        q = _vector(q, self.n, 'q')
        if not np.all(np.isfinite(q)):
            raise ValueError('reset pose has non-finite values')
        self.previous = self.clamp(q)

    def fill(self, msg, q_targets, mode_machine: int = 0, weight: float = 1.0,
             tau_ff=None) -> bool:
        """
        Write a position command for the commanded joints into ``msg``; set its crc.

        ``tau_ff`` (29 values, motor order; default zeros) is the feed-forward torque of every
        motor written with a target (commanded and held); a non-finite value is sent as 0.

        Return True if ``q_targets`` was used, False if it was refused (a NaN or an infinity):
        then the previous accepted target is written instead, or, with none yet, ``msg`` is left
        unchanged. Raise ValueError on a wrong length or, when motors must be held, before
        ``set_hold_pose``.
        """
        _check_lowcmd(msg)
        q = _vector(q_targets, self.n, 'q_targets')
        accepted = bool(np.all(np.isfinite(q)))
        if accepted:
            q = self.clamp(q)
            self.previous = q
        elif self.previous is None:
            return False
        else:
            q = self.clamp(self.previous)
        if len(self.held) and self.hold_pose is None:
            raise ValueError('set_hold_pose() first: some motors must be held')
        mode_machine = _mode_machine(mode_machine)
        tau = np.zeros(NUM_BODY_MOTORS) if tau_ff is None else np.nan_to_num(
            _vector(tau_ff, NUM_BODY_MOTORS, 'tau_ff'), nan=0.0, posinf=0.0, neginf=0.0)
        motors = msg.motor_cmd
        for slot in range(NUM_BODY_MOTORS, NUM_MOTORS):
            _write_motor(motors[slot], 0, 0.0, 0.0, 0.0)
        if self.mode == 'arm_sdk':
            for slot in range(NUM_BODY_MOTORS):
                _write_motor(motors[slot], 0, 0.0, 0.0, 0.0)
            motors[ARM_SDK_WEIGHT_INDEX].q = clamp_weight(weight)
        for slot in self.held.tolist():
            _write_motor(motors[slot], 1, float(self.hold_pose[slot]),
                         float(self.hold_kp[slot]), float(self.hold_kd[slot]), float(tau[slot]))
        for slot, qi, kp, kd in zip(self.indices.tolist(), q.tolist(), self.kp.tolist(),
                                    self.kd.tolist()):
            _write_motor(motors[slot], 1, qi, kp, kd, float(tau[slot]))
        msg.mode_pr = 0
        msg.mode_machine = mode_machine
        msg.reserve = [0, 0, 0, 0]
        msg.crc = lowcmd_crc(msg)
        return accepted

    def damp(self, msg, mode_machine: int = 0, weight: float = 1.0, kd=None, q=None):
        """
        Write a damping command (e-stop) into ``msg``: kp = 0 and kd > 0 on every body motor.

        ``kd`` is per motor index 0-28 (default: the commanded joints' kd, ``hold_kd`` for the
        others; zeros are raised to 0.5). ``q`` (29 values; default the hold pose, else zeros)
        only fills the position field, which has no effect with kp = 0. In ``arm_sdk`` mode the
        weight slot carries ``weight`` (clamped to [0, 1]).
        """
        _check_lowcmd(msg)
        if kd is None:
            kd = self.hold_kd.copy()
            kd[self.indices] = self.kd
        kd = np.maximum(_vector(kd, NUM_BODY_MOTORS, 'kd'), 0.5)
        if q is None:
            q = self.hold_pose if self.hold_pose is not None else np.zeros(NUM_BODY_MOTORS)
        q = np.nan_to_num(_vector(q, NUM_BODY_MOTORS, 'q'), nan=0.0, posinf=0.0, neginf=0.0)
        q = np.clip(q, self.description.lower, self.description.upper)
        motors = msg.motor_cmd
        for slot in range(NUM_BODY_MOTORS):
            _write_motor(motors[slot], 1, float(q[slot]), 0.0, float(kd[slot]))
        for slot in range(NUM_BODY_MOTORS, NUM_MOTORS):
            _write_motor(motors[slot], 0, 0.0, 0.0, 0.0)
        if self.mode == 'arm_sdk':
            motors[ARM_SDK_WEIGHT_INDEX].q = clamp_weight(weight)
        msg.mode_pr = 0
        msg.mode_machine = _mode_machine(mode_machine)
        msg.reserve = [0, 0, 0, 0]
        msg.crc = lowcmd_crc(msg)
        return msg

    def fill_hand(self, msg, q7, side: str, motor_cmd_factory=None) -> bool:
        """
        Write a Dex3 HandCmd for ``side``: 7 position targets clamped to the hand's limits.

        Gains and limits are the description's. ``msg.motor_cmd`` must hold 7 entries, or
        ``motor_cmd_factory`` (e.g. the MotorCmd class) makes them. Return True if ``q7`` was
        used, False if refused (non-finite): then the previous accepted target for that hand is
        written, or with none ``msg`` is unchanged.
        """
        hand = self._hand(side)
        q = _vector(q7, DEX3_NUM_MOTORS, 'q7')
        accepted = bool(np.all(np.isfinite(q)))
        if accepted:
            q = np.clip(q, hand.lower, hand.upper)
            self._hand_previous[side] = q
        elif side in self._hand_previous:
            q = self._hand_previous[side]
        else:
            return False
        fill_hand(msg, q, hand, motor_cmd_factory)
        return accepted

    def _hand(self, side: str):
        if side not in self.description.hands:
            raise ValueError(f'side {side!r}: {self.description.profile.name} has Dex3 hands '
                             f'{", ".join(self.description.hands) or "none"}')
        return self.description.hands[side]


def _ensure_hand_slots(msg, motor_cmd_factory):
    """Make ``msg.motor_cmd`` hold exactly 7 entries."""
    if len(msg.motor_cmd) != DEX3_NUM_MOTORS:
        if motor_cmd_factory is None:
            raise ValueError(f'HandCmd.motor_cmd has {len(msg.motor_cmd)} entries, expected '
                             f'{DEX3_NUM_MOTORS}; pass motor_cmd_factory')
        msg.motor_cmd = [motor_cmd_factory() for _ in range(DEX3_NUM_MOTORS)]


def fill_hand(msg, q7, hand, motor_cmd_factory=None):
    """
    Write a Dex3 HandCmd (stateless): mode = i | 1 << 4, q clamped to the hand's limits.

    ``hand`` is a ``description.Dex3Hand`` (limits and gains per wire slot). Raise ValueError if
    ``q7`` has a NaN or an infinity (nothing is written then).
    """
    q = _vector(q7, DEX3_NUM_MOTORS, 'q7')
    if not np.all(np.isfinite(q)):
        raise ValueError('hand target has non-finite values')
    q = np.clip(q, hand.lower, hand.upper)
    _ensure_hand_slots(msg, motor_cmd_factory)
    for i, (qi, kp, kd) in enumerate(zip(q.tolist(), hand.kp.tolist(), hand.kd.tolist())):
        _write_motor(msg.motor_cmd[i], i | DEX3_ENABLE, qi, kp, kd)
    return msg


def damp_hand(msg, hand, q7=None, motor_cmd_factory=None):
    """Write a Dex3 damping command (kp = 0, kd > 0; ``q7`` only fills the position field)."""
    q = np.zeros(DEX3_NUM_MOTORS) if q7 is None else np.nan_to_num(
        _vector(q7, DEX3_NUM_MOTORS, 'q7'), nan=0.0, posinf=0.0, neginf=0.0)
    _ensure_hand_slots(msg, motor_cmd_factory)
    for i, (qi, kd) in enumerate(zip(q.tolist(), hand.kd.tolist())):
        _write_motor(msg.motor_cmd[i], i | DEX3_ENABLE, qi, 0.0, max(kd, 0.05))
    return msg


def stop_hand(msg, motor_cmd_factory=None):
    """Write a Dex3 stop (timeout bit set, q = dq = tau = kp = kd = 0) into ``msg``."""
    _ensure_hand_slots(msg, motor_cmd_factory)
    for i in range(DEX3_NUM_MOTORS):
        _write_motor(msg.motor_cmd[i], i | DEX3_ENABLE | DEX3_TIMEOUT, 0.0, 0.0, 0.0)
    return msg


def clamp_weight(weight) -> float:
    """Return an arm_sdk weight clamped to [0, 1] (NaN -> 0: the least authority)."""
    weight = float(weight)
    if math.isnan(weight):
        return 0.0
    return min(1.0, max(0.0, weight))


class WeightRamp:
    """
    The arm_sdk blend weight, moved toward 0 or 1 at a bounded rate.

    ``enable()`` aims at 1 (reached after ``duration_up_s`` from 0), ``disable()`` at 0 (after
    ``duration_down_s`` from 1); ``step(dt)`` advances by at most dt / duration and returns the
    weight. A zero duration jumps at once. Between two target changes the weight is monotone.
    """

    def __init__(self, duration_up_s: float = 1.0, duration_down_s: float = 3.0,
                 weight: float = 0.0):
        """Validate the durations; start at ``weight`` aiming at it."""
        for name, value in (('duration_up_s', duration_up_s),
                            ('duration_down_s', duration_down_s)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f'{name} must be finite and >= 0, got {value}')
        self.duration_up_s = float(duration_up_s)
        self.duration_down_s = float(duration_down_s)
        self.weight = clamp_weight(weight)
        self.target = self.weight

    def enable(self):
        """Aim at weight 1."""
        self.target = 1.0

    def disable(self):
        """Aim at weight 0."""
        self.target = 0.0

    @property
    def done(self) -> bool:
        """Return True when the weight has reached the target."""
        return self.weight == self.target

    def step(self, dt: float) -> float:
        """Advance by ``dt`` seconds (non-finite or negative counts as 0); return the weight."""
        dt = float(dt)
        if not math.isfinite(dt) or dt <= 0.0 or self.done:
            return self.weight
        rising = self.target > self.weight
        duration = self.duration_up_s if rising else self.duration_down_s
        if duration <= 0.0:
            self.weight = self.target
        elif rising:
            self.weight = min(self.target, self.weight + dt / duration)
        else:
            self.weight = max(self.target, self.weight - dt / duration)
        return self.weight
