"""
``g1_bridge``: the suite's joint commands to a Unitree G1 (unitree_hg/LowCmd), its state back.

* ``/lowstate`` (``unitree_hg/LowState``, best effort) -> ``joint_states`` (``sensor_msgs/
  JointState``: the ``joint_names`` read from motor slots ``motor_indices``) and ``imu``
  (``sensor_msgs/Imu``; LowState's quaternion is w, x, y, z).
* ``joint_command`` (``sensor_msgs/JointState``, positions by name; a message with an unknown name,
  a length mismatch or a non-finite value is refused whole) -> ``/arm_sdk`` or ``/lowcmd``
  (``control_mode``) at ``rate_hz`` from a timer, with the latest command clamped to ``lower`` /
  ``upper`` and moved at most ``max_velocity`` per tick. Joints without a command hold the pose
  measured at enable. ``mode_machine`` is copied from the latest LowState, the CRC is set.
* Dex3 hands (``hands``: none, left, right or both): ``/dex3/<side>/state`` (``unitree_hg/
  HandState``) joins ``joint_states`` (the profile's hand joint names, wire order) while it is
  fresher than ``hand_state_timeout_s``; hand joints in ``joint_command`` go to
  ``/dex3/<side>/cmd`` (``HandCmd``, clamped to the hand's limits, same velocity cap), each hand
  held at its pose measured at enable until commanded.
* Nothing is published before the first LowState, nor before ``~/enable``.
* LowState watchdog: if no LowState arrives for ``lowstate_timeout_s`` while enabled, the bridge
  disables itself (arm_sdk: weight ramps down; lowcmd: damping) and logs an error.
* ``~/enable`` (``std_srvs/Trigger``): latch the measured pose, ramp the arm_sdk weight up
  (``ramp_up_s``) and track new commands. ``~/disable``: freeze the targets and ramp the weight
  down (``ramp_down_s``; in lowcmd mode: damp for ``ramp_down_s``), then stop publishing.
  ``~/estop``: damp every joint (kp = 0, kd > 0; the arm_sdk weight is frozen, never raised) until
  ``~/enable``. Hands: damped on e-stop, released (``stop_hand``) once the bridge is disabled.
* On SIGINT / SIGTERM ``main`` runs the same ramp down (or damping) before exiting; a second
  signal exits at once.
"""

import signal
import time
import typing

from dit4dit_bringup.g1_lowcmd import (
    damp_hand, DEX3_JOINT_NAMES, DEX3_LOWER, DEX3_NUM_MOTORS, DEX3_SIDES, DEX3_UPPER,
    G1_DEFAULT_KD, G1_DEFAULT_KP, G1_JOINT_NAMES, G1_LOWER, G1_UPPER, G1CommandBuilder, MODES,
    NUM_BODY_MOTORS, rate_limit, stop_hand, WeightRamp)
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Imu, JointState
from std_srvs.srv import Trigger
from unitree_hg.msg import HandCmd, HandState, LowCmd, LowState, MotorCmd

MAX_RATE_HZ = 500.0
DISABLED, ENABLED, DISABLING, ESTOP = 'disabled', 'enabled', 'disabling', 'estop'
HANDS = {'none': (), 'left': ('left',), 'right': ('right',), 'both': DEX3_SIDES}
COMMAND_QOS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
LOWSTATE_QOS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                          reliability=ReliabilityPolicy.BEST_EFFORT,
                          durability=DurabilityPolicy.VOLATILE)

PARAMETERS = (
    ('control_mode', 'arm_sdk',
     'arm_sdk (/arm_sdk, blended into the walking controller by a weight) or lowcmd (/lowcmd, '
     'whole body; the motion controller must be released and the robot supported).'),
    ('rate_hz', 250.0, f'LowCmd publishing rate (0 < rate_hz <= {MAX_RATE_HZ:.0f} Hz).'),
    ('joint_names', list(G1_JOINT_NAMES),
     'Joint names of joint_states and joint_command, one per motor_indices entry.'),
    ('motor_indices', list(range(NUM_BODY_MOTORS)),
     'Unitree motor index (0-28) of each joint_names entry.'),
    ('lower', G1_LOWER.tolist(), 'Lower position limit per joint [rad].'),
    ('upper', G1_UPPER.tolist(), 'Upper position limit per joint [rad].'),
    ('kp', G1_DEFAULT_KP.tolist(), 'Position gain per joint [N.m/rad].'),
    ('kd', G1_DEFAULT_KD.tolist(), 'Damping gain per joint [N.m.s/rad]; also the e-stop damping.'),
    ('max_velocity', 1.0, 'Largest target speed per joint [rad/s], enforced every tick.'),
    ('ramp_up_s', 1.0, 'arm_sdk weight ramp 0 -> 1 on enable [s].'),
    ('ramp_down_s', 3.0, 'arm_sdk weight ramp 1 -> 0 on disable and shutdown [s]; lowcmd: '
     'damping time before publishing stops.'),
    ('imu_frame_id', 'imu_in_pelvis', 'frame_id of the Imu messages (the pelvis IMU).'),
    ('hands', 'none', 'Dex3 hands to read and command on /dex3/<side>/state|cmd: none, left, '
     'right or both.'),
    ('lowstate_timeout_s', 0.1, 'Disable (ramp down / damp) if no LowState arrives for this '
     'long while enabled [s].'),
    ('hand_state_timeout_s', 0.5, 'Leave a hand out of joint_states if its HandState is older '
     'than this [s].'),
)


