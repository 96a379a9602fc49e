"""
How ``sim_bridge`` speaks to the robot side: one adapter per ``Environment.interface``.

* ``JointTopicsIO`` (``joint_topics``): the suite's own topics, ``/joint_states`` out and
  ``/dit4dit/joint_command`` in (sensor_msgs/JointState), for environments with position targets.
* ``UnitreeIO`` (``unitree_hg``): a G1's own wire, ``/lowstate`` (500 Hz, CRC set) and
  ``/dex3/<side>/state`` out, ``/lowcmd``, ``/arm_sdk`` and ``/dex3/<side>/cmd`` in, for the twin
  (``g1_twin``); the twin's motor model checks and applies the commands. Its counters of accepted
  and rejected messages, the real-time factor and the LowState rate achieved go to
  ``/diagnostics`` once a second (WARN when a message was rejected or the twin runs below 0.9 of
  real time: the robot's graph then meets a slower world than the real one).
"""

import time
import typing

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from dit4dit_common import stamps, topics
from dit4dit_g1.crc import LOWSTATE_DTYPE, lowstate_record_crc
from dit4dit_g1.description import DEX3_NUM_MOTORS, NUM_BODY_MOTORS
import numpy as np
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from unitree_hg.msg import HandCmd, HandState, LowCmd, LowState, MotorState

# Unitree's examples: rclcpp's default profile (reliable, volatile, depth 10) for commands and
# state; a best-effort reader matches it too.
TWIN_STATUS = 'dit4dit: g1_twin'      # the DiagnosticStatus name (evaluate_g1 reads it)
SLOW_RTF = 0.9                          # below: the twin cannot keep up with real time

UNITREE_QOS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)


class JointTopicsIO:
    """joint_states out, joint_command in (see the module docstring)."""

    always_on = False            # the robot side exists during episodes only
    stamped_commands = True      # lockstep can tell which observation a command answers
    objects_with_state = True    # experts pair object markers with joint states by stamp

    def __init__(self, bridge):
        """Create the publisher and the subscription on ``bridge`` (the node)."""
        self.bridge, self.env = bridge, bridge.env
        self.state_rate_hz = bridge.p['joint_state_rate_hz']
        self.names = list(self.env.joint_names)
        self.stale_commands = 0          # commands for a previous episode, dropped
        self.commanded_ns = -1           # stamp of the last command applied (lockstep)
        self.pub = bridge.create_publisher(JointState, topics.name('joint_states'), 10)
        bridge.create_subscription(JointState, topics.name('joint_command'), self.on_command, 10)

    def on_command(self, msg: JointState):
        """Apply position targets (while an episode runs); refuse a malformed message whole."""
        bridge = self.bridge
        if not bridge.running:
            return
        stamp = stamps.to_ns(msg.header.stamp)
        if stamp and stamp < bridge.episode_start_ns:
            self.stale_commands += 1
            return
        try:
            if len(msg.position) != len(msg.name):
                raise ValueError(f'{len(msg.position)} positions for {len(msg.name)} names')
            self.env.apply(list(msg.name), np.asarray(msg.position, dtype=float))
            self.commanded_ns = max(self.commanded_ns, stamp)
        except ValueError as exc:
            bridge.get_logger().warn(f'joint_command refused: {exc}', throttle_duration_sec=2.0)

    def publish_state(self, stamp):
        """Publish every joint's position and velocity."""
        msg = JointState(name=self.names, position=self.env.joint_positions().tolist(),
                         velocity=self.env.joint_velocities().tolist())
        msg.header.stamp = stamp
        self.pub.publish(msg)


