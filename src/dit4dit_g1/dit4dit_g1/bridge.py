"""
The G1 bridge's state machine, ROS-free: what goes into each LowCmd/HandCmd, and when.

States: DISABLED (nothing published) -> ``enable`` -> ENABLED (the measured pose is latched; the
arm_sdk weight ramps up; commands are tracked, rate limited and clamped) -> ``disable`` or a lost
LowState -> DISABLING (arm_sdk: the weight ramps down over ``ramp_down_s`` while the last targets
are held; lowcmd: every joint is damped for ``ramp_down_s``) -> DISABLED. ``estop`` damps every
joint (kp = 0, the arm_sdk weight frozen, never raised) until ``enable``. ``request_shutdown``
runs the same ramp down (or damping) and sets ``finished`` when it is over; the process gives it
``shutdown_budget_s``, derived from the description's ramp time and nothing else.

With a gravity model (``dit4dit_g1.gravity``; ``gravity_compensation``) every target goes out
with the torque that holds the measured pose against gravity (pelvis orientation from LowState's
IMU) as ``tau``; damping never carries one.

Time is passed in (``now``, monotonic seconds), so every transition is tested without DDS or
sleeping; the ``g1_bridge`` node converts messages and owns the timer.
"""

from dataclasses import dataclass
import typing

import numpy as np

from .description import DEX3_NUM_MOTORS, G1Description
from .lowcmd import ARM_SDK_MOTORS, damp_hand, G1CommandBuilder, MODES, rate_limit, stop_hand
from .lowcmd import WeightRamp

DISABLED, ENABLED, DISABLING, ESTOP = 'disabled', 'enabled', 'disabling', 'estop'
HANDS = {'none': (), 'left': ('left',), 'right': ('right',), 'both': ('left', 'right')}
STOP_MARGIN_S = 1.0   # beyond the ramp: a few control periods and the process's own exit


def shutdown_budget_s(ramp_down_s: float) -> float:
    """Return the time a bridge needs to stop after a signal (its ramp down plus a margin)."""
    return float(ramp_down_s) + STOP_MARGIN_S


@dataclass(frozen=True)
class BridgeConfig:
    """What the node's parameters choose; everything else comes from the G1 description."""

    mode: str = 'arm_sdk'
    rate_hz: float = 250.0
    hands: str = 'none'
    lowstate_timeout_s: float = 0.1
    hand_state_timeout_s: float = 0.5

    def __post_init__(self):
        """Validate."""
        if self.mode not in MODES:
            raise ValueError(f'control_mode {self.mode!r}: valid are {", ".join(MODES)}')
        if self.hands not in HANDS:
            raise ValueError(f'hands {self.hands!r}: valid are {", ".join(HANDS)}')
        for key in ('rate_hz', 'lowstate_timeout_s', 'hand_state_timeout_s'):
            if not 0.0 < getattr(self, key) < float('inf'):
                raise ValueError(f'{key} {getattr(self, key)} must be > 0 and finite')


class Dex3Channel:
    """One Dex3 hand: its measured state, the latest command, the pose held and the output."""

    def __init__(self, hand):
        """Start with nothing measured or commanded (``hand``: a description.Dex3Hand)."""
        self.hand = hand
        self.side = hand.side
        self.measured = self.velocity = self.effort = None
        self.stamp = None
        self.command = np.full(DEX3_NUM_MOTORS, np.nan)
        self.hold: typing.Optional[np.ndarray] = None
        self.output: typing.Optional[np.ndarray] = None

    def update(self, q, dq, tau, stamp: float):
        """Store a measurement (monotonic ``stamp``)."""
        self.measured = np.asarray(q, dtype=float)
        self.velocity = np.asarray(dq, dtype=float)
        self.effort = np.asarray(tau, dtype=float)
        self.stamp = stamp

    def fresh(self, now: float, timeout_s: float) -> bool:
        """Return True if a measurement younger than ``timeout_s`` is stored."""
        return self.stamp is not None and now - self.stamp <= timeout_s

    def clamp(self, q) -> np.ndarray:
        """Return hand targets clipped to this hand's limits."""
        return np.clip(q, self.hand.lower, self.hand.upper)

    def latch(self, now: float, timeout_s: float) -> bool:
        """Hold the measured pose (enable); return False (and command nothing) if stale."""
        self.command[:] = np.nan
        if not self.fresh(now, timeout_s):
            self.hold = self.output = None
            return False
        self.hold = self.clamp(self.measured)
        self.output = self.hold.copy()
        return True