def validate_parameters(p: dict) -> dict:
    """Return the parameters checked and normalised; raise ValueError with a clear message."""
    if p['control_mode'] not in MODES:
        raise ValueError(f'control_mode {p["control_mode"]!r}: valid are {", ".join(MODES)}')
    if not 0.0 < p['rate_hz'] <= MAX_RATE_HZ:
        raise ValueError(f'rate_hz {p["rate_hz"]} must be in (0, {MAX_RATE_HZ:.0f}]')
    names = list(p['joint_names'])
    if not names or any(not n for n in names) or len(set(names)) != len(names):
        raise ValueError(f'joint_names must be non-empty, unique names: {names}')
    n = len(names)
    for key in ('motor_indices', 'lower', 'upper', 'kp', 'kd'):
        if len(p[key]) != n:
            raise ValueError(f'{key} has {len(p[key])} entries but joint_names has {n}')
    indices = [int(i) for i in p['motor_indices']]
    if len(set(indices)) != n or any(not 0 <= i < NUM_BODY_MOTORS for i in indices):
        raise ValueError(f'motor_indices must be unique G1 body motors (0-28): {indices}')
    lower, upper = np.array(p['lower'], float), np.array(p['upper'], float)
    if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))
            and np.all(lower < upper)):
        raise ValueError('lower/upper must be finite with lower < upper for every joint')
    kp, kd = np.array(p['kp'], float), np.array(p['kd'], float)
    if not (np.all(np.isfinite(kp)) and np.all(kp >= 0)):
        raise ValueError('kp must be finite and >= 0')
    if not (np.all(np.isfinite(kd)) and np.all(kd > 0)):
        raise ValueError('kd must be finite and > 0 (it is also the e-stop damping)')
    if not 0.0 < p['max_velocity'] < float('inf'):
        raise ValueError(f'max_velocity {p["max_velocity"]} must be > 0 and finite')
    for key in ('ramp_up_s', 'ramp_down_s'):
        if not 0.0 <= p[key] < float('inf'):
            raise ValueError(f'{key} {p[key]} must be >= 0 and finite')
    for key in ('lowstate_timeout_s', 'hand_state_timeout_s'):
        if not 0.0 < p[key] < float('inf'):
            raise ValueError(f'{key} {p[key]} must be > 0 and finite')
    if p['hands'] not in HANDS:
        raise ValueError(f'hands {p["hands"]!r}: valid are {", ".join(HANDS)}')
    clash = [n for side in HANDS[p['hands']] for n in DEX3_JOINT_NAMES[side] if n in names]
    if clash:
        raise ValueError(f'hand joints {clash[:3]} are also in joint_names (body motors)')
    return dict(p, joint_names=names, motor_indices=indices, lower=lower, upper=upper, kp=kp,
                kd=kd)


