"""
``action_executor``: streams joint targets from action chunks at the control rate, safely.

A control-rate timer (up to 500 Hz) asks the ROS-free ``ExecutorCore`` (``dit4dit_control.
executor``) for the target of "now": latency-aware chunk scheduling with a named, logged transition
strategy, then the safety filter (position limits, per-tick velocity and acceleration from the
robot profile). It publishes ``sensor_msgs/JointState`` on ``/dit4dit/joint_command``; with no
valid action it holds the last command and never replays stale actions.

Chunks (``trajectory_msgs/JointTrajectory`` on ``/dit4dit/action_chunk``) may command any subset
of ``joints``; the rest hold. The state machine and why chunks are refused are published as
``dit4dit_msgs/ExecutorStatus`` on ``/dit4dit/executor_status``. Services: ``~/enable``,
``~/hold``, ``~/estop`` (which also asks ``estop_service``, the bridge, to damp). With
``episode_events`` (simulation) it follows ``/dit4dit/episode_event`` (see the core).
"""

import time

from dit4dit_common import stamps, topics
from dit4dit_common.params import declare, Param
from dit4dit_common.robot_profile import load_profile
from dit4dit_common.runner import run_node
from dit4dit_common.services import answer_trigger
from dit4dit_msgs.msg import EpisodeEvent, ExecutorStatus
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from ..chunk_executor import ExecutorConfig, STRATEGIES
from ..executor import ExecutorCore, ExecutorSettings
from ..safety import JointLimits

DEFAULT_ACTION_PERIOD_S = 1.0 / 30.0     # a one-point chunk carries no period of its own

PARAMETERS = (
    Param('profile', '', 'Robot profile YAML (joints, limits, execution caps); the G1 one is '
          'dit4dit_g1/config/g1_29dof_dex3.yaml.'),
    Param('joints', [''], 'Joints to command, in order ([""]: the profile policy joints). '
          'Chunks may command any subset; the others hold.'),
    Param('control_rate_hz', 250.0, 'Control loop rate [Hz].', low=1.0, high=500.0),
    Param('strategy', 'crossfade', 'Chunk transition strategy.', choices=tuple(STRATEGIES)),
    Param('crossfade_s', 0.1, 'Cross-fade duration of the crossfade strategy [s].', low=0.0,
          high=10.0),
    Param('max_chunk_age_s', 1.0, 'Refuse chunks whose observation is older than this on '
          'arrival [s].', low=1e-3, high=60.0),
    Param('policy_timeout_s', 0.5, 'Hold if no new chunk arrived for this long (policy '
          'watchdog) [s].', low=1e-3, high=60.0),
    Param('max_observation_age_s', 0.25, 'Hold if joint states are older than this '
          '(watchdog) [s].', low=1e-3, high=60.0),
    Param('ramp_in_s', -1.0, 'Enable ramp duration [s] (< 0: the profile ramp_in_s).',
          low=-1.0, high=60.0),
    Param('auto_enable', False, 'Enable by itself at the first joint state and at each episode '
          'START (simulation, no operator); on a robot, call ~/enable.'),
    Param('estop_service', '/g1_bridge/estop', 'Trigger service that damps the robot on e-stop '
          '("": none, simulation).'),
    Param('episode_events', False, 'Follow /dit4dit/episode_event: forget chunks and stop at '
          'each START (re-enabled by auto_enable or ~/enable), go silent at each end.'),
)