class BridgeCore:
    """The bridge's state machine (see the module docstring)."""

    def __init__(self, description: G1Description, config: BridgeConfig,
                 log: typing.Callable[[str, str], None] = lambda level, text: None,
                 gravity=None):
        """
        Build the command builder for the description and mode; ``log(level, text)``.

        ``gravity``: a ``dit4dit_g1.gravity.GravityModel`` (or anything with its ``torques(q,
        quat_wxyz)``) for the feed-forward torques, or None for none.
        """
        self.description, self.config, self.log = description, config, log
        self.gravity = gravity
        self.dt = 1.0 / config.rate_hz
        missing = [s for s in HANDS[config.hands] if s not in description.hands]
        if missing:
            raise ValueError(f'hands {config.hands!r}: {description.profile.name} has no Dex3 '
                             f'{" or ".join(missing)} hand')
        # arm_sdk blends only the waist and arms into the walking controller; lowcmd drives all.
        slots = list(ARM_SDK_MOTORS) if config.mode == 'arm_sdk' else \
            list(range(len(description.body_names)))
        self.slots = slots
        self.names = [description.body_names[s] for s in slots]
        self.builder = G1CommandBuilder(description, config.mode, slots)
        self.ramp = WeightRamp(description.ramp_up_s, description.ramp_down_s)
        self.max_step = description.max_velocity * self.dt
        self.shutdown_budget_s = shutdown_budget_s(description.ramp_down_s)
        self.name_to_slot: typing.Dict[str, typing.Any] = {n: i for i, n in enumerate(self.names)}
        self.hands = {side: Dex3Channel(description.hands[side]) for side in HANDS[config.hands]}
        for side, channel in self.hands.items():
            for i, name in enumerate(channel.hand.names):
                self.name_to_slot[name] = (side, i)
        self.state = DISABLED
        self.measured: typing.Optional[np.ndarray] = None    # every body slot
        self.orientation = (1.0, 0.0, 0.0, 0.0)               # pelvis (IMU) w, x, y, z
        self.mode_machine = 0
        self.lowstate_time: typing.Optional[float] = None
        self.command: typing.Optional[np.ndarray] = None     # latest target per joint (NaN: none)
        self.output: typing.Optional[np.ndarray] = None      # last published target per joint
        self.hold: typing.Optional[np.ndarray] = None        # pose latched at enable
        self.damp_until = 0.0
        self.damping_disable = False   # disabling from an e-stop keeps damping
        self.shutdown_requested = False
        self.finished = False

    # -- inputs --------------------------------------------------------------------------------
    def on_lowstate(self, q, mode_machine: int, now: float, orientation=None):
        """Store the measured body positions (every slot), mode_machine and IMU quaternion."""
        self.measured = np.asarray(q, dtype=float)
        if orientation is not None:
            self.orientation = tuple(float(v) for v in orientation)
        self.mode_machine = int(mode_machine)
        self.lowstate_time = now

    def on_hand_state(self, side: str, q, dq, tau, now: float) -> str:
        """Store a Dex3 hand's measured joints; return why it was refused, or ''."""
        if len(q) < DEX3_NUM_MOTORS:
            return f'{len(q)} motors, expected {DEX3_NUM_MOTORS}'
        q = np.asarray(q[:DEX3_NUM_MOTORS], dtype=float)
        if not np.all(np.isfinite(q)):
            return 'non-finite positions'
        self.hands[side].update(q, dq[:DEX3_NUM_MOTORS], tau[:DEX3_NUM_MOTORS], now)
        return ''

    def fresh_hands(self, now: float) -> typing.List[Dex3Channel]:
        """Return the hands whose state is fresh enough to report in joint_states."""
        return [h for h in self.hands.values()
                if h.fresh(now, self.config.hand_state_timeout_s)]

    def on_command(self, names, positions) -> str:
        """Store a joint command (positions by name) while enabled; return why refused, or ''."""
        if self.state != ENABLED:
            return ''                  # not an error: nothing is tracked while not enabled
        unknown = [n for n in names if n not in self.name_to_slot]
        if unknown:
            return f'joints not driven in {self.config.mode} mode: {unknown[:5]}'
        if len(positions) != len(names):
            return f'{len(positions)} positions for {len(names)} names'
        if len(set(names)) != len(names):
            return 'duplicate joint names'
        if not np.all(np.isfinite(np.asarray(positions, dtype=float))):
            return 'non-finite positions'
        command = self.command.copy() if self.command is not None else np.full(
            len(self.names), np.nan)
        for name, q in zip(names, positions):
            slot = self.name_to_slot[name]
            if isinstance(slot, tuple):
                self.hands[slot[0]].command[slot[1]] = q
            else:
                command[slot] = q
        self.command = command
        return ''

    # -- services ------------------------------------------------------------------------------
    def enable(self, now: float) -> str:
        """Latch the measured pose and start tracking commands; return a message or raise."""
        if self.shutdown_requested:
            raise RuntimeError('shutting down')
        if self.measured is None:
            raise RuntimeError('no /lowstate received yet')
        if not np.all(np.isfinite(self.measured)):
            raise RuntimeError('/lowstate has non-finite joint positions')
        self.builder.set_hold_pose(self.measured)
        self.hold = self.builder.clamp(self.measured[self.slots])
        self.output = self.hold.copy()
        self.builder.reset(self.output)
        self.command = None
        for hand in self.hands.values():
            if not hand.latch(now, self.config.hand_state_timeout_s):
                self.log('warn', f'Dex3 {hand.side}: no fresh state, the hand is not commanded')
        self.ramp.enable()
        previous, self.state = self.state, ENABLED
        if self.config.mode == 'arm_sdk':
            return f'enabled (was {previous}); weight ramps up from {self.ramp.weight:.2f}'
        return f'enabled (was {previous})'

    def disable(self, now: float) -> str:
        """Ramp down (arm_sdk) or damp (lowcmd), then stop publishing; return a message."""
        if self.state == ESTOP:
            raise RuntimeError('e-stopped: call ~/enable first')
        if self.state in (DISABLED, DISABLING):
            return f'already {self.state}'
        self._start_disabling(now, damping=False)
        return 'disabling'

    def estop(self) -> str:
        """Damp every joint until ``enable``; return a message."""
        self.state = ESTOP
        self.command = None
        for hand in self.hands.values():
            hand.command[:] = np.nan
        self.log('error', 'E-STOP: damping all joints (kp = 0) until ~/enable')
        return 'e-stop: damping'

    def _start_disabling(self, now: float, damping: bool):
        self.state = DISABLING
        self.damping_disable = damping
        self.ramp.disable()
        self.damp_until = now + self.description.ramp_down_s

    def request_shutdown(self, now: float):
        """Begin the shutdown ramp down (or damping); ``finished`` turns True when it is over."""
        if self.shutdown_requested:
            return
        self.shutdown_requested = True
        if self.measured is None or self.state == DISABLED:
            self.finished = True
            return
        self._start_disabling(now, damping=self.state == ESTOP or self.damping_disable)
        self.log('info', f'shutdown: ramping down /{self.config.mode} over at most '
                 f'{self.description.ramp_down_s:.1f} s')

    # -- control loop --------------------------------------------------------------------------
    def tick(self, now: float, lowcmd, hand_msgs) -> typing.Tuple[bool, typing.List[str]]:
        """
        Fill this period's LowCmd and HandCmds; return (publish the LowCmd?, hands to publish).

        ``hand_msgs`` maps a side to its HandCmd message object (reused between ticks).
        """
        if self.measured is None or self.state == DISABLED:
            if self.shutdown_requested:
                self.finished = True
            return False, []
        if self.state == ENABLED and now - self.lowstate_time > self.config.lowstate_timeout_s:
            self.log('error', f'no /lowstate for {self.config.lowstate_timeout_s:.3f} s: '
                     'disabling (' + ('ramping the arm_sdk weight down' if self.config.mode ==
                                      'arm_sdk' else 'damping') + ')')
            self._start_disabling(now, damping=False)
        if self.state == ESTOP:
            self.builder.damp(lowcmd, self.mode_machine, self.ramp.weight, q=self.measured)
        elif self.state == DISABLING:
            weight = self.ramp.step(self.dt)
            if self.config.mode == 'lowcmd' or self.damping_disable:
                self.builder.damp(lowcmd, self.mode_machine, weight, q=self.measured)
            else:
                self.builder.fill(lowcmd, self.output, self.mode_machine, weight,
                                  self.feed_forward())
            done = self.ramp.done if self.config.mode == 'arm_sdk' else now >= self.damp_until
            if done:
                self.state = DISABLED
                self.log('info', f'disabled: /{self.config.mode} stopped')
        else:
            weight = self.ramp.step(self.dt)
            target = self.hold
            if self.command is not None:
                target = np.where(np.isnan(self.command), self.hold, self.command)
            self.output = rate_limit(self.output, self.builder.clamp(target), self.max_step)
            self.builder.fill(lowcmd, self.output, self.mode_machine, weight,
                              self.feed_forward())
        return True, self._tick_hands(hand_msgs)

    def feed_forward(self) -> typing.Optional[np.ndarray]:
        """Return the gravity torques at the measured pose, or None without a model."""
        if self.gravity is None:
            return None
        return self.gravity.torques(self.measured, self.orientation)

    def _tick_hands(self, hand_msgs) -> typing.List[str]:
        """Fill each Dex3 hand's command for this period; return the sides to publish."""
        damping = self.state == ESTOP or (self.state == DISABLING and (
            self.config.mode == 'lowcmd' or self.damping_disable))
        sides = []
        for side, hand in self.hands.items():
            msg = hand_msgs[side]
            if damping:
                damp_hand(msg, hand.hand, hand.measured)
            elif self.state == DISABLED:   # just finished disabling: release once
                if hand.output is None:
                    continue
                hand.output = None
                stop_hand(msg)
            elif hand.output is None:
                continue
            else:
                if self.state == ENABLED:
                    target = np.where(np.isnan(hand.command), hand.hold, hand.command)
                    hand.output = rate_limit(hand.output, hand.clamp(target), self.max_step)
                self.builder.fill_hand(msg, hand.output, side)
            sides.append(side)
        return sides
