"""
``g1_bridge``: the suite's joint commands to a Unitree G1 (unitree_hg/LowCmd), its state back.

* ``/lowstate`` (``unitree_hg/LowState``, best effort) -> ``/joint_states`` (every body joint of
  the G1 description, by motor slot, plus each Dex3 hand while its state is fresh) and ``/imu``
  (LowState's quaternion is w, x, y, z) at ``joint_state_rate_hz``: every LowState (500 Hz on the
  robot) feeds the control loop and the watchdog, but three Python consumers of 500 Hz
  JointState cost more CPU than the 15 Hz policy and the executor gain from it.
* ``/dit4dit/joint_command`` (``sensor_msgs/JointState``, positions by name; an unknown name, a
  length mismatch or a non-finite value is refused whole) -> ``/arm_sdk`` (waist and arms, blended
  by the weight in slot 29) or ``/lowcmd`` (whole body) at ``rate_hz``, clamped to the
  description's limits and moved at most its ``max_velocity`` per tick; joints without a command
  hold the pose measured at enable. ``mode_machine`` is echoed from LowState, the CRC is set;
  with ``gravity_compensation`` each waist/arm target carries its gravity torque as ``tau``.
  Dex3 joints go to ``/dex3/<side>/cmd`` (``HandCmd``) for the ``hands`` chosen.
* ``~/enable``, ``~/disable``, ``~/estop`` (``std_srvs/Trigger``) and the LowState watchdog drive
  the state machine of ``dit4dit_g1.bridge``; nothing is published before the first LowState nor
  before ``~/enable``.
* Joints, limits, gains, ramp times and Dex3 tables all come from the G1 description
  (``description``, default ``g1_29dof_dex3``); the parameters below choose only the mode, rate,
  hands and timeouts. On SIGINT/SIGTERM (one, two, or from ``ros2 launch``) the process ramps
  the arm_sdk weight down (lowcmd: damps) before it exits (``dit4dit_common.runner``).
"""

import time

from dit4dit_common import topics
from dit4dit_common.params import declare, Param
from dit4dit_common.runner import run_node
from dit4dit_common.services import answer_trigger
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Imu, JointState
from std_srvs.srv import Trigger
from unitree_hg.msg import HandCmd, HandState, LowCmd, LowState, MotorCmd

from ..bridge import BridgeConfig, BridgeCore, HANDS
from ..description import DEFAULT, DEX3_NUM_MOTORS, load_description, NUM_BODY_MOTORS
from ..gravity import GravityModel
from ..lowcmd import ARM_SDK_MOTORS, MODES

MAX_RATE_HZ = 500.0
COMMAND_QOS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
LOWSTATE_QOS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                          reliability=ReliabilityPolicy.BEST_EFFORT,
                          durability=DurabilityPolicy.VOLATILE)

PARAMETERS = (
    Param('description', DEFAULT, 'G1 description: a packaged name (dit4dit_g1/config) or a '
          'YAML path. Joints, limits, gains, ramps and Dex3 tables come from it.'),
    Param('control_mode', 'arm_sdk', 'arm_sdk (/arm_sdk, waist and arms blended into the '
          'walking controller by a weight) or lowcmd (/lowcmd, whole body; the motion controller '
          'must be released and the robot supported).', choices=MODES),
    Param('rate_hz', 250.0, 'LowCmd publishing rate [Hz].', low=1.0, high=MAX_RATE_HZ),
    Param('hands', 'none', 'Dex3 hands to read and command on /dex3/<side>/state|cmd.',
          choices=tuple(HANDS)),
    Param('joint_state_rate_hz', 100.0, 'Republish LowState as joint_states and imu at most this '
          'often [Hz] (each LowState still reaches the control loop).', low=1.0,
          high=MAX_RATE_HZ),
    Param('gravity_compensation', True, 'Send the gravity torque of the measured pose as '
          'feed-forward tau of each waist/arm motor (MuJoCo Menagerie G1 model, pelvis '
          'orientation from the IMU; at most half the torque limit), as xr_teleoperate does. '
          'false: PD targets only (the arms sag by a few cm at the default gains).'),
    Param('imu_frame_id', 'imu_in_pelvis', 'frame_id of the Imu messages (the pelvis IMU).'),
    Param('lowstate_timeout_s', 0.1, 'Disable (ramp down / damp) if no LowState arrives for this '
          'long while enabled [s].', low=1e-3, high=60.0),
    Param('hand_state_timeout_s', 0.5, 'Leave a hand out of joint_states if its HandState is '
          'older than this [s].', low=1e-3, high=60.0),
)