class G1BridgeNode(Node):
    """The G1 bridge (see the module docstring)."""

    def __init__(self, **kwargs):
        """Declare and validate parameters; create the builder, topics, services and timer."""
        super().__init__('g1_bridge', **kwargs)
        for name, default, text in PARAMETERS:
            self.declare_parameter(name, default, ParameterDescriptor(description=text))
        self.p = validate_parameters(
            {name: self.get_parameter(name).value for name, _, _ in PARAMETERS})
        p = self.p
        self.mode = p['control_mode']
        self.dt = 1.0 / p['rate_hz']
        self.names = p['joint_names']
        self.indices = p['motor_indices']
        self.name_to_slot = {n: i for i, n in enumerate(self.names)}
        self.max_step = p['max_velocity'] * self.dt
        self.builder = G1CommandBuilder(self.mode, self.indices, p['kp'], p['kd'],
                                        p['lower'], p['upper'])
        self.ramp = WeightRamp(p['ramp_up_s'], p['ramp_down_s'])
        self.state = DISABLED
        self.measured: typing.Optional[np.ndarray] = None   # 29 body positions
        self.mode_machine = 0
        self.command: typing.Optional[np.ndarray] = None    # latest target per joint (NaN: none)
        self.output: typing.Optional[np.ndarray] = None     # last published target per joint
        self.hold: typing.Optional[np.ndarray] = None       # pose latched at enable
        self.damp_until = 0.0
        self.damping_disable = False   # disabling from an e-stop keeps damping
        self.shutdown_requested = False
        self.finished = False
        self.lowcmd = LowCmd()
        self.lowstate_time = None
        self.sides = HANDS[p['hands']]
        for side in self.sides:
            for i, name in enumerate(DEX3_JOINT_NAMES[side]):
                self.name_to_slot[name] = (side, i)
        self.hands = {side: Dex3Channel(side) for side in self.sides}
        self.hand_pubs = {side: self.create_publisher(HandCmd, f'/dex3/{side}/cmd', COMMAND_QOS)
                          for side in self.sides}
        for side in self.sides:
            self.create_subscription(
                HandState, f'/dex3/{side}/state',
                lambda msg, side=side: self.on_hand_state(side, msg), LOWSTATE_QOS)
        self.lowcmd_topic = '/' + self.mode
        self.lowcmd_pub = self.create_publisher(LowCmd, self.lowcmd_topic, COMMAND_QOS)
        self.joint_state_pub = self.create_publisher(JointState, 'joint_states', 10)
        self.imu_pub = self.create_publisher(Imu, 'imu', 10)
        self.create_subscription(LowState, '/lowstate', self.on_lowstate, LOWSTATE_QOS)
        self.create_subscription(JointState, 'joint_command', self.on_command, COMMAND_QOS)
        self.create_service(Trigger, '~/enable', self._on_enable)
        self.create_service(Trigger, '~/disable', self._on_disable)
        self.create_service(Trigger, '~/estop', self._on_estop)
        self.timer = self.create_timer(self.dt, self.tick)
        hands = f' + Dex3 {p["hands"]}' if self.sides else ''
        self.get_logger().info(
            f'g1_bridge: {len(self.names)} joints{hands} -> {self.lowcmd_topic} at '
            f'{p["rate_hz"]:.0f} Hz, velocity cap {p["max_velocity"]:.2f} rad/s; waiting for '
            f'/lowstate and ~/enable')

    # -- inputs --------------------------------------------------------------------------------
    def on_lowstate(self, msg: LowState):
        """Store the measured pose and mode_machine; publish joint_states and imu."""
        motors = msg.motor_state
        self.measured = np.array([motors[i].q for i in range(NUM_BODY_MOTORS)])
        self.mode_machine = int(msg.mode_machine)
        self.lowstate_time = time.monotonic()
        stamp = self.get_clock().now().to_msg()
        name = list(self.names)
        position = [float(motors[i].q) for i in self.indices]
        velocity = [float(motors[i].dq) for i in self.indices]
        effort = [float(motors[i].tau_est) for i in self.indices]
        for hand in self.hands.values():
            if hand.fresh(self.lowstate_time, self.p['hand_state_timeout_s']):
                name += DEX3_JOINT_NAMES[hand.side]
                position += hand.measured.tolist()
                velocity += hand.velocity.tolist()
                effort += hand.effort.tolist()
        js = JointState(name=name, position=position, velocity=velocity, effort=effort)
        js.header.stamp = stamp
        self.joint_state_pub.publish(js)
        imu_state = msg.imu_state
        imu = Imu()
        imu.header.stamp = stamp
        imu.header.frame_id = self.p['imu_frame_id']
        w, x, y, z = (float(v) for v in imu_state.quaternion)
        imu.orientation.x, imu.orientation.y, imu.orientation.z, imu.orientation.w = x, y, z, w
        gyro, acc = imu_state.gyroscope, imu_state.accelerometer
        imu.angular_velocity.x, imu.angular_velocity.y, imu.angular_velocity.z = (
            float(gyro[0]), float(gyro[1]), float(gyro[2]))
        imu.linear_acceleration.x, imu.linear_acceleration.y, imu.linear_acceleration.z = (
            float(acc[0]), float(acc[1]), float(acc[2]))
        self.imu_pub.publish(imu)

    def on_hand_state(self, side: str, msg: HandState):
        """Store a Dex3 hand's measured joints (refused if it has too few motors or a NaN)."""
        motors = msg.motor_state
        if len(motors) < DEX3_NUM_MOTORS:
            self.get_logger().warn(f'/dex3/{side}/state has {len(motors)} motors, expected '
                                   f'{DEX3_NUM_MOTORS}', throttle_duration_sec=2.0)
            return
        q = np.array([motors[i].q for i in range(DEX3_NUM_MOTORS)], dtype=float)
        if not np.all(np.isfinite(q)):
            self.get_logger().warn(f'/dex3/{side}/state has non-finite positions',
                                   throttle_duration_sec=2.0)
            return
        self.hands[side].update(q, [motors[i].dq for i in range(DEX3_NUM_MOTORS)],
                                [motors[i].tau_est for i in range(DEX3_NUM_MOTORS)],
                                time.monotonic())

    def on_command(self, msg: JointState):
        """Store a joint command (positions by name) while enabled; refuse a malformed one."""
        if self.state != ENABLED:
            return
        reason = ''
        unknown = [n for n in msg.name if n not in self.name_to_slot]
        if unknown:
            reason = f'unknown joint names {unknown[:5]}'
        elif len(msg.position) != len(msg.name):
            reason = f'{len(msg.position)} positions for {len(msg.name)} names'
        elif len(set(msg.name)) != len(msg.name):
            reason = 'duplicate joint names'
        elif not np.all(np.isfinite(np.asarray(msg.position, dtype=float))):
            reason = 'non-finite positions'
        if reason:
            self.get_logger().warn(f'joint_command refused: {reason}', throttle_duration_sec=2.0)
            return
        command = self.command.copy() if self.command is not None else np.full(
            len(self.names), np.nan)
        for name, q in zip(msg.name, msg.position):
            slot = self.name_to_slot[name]
            if isinstance(slot, tuple):
                self.hands[slot[0]].command[slot[1]] = q
            else:
                command[slot] = q
        self.command = command

    # -- services ------------------------------------------------------------------------------
    def enable(self) -> str:
        """Latch the measured pose and start tracking commands; return a message or raise."""
        if self.shutdown_requested:
            raise RuntimeError('shutting down')
        if self.measured is None:
            raise RuntimeError('no /lowstate received yet')
        if not np.all(np.isfinite(self.measured)):
            raise RuntimeError('/lowstate has non-finite joint positions')
        self.builder.set_hold_pose(self.measured)
        self.hold = self.builder.clamp(self.measured[self.indices])
        self.output = self.hold.copy()
        self.builder.reset(self.output)
        self.command = None
        now = time.monotonic()
        for hand in self.hands.values():
            if not hand.latch(now, self.p['hand_state_timeout_s']):
                self.get_logger().warn(f'Dex3 {hand.side}: no fresh /dex3/{hand.side}/state, '
                                       'the hand is not commanded')
        self.ramp.enable()
        previous, self.state = self.state, ENABLED
        if self.mode == 'arm_sdk':
            return f'enabled (was {previous}); weight ramps up from {self.ramp.weight:.2f}'
        return f'enabled (was {previous})'

    def disable(self) -> str:
        """Ramp down (arm_sdk) or damp (lowcmd), then stop publishing; return a message."""
        if self.state == ESTOP:
            raise RuntimeError('e-stopped: call ~/enable first')
        if self.state in (DISABLED, DISABLING):
            return f'already {self.state}'
        self._start_disabling(damping=False)
        return 'disabling'

    def estop(self) -> str:
        """Damp every joint until ~/enable; return a message."""
        self.state = ESTOP
        self.command = None
        for hand in self.hands.values():
            hand.command[:] = np.nan
        self.get_logger().error('E-STOP: damping all joints (kp = 0) until ~/enable')
        return 'e-stop: damping'

    def _start_disabling(self, damping: bool):
        self.state = DISABLING
        self.damping_disable = damping
        self.ramp.disable()
        self.damp_until = time.monotonic() + self.p['ramp_down_s']

    def _service(self, action, response):
        try:
            response.message = action()
            response.success = True
        except RuntimeError as exc:
            response.success, response.message = False, str(exc)
        self.get_logger().info(f'{action.__name__}: {response.message}')
        return response

    def _on_enable(self, request, response):
        return self._service(self.enable, response)

    def _on_disable(self, request, response):
        return self._service(self.disable, response)

    def _on_estop(self, request, response):
        return self._service(self.estop, response)

    # -- shutdown ------------------------------------------------------------------------------
    def request_shutdown(self):
        """Begin the shutdown ramp down (or damping); ``finished`` turns True when it is over."""
        if self.shutdown_requested:
            return
        self.shutdown_requested = True
        if self.measured is None or self.state == DISABLED:
            self.finished = True
            return
        self._start_disabling(damping=self.state == ESTOP or self.damping_disable)
        self.get_logger().info(f'shutdown: ramping down {self.lowcmd_topic}')

    # -- control loop --------------------------------------------------------------------------
    def tick(self):
        """Publish one LowCmd for this period (or none: before LowState, or when disabled)."""
        if self.measured is None or self.state == DISABLED:
            if self.shutdown_requested:
                self.finished = True
            return
        if self.state == ENABLED and time.monotonic() - self.lowstate_time > \
                self.p['lowstate_timeout_s']:
            self.get_logger().error(
                f'no /lowstate for {self.p["lowstate_timeout_s"]:.3f} s: disabling '
                f'({"ramping the arm_sdk weight down" if self.mode == "arm_sdk" else "damping"})')
            self._start_disabling(damping=False)
        msg = self.lowcmd
        if self.state == ESTOP:
            self.builder.damp(msg, self.mode_machine, self.ramp.weight, q=self.measured)
        elif self.state == DISABLING:
            weight = self.ramp.step(self.dt)
            if self.mode == 'lowcmd' or self.damping_disable:
                self.builder.damp(msg, self.mode_machine, weight, q=self.measured)
            else:
                self.builder.fill(msg, self.output, self.mode_machine, weight)
            done = self.ramp.done if self.mode == 'arm_sdk' else (
                time.monotonic() >= self.damp_until)
            if done:
                self.state = DISABLED
                self.get_logger().info(f'disabled: {self.lowcmd_topic} stopped')
        else:
            weight = self.ramp.step(self.dt)
            target = self.hold
            if self.command is not None:
                target = np.where(np.isnan(self.command), self.hold, self.command)
            self.output = rate_limit(self.output, self.builder.clamp(target), self.max_step)
            self.builder.fill(msg, self.output, self.mode_machine, weight)
        self.lowcmd_pub.publish(msg)
        self._tick_hands()

    def _tick_hands(self):
        """Publish each Dex3 hand's command for this period (after the body's)."""
        damping = self.state == ESTOP or (self.state == DISABLING and (
            self.mode == 'lowcmd' or self.damping_disable))
        for side, hand in self.hands.items():
            if damping:
                damp_hand(hand.msg, hand.measured)
            elif self.state == DISABLED:   # just finished disabling: release once
                if hand.output is None:
                    continue
                hand.output = None
                stop_hand(hand.msg)
            elif hand.output is None:
                continue
            else:
                if self.state == ENABLED:
                    target = np.where(np.isnan(hand.command), hand.hold, hand.command)
                    hand.output = rate_limit(hand.output, hand.clamp(target), self.max_step)
                self.builder.fill_hand(hand.msg, hand.output, side)
            self.hand_pubs[side].publish(hand.msg)