class UnitreeIO:
    """LowState/HandState out, LowCmd/HandCmd in (see the module docstring)."""

    always_on = True             # the robot stands and reports between episodes too
    stamped_commands = False     # a LowCmd has no stamp: no lockstep
    objects_with_state = False

    def __init__(self, bridge):
        """Create the publishers and subscriptions for the twin on ``bridge`` (the node)."""
        self.bridge, self.env = bridge, bridge.env
        p = bridge.p
        self.state_rate_hz = p['lowstate_rate_hz']
        self.hand_every = max(1, int(round(p['lowstate_rate_hz'] / p['hand_state_rate_hz'])))
        self.count = 0
        self.record = np.zeros((), dtype=LOWSTATE_DTYPE)
        self.record['mode_machine'] = self.env.motors.config.mode_machine
        self.lowstate = LowState(mode_machine=self.env.motors.config.mode_machine)
        self.lowstate_pub = bridge.create_publisher(LowState, topics.name('lowstate'),
                                                    UNITREE_QOS)
        self.sides = tuple(self.env.description.hands)
        self.hand_msgs = {side: HandState(motor_state=[MotorState()
                                                       for _ in range(DEX3_NUM_MOTORS)])
                          for side in self.sides}
        self.hand_pubs = {side: bridge.create_publisher(HandState, topics.dex3(side, 'state'),
                                                        UNITREE_QOS) for side in self.sides}
        for key in ('lowcmd', 'arm_sdk'):
            bridge.create_subscription(LowCmd, topics.name(key),
                                       lambda msg, key=key: self.on_lowcmd(key, msg), UNITREE_QOS)
        for side in self.sides:
            bridge.create_subscription(HandCmd, topics.dex3(side, 'cmd'),
                                       lambda msg, side=side: self.on_handcmd(side, msg),
                                       UNITREE_QOS)
        self.diagnostics_pub = bridge.create_publisher(DiagnosticArray,
                                                       topics.name('diagnostics'), 10)
        self._rate_since = (time.monotonic(), self.env.clock, 0)    # wall, twin clock, LowState
        bridge.create_timer(1.0, self.publish_diagnostics)

    def on_lowcmd(self, topic: str, msg: LowCmd):
        """Pass a LowCmd to the twin's motors; warn about a refused one."""
        reason = self.env.motors.on_lowcmd(topic, msg, self.env.clock)
        if reason:
            self.bridge.get_logger().warn(
                f'/{topic} LowCmd refused ({reason}); '
                f'{self.env.motors.rejected[reason]} so far', throttle_duration_sec=2.0)

    def on_handcmd(self, side: str, msg: HandCmd):
        """Pass a HandCmd to the twin's hand motors."""
        reason = self.env.motors.on_handcmd(side, msg, self.env.clock)
        if reason:
            self.bridge.get_logger().warn(f'{topics.dex3(side, "cmd")} refused ({reason})',
                                          throttle_duration_sec=2.0)

    def publish_state(self, stamp):
        """Publish LowState (CRC set; tick: the twin's clock in ms) and, less often, HandState."""
        env, rec, msg = self.env, self.record, self.lowstate
        q, dq, tau = env.body_state()
        quat, gyro, acc, rpy = env.imu()
        tick = int(round(env.clock * 1000.0)) & 0xFFFFFFFF
        motors = rec['motor_state']
        motors['q'][:NUM_BODY_MOTORS], motors['dq'][:NUM_BODY_MOTORS] = q, dq
        motors['tau_est'][:NUM_BODY_MOTORS] = tau
        rec['tick'], rec['quaternion'], rec['gyroscope'] = tick, quat, gyro
        rec['accelerometer'], rec['rpy'] = acc, rpy
        msg.tick = tick
        msg.imu_state.quaternion = rec['quaternion'].tolist()
        msg.imu_state.gyroscope = rec['gyroscope'].tolist()
        msg.imu_state.accelerometer = rec['accelerometer'].tolist()
        msg.imu_state.rpy = rec['rpy'].tolist()
        rows = zip(motors['q'][:NUM_BODY_MOTORS].tolist(), motors['dq'][:NUM_BODY_MOTORS].tolist(),
                   motors['tau_est'][:NUM_BODY_MOTORS].tolist())
        for m, (qi, dqi, ti) in zip(msg.motor_state, rows):
            m.q, m.dq, m.tau_est = qi, dqi, ti
        msg.crc = lowstate_record_crc(rec)
        self.lowstate_pub.publish(msg)
        self.count += 1
        if self.count % self.hand_every:
            return
        for side in self.sides:
            hq, hdq, htau = env.hand_state(side)
            hand = self.hand_msgs[side]
            for m, qi, dqi, ti in zip(hand.motor_state, hq.tolist(), hdq.tolist(),
                                      htau.tolist()):
                m.q, m.dq, m.tau_est = qi, dqi, ti
            self.hand_pubs[side].publish(hand)

    def rates(self) -> typing.Dict[str, float]:
        """Return the real-time factor and LowState rate [Hz] since the last call (wall time)."""
        wall, clock, count = time.monotonic(), self.env.clock, self.count
        wall0, clock0, count0 = self._rate_since
        self._rate_since = (wall, clock, count)
        elapsed = max(wall - wall0, 1e-9)
        return {'real_time_factor': (clock - clock0) / elapsed,
                'lowstate_hz': (count - count0) / elapsed}

    def publish_diagnostics(self):
        """Publish the twin's message counters, rates and what drives the body now."""
        motors = self.env.motors
        status = DiagnosticStatus(level=DiagnosticStatus.OK, name=TWIN_STATUS,
                                  message=motors.mode, hardware_id='g1_twin')
        rates = self.rates()
        if any(motors.rejected.values()) or rates['real_time_factor'] < SLOW_RTF:
            status.level = DiagnosticStatus.WARN      # a robot does not slow down: results
            #                                           taken below real time are suspect
        status.values = [KeyValue(key=k, value=str(v)) for k, v in
                         sorted(motors.counters().items())]
        status.values += [KeyValue(key=k, value=f'{v:.3f}') for k, v in rates.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.bridge.get_clock().now().to_msg()
        self.diagnostics_pub.publish(array)


INTERFACES = {'joint_topics': JointTopicsIO, 'unitree_hg': UnitreeIO}