class ActionExecutorNode(Node):
    """The action executor (see the module docstring)."""

    def __init__(self, **kwargs):
        """Declare and validate parameters, build the core, wire topics, start the timers."""
        super().__init__('action_executor', **kwargs)
        p = self.p = declare(self, PARAMETERS)
        if not p['profile']:
            raise ValueError('parameter profile is required (the path of a robot profile YAML)')
        profile = load_profile(p['profile'])
        joints = [j for j in p['joints'] if j] or list(profile.policy_joints)
        arrays = profile.arrays(joints)
        vel, acc = profile.execution_limits(joints)
        ramp = p['ramp_in_s'] if p['ramp_in_s'] >= 0 else profile.execution['ramp_in_s']
        self.core = ExecutorCore(
            JointLimits(joints, arrays['lower'], arrays['upper'], vel, acc),
            ExecutorSettings(control_rate_hz=p['control_rate_hz'], ramp_in_s=ramp,
                             policy_timeout_s=p['policy_timeout_s'],
                             max_observation_age_s=p['max_observation_age_s']),
            ExecutorConfig(strategy=p['strategy'], crossfade_s=p['crossfade_s'],
                           max_chunk_age_s=p['max_chunk_age_s']))
        self.joints = self.core.joints
        self.core.auto_enable = p['auto_enable']
        self.period_error = 0.0
        self._last_tick = None
        self.command_pub = self.create_publisher(JointState, topics.name('joint_command'), 10)
        self.status_pub = self.create_publisher(ExecutorStatus, topics.name('executor_status'),
                                                10)
        self.create_subscription(JointTrajectory, topics.name('action_chunk'), self._on_chunk,
                                 10)
        self.create_subscription(JointState, topics.name('joint_states'), self._on_joints,
                                 qos_profile_sensor_data)
        self.create_service(Trigger, '~/enable', self._on_enable)
        self.create_service(Trigger, '~/hold', self._on_hold)
        self.create_service(Trigger, '~/estop', self._on_estop)
        self.estop_client = self.create_client(Trigger, p['estop_service']) \
            if p['estop_service'] else None     # '' (simulation): nothing to damp
        if p['episode_events']:
            self.create_subscription(EpisodeEvent, topics.name('episode_event'),
                                     self._on_episode, 10)
        self.create_timer(self.core.dt, self.tick)
        self.create_timer(0.1, self.publish_status)
        self.get_logger().info(
            f'executor ({profile.name}): {len(joints)} joints at {p["control_rate_hz"]:.0f} Hz, '
            f'strategy {p["strategy"]}, velocity cap {vel.max():.2f} rad/s')

    @property
    def state(self) -> int:
        """Return the ExecutorStatus state."""
        return self.core.state

    # -- inputs ------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_joints(self, msg: JointState):
        reason = self.core.on_joints(list(msg.name), list(msg.position),
                                     stamps.to_seconds(msg.header.stamp), self._now())
        if reason:
            self.get_logger().warn(reason, throttle_duration_sec=2.0)
        self._log_transitions()

    def _on_chunk(self, msg: JointTrajectory):
        line = self._submit(msg)
        if line.startswith('refused'):
            self.get_logger().warn(f'chunk {line}', throttle_duration_sec=1.0)
        else:
            self.get_logger().debug(line)

    def _submit(self, msg: JointTrajectory) -> str:
        if not msg.points:
            return self.core.refuse('chunk has no points')
        width = len(msg.joint_names)
        if any(len(point.positions) != width for point in msg.points):
            return self.core.refuse('a point has the wrong number of positions')
        times = [stamps.to_seconds(p.time_from_start) for p in msg.points]
        dt = times[1] - times[0] if len(times) > 1 else DEFAULT_ACTION_PERIOD_S
        return self.core.on_chunk(list(msg.joint_names), [list(p.positions) for p in msg.points],
                                  stamps.to_seconds(msg.header.stamp) + times[0], dt,
                                  self._now())

    def _on_episode(self, msg: EpisodeEvent):
        if msg.event == EpisodeEvent.START:
            self.core.episode_started(stamps.to_seconds(msg.header.stamp), msg.episode_index)
        else:
            self.core.episode_ended(msg.episode_index)
        self._log_transitions()

    # -- services ----------------------------------------------------------------------------
    def _service(self, action, response):
        answer_trigger(action, response)
        self._log_transitions()
        return response

    def _on_enable(self, request, response):
        return self._service(lambda: self.core.enable(self._now()), response)

    def _on_hold(self, request, response):
        return self._service(self.core.hold, response)

    def _on_estop(self, request, response):
        def estop():
            message = self.core.estop()
            if self.estop_client is not None and self.estop_client.service_is_ready():
                self.estop_client.call_async(Trigger.Request())
                return f'{message}, damping requested from {self.p["estop_service"]}'
            return message
        return self._service(estop, response)

    def _log_transitions(self):
        for line in self.core.transitions:
            self.get_logger().info(line)
        self.core.transitions.clear()

    # -- control loop ------------------------------------------------------------------------
    def tick(self):
        """Compute and publish one command (or none) for this control period."""
        wall = time.monotonic()
        if self._last_tick is not None:
            self.period_error = abs((wall - self._last_tick) - self.core.dt)
        self._last_tick = wall
        command = self.core.tick(self._now())
        self._log_transitions()
        if command is None:
            return
        msg = JointState(name=list(self.joints), position=[float(v) for v in command])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.command_pub.publish(msg)

    def publish_status(self):
        """Publish the ExecutorStatus."""
        core = self.core
        msg = ExecutorStatus(state=core.state, transition_strategy=self.p['strategy'],
                             chunk_index=max(0, int(core.chunks.current_index)),
                             dropped_actions=int(core.chunks.dropped_actions),
                             refused_chunks=int(core.refused_chunks),
                             clamped_targets=int(sum(core.safety.counters.values())),
                             control_period_error_s=float(self.period_error),
                             message=core.message)
        msg.header.stamp = self.get_clock().now().to_msg()
        age = core.chunk_age(self._now())
        if age is not None:
            msg.chunk_age_s = float(age)
        self.status_pub.publish(msg)


def main(args=None):
    """Run the node (``ros2 run dit4dit_control action_executor``)."""
    return run_node(ActionExecutorNode, args, name='action_executor')


if __name__ == '__main__':
    raise SystemExit(main())