class Dex3Channel:
    """One Dex3 hand: its measured state, the latest command, the pose held and the output."""

    def __init__(self, side: str):
        """Start with nothing measured or commanded."""
        self.side = side
        self.lower, self.upper = DEX3_LOWER[side], DEX3_UPPER[side]
        self.measured = self.velocity = self.effort = None
        self.stamp = None
        self.command = np.full(DEX3_NUM_MOTORS, np.nan)
        self.hold: typing.Optional[np.ndarray] = None
        self.output: typing.Optional[np.ndarray] = None
        self.msg = HandCmd(motor_cmd=[MotorCmd() for _ in range(DEX3_NUM_MOTORS)])

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
        return np.clip(q, self.lower, self.upper)

    def latch(self, now: float, timeout_s: float) -> bool:
        """Hold the measured pose (enable); return False (and command nothing) if stale."""
        self.command[:] = np.nan
        if not self.fresh(now, timeout_s):
            self.hold = self.output = None
            return False
        self.hold = self.clamp(self.measured)
        self.output = self.hold.copy()
        return True


def main(args=None):
    """Run the bridge; on SIGINT/SIGTERM ramp down before exiting (a second signal: at once)."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signals = []
    previous = {s: signal.signal(s, lambda signum, frame: signals.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    node, code = None, 0
    try:
        node = G1BridgeNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        deadline = None
        while rclpy.ok() and not node.finished:
            executor.spin_once(timeout_sec=0.05)
            if signals and deadline is None:
                node.request_shutdown()
                deadline = time.monotonic() + node.p['ramp_down_s'] + 2.0
            if deadline is not None and (len(signals) > 1 or time.monotonic() > deadline):
                break
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ValueError as exc:   # invalid parameters
        print(f'g1_bridge: {exc}', flush=True)
        code = 2
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == '__main__':
    raise SystemExit(main())