class G1BridgeNode(Node):
    """The G1 bridge (see the module docstring)."""

    def __init__(self, **kwargs):
        """Declare parameters, load the description, build the core, topics and timer."""
        super().__init__('g1_bridge', **kwargs)
        p = self.p = declare(self, PARAMETERS)
        self.description = load_description(p['description'])
        self.core = BridgeCore(self.description, BridgeConfig(
            mode=p['control_mode'], rate_hz=p['rate_hz'], hands=p['hands'],
            lowstate_timeout_s=p['lowstate_timeout_s'],
            hand_state_timeout_s=p['hand_state_timeout_s']), log=self._log,
            gravity=self._gravity_model() if p['gravity_compensation'] else None)
        self.shutdown_budget_s = self.core.shutdown_budget_s
        self.lowcmd = LowCmd()
        self.hand_msgs = {side: HandCmd(motor_cmd=[MotorCmd() for _ in range(DEX3_NUM_MOTORS)])
                          for side in self.core.hands}
        self.hand_pubs = {side: self.create_publisher(HandCmd, topics.dex3(side, 'cmd'),
                                                      COMMAND_QOS)
                          for side in self.core.hands}
        for side in self.core.hands:
            self.create_subscription(
                HandState, topics.dex3(side, 'state'),
                lambda msg, side=side: self.on_hand_state(side, msg), LOWSTATE_QOS)
        self.lowcmd_topic = topics.name(p['control_mode'])
        self.lowcmd_pub = self.create_publisher(LowCmd, self.lowcmd_topic, COMMAND_QOS)
        self.joint_state_pub = self.create_publisher(JointState, topics.name('joint_states'), 10)
        self.imu_pub = self.create_publisher(Imu, topics.name('imu'), 10)
        self.create_subscription(LowState, topics.name('lowstate'), self.on_lowstate,
                                 LOWSTATE_QOS)
        self.create_subscription(JointState, topics.name('joint_command'), self.on_command,
                                 COMMAND_QOS)
        self.create_service(Trigger, '~/enable', self._on_enable)
        self.create_service(Trigger, '~/disable', self._on_disable)
        self.create_service(Trigger, '~/estop', self._on_estop)
        self.timer = self.create_timer(self.core.dt, self.tick)
        self.joint_state_period = 1.0 / p['joint_state_rate_hz']
        self.next_joint_state = 0.0
        d = self.description
        hands = f' + Dex3 {p["hands"]}' if self.core.hands else ''
        self.get_logger().info(
            f'g1_bridge ({d.profile.name}): {len(self.core.names)} joints{hands} -> '
            f'{self.lowcmd_topic} at {p["rate_hz"]:.0f} Hz, velocity cap {d.max_velocity:.2f} '
            f'rad/s, ramps {d.ramp_up_s:g}/{d.ramp_down_s:g} s; waiting for /lowstate and '
            '~/enable')

    def _gravity_model(self) -> GravityModel:
        """Return the gravity model of the commanded waist/arm motors (or raise, saying why)."""
        d = self.description
        try:
            return GravityModel(d.body_names, ARM_SDK_MOTORS, d.effort)
        except (ImportError, RuntimeError, ValueError) as exc:
            raise RuntimeError(f'gravity_compensation: {exc} (or set gravity_compensation:=false '
                               'to send PD targets only)') from exc

    def _log(self, level: str, text: str):
        # one call site per severity: rclpy refuses a site that changes its severity
        if level == 'error':
            self.get_logger().error(text)
        elif level == 'warn':
            self.get_logger().warn(text)
        else:
            self.get_logger().info(text)

    @property
    def state(self) -> str:
        """Return the state of the core (disabled, enabled, disabling, estop)."""
        return self.core.state

    @property
    def finished(self) -> bool:
        """Return True once a requested shutdown has completed its ramp down."""
        return self.core.finished

    # -- inputs --------------------------------------------------------------------------------
    def on_lowstate(self, msg: LowState):
        """Pass the measured pose to the core; publish joint_states and imu."""
        motors = msg.motor_state
        now = time.monotonic()
        self.core.on_lowstate([motors[i].q for i in range(NUM_BODY_MOTORS)], msg.mode_machine,
                              now, msg.imu_state.quaternion)
        if now < self.next_joint_state:
            return
        due = self.next_joint_state + self.joint_state_period       # on the grid, no drift
        self.next_joint_state = due if due > now else now + self.joint_state_period
        slots = range(NUM_BODY_MOTORS)
        name = list(self.description.body_names)
        position = [float(motors[i].q) for i in slots]
        velocity = [float(motors[i].dq) for i in slots]
        effort = [float(motors[i].tau_est) for i in slots]
        for hand in self.core.fresh_hands(now):
            name += hand.hand.names
            position += hand.measured.tolist()
            velocity += hand.velocity.tolist()
            effort += hand.effort.tolist()
        js = JointState(name=name, position=position, velocity=velocity, effort=effort)
        stamp = self.get_clock().now().to_msg()
        js.header.stamp = stamp
        self.joint_state_pub.publish(js)
        imu = Imu()
        imu.header.stamp = stamp
        imu.header.frame_id = self.p['imu_frame_id']
        w, x, y, z = (float(v) for v in msg.imu_state.quaternion)
        imu.orientation.x, imu.orientation.y, imu.orientation.z, imu.orientation.w = x, y, z, w
        gyro, acc = msg.imu_state.gyroscope, msg.imu_state.accelerometer
        imu.angular_velocity.x, imu.angular_velocity.y, imu.angular_velocity.z = (
            float(gyro[0]), float(gyro[1]), float(gyro[2]))
        imu.linear_acceleration.x, imu.linear_acceleration.y, imu.linear_acceleration.z = (
            float(acc[0]), float(acc[1]), float(acc[2]))
        self.imu_pub.publish(imu)

    def on_hand_state(self, side: str, msg: HandState):
        """Pass a Dex3 hand's measured joints to the core (refused: too few motors, a NaN)."""
        motors = msg.motor_state
        reason = self.core.on_hand_state(side, [m.q for m in motors], [m.dq for m in motors],
                                         [m.tau_est for m in motors], time.monotonic())
        if reason:
            self.get_logger().warn(f'{topics.dex3(side, "state")} refused: {reason}',
                                   throttle_duration_sec=2.0)

    def on_command(self, msg: JointState):
        """Pass a joint command to the core; log why it was refused."""
        reason = self.core.on_command(list(msg.name), list(msg.position))
        if reason:
            self.get_logger().warn(f'joint_command refused: {reason}', throttle_duration_sec=2.0)

    # -- services ------------------------------------------------------------------------------
    def _service(self, action, response):
        answer_trigger(action, response)
        self.get_logger().info(f'{action.__name__}: {response.message}')
        return response

    def enable(self) -> str:
        """Latch the measured pose and track commands (``~/enable``)."""
        return self.core.enable(time.monotonic())

    def disable(self) -> str:
        """Ramp down or damp, then stop publishing (``~/disable``)."""
        return self.core.disable(time.monotonic())

    def estop(self) -> str:
        """Damp every joint until ``~/enable`` (``~/estop``)."""
        return self.core.estop()

    def _on_enable(self, request, response):
        return self._service(self.enable, response)

    def _on_disable(self, request, response):
        return self._service(self.disable, response)

    def _on_estop(self, request, response):
        return self._service(self.estop, response)

    def request_shutdown(self):
        """Begin the shutdown ramp down (the runner spins until ``finished``)."""
        self.core.request_shutdown(time.monotonic())

    # -- control loop --------------------------------------------------------------------------
    def tick(self):
        """Publish this period's LowCmd and HandCmds (or none)."""
        publish, sides = self.core.tick(time.monotonic(), self.lowcmd, self.hand_msgs)
        if publish:
            self.lowcmd_pub.publish(self.lowcmd)
        for side in sides:
            self.hand_pubs[side].publish(self.hand_msgs[side])


def main(args=None):
    """Run the bridge; on SIGINT/SIGTERM ramp down before exiting, whatever the signals."""
    return run_node(G1BridgeNode, args, name='g1_bridge')


if __name__ == '__main__':
    raise SystemExit(main())
