"""
``action_executor``: streams joint targets from action chunks at the control rate, safely.

A control-rate timer (up to 500 Hz) asks the ROS-free ``ChunkExecutor`` for the target of "now"
(latency-aware against each chunk's observation stamp, with a named, logged transition strategy),
passes it through the ``SafetyFilter`` (position limits, per-tick velocity and acceleration) and
publishes ``sensor_msgs/JointState`` on ``joint_command``. With no valid action it holds the last
command; it never replays stale actions.

State machine (``dit4dit_msgs/ExecutorStatus``): DISABLED -> ``~/enable`` -> RAMPING_IN (from the
measured pose onto the policy over ``ramp_in_s``) -> RUNNING; HOLDING when nothing valid is left,
on ``~/hold``, or when a watchdog fires (joint states or policy chunks too old); ``~/estop`` stops
all commands, asks the bridge to damp, and stays until ``~/enable``.

With ``episode_events`` (simulation, episodic evaluation) the node follows ``episode_event``
(``dit4dit_msgs/EpisodeEvent``): a START forgets every chunk, refuses chunks observed before it,
and re-enables (ramping from the measured pose) on the first joint state of the new episode; an
end disables (no command until the next START).
"""

import time

from dit4dit_msgs.msg import EpisodeEvent, ExecutorStatus
import numpy as np
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from .spin import declare_parameters, run_node
from ..runtime.chunk_executor import Chunk, ChunkExecutor, ExecutorConfig
from ..runtime.robot_profile import load_profile
from ..runtime.safety import JointLimits, SafetyFilter

PARAMETERS = (
    ('profile', 'g1_29dof_dex3', 'Robot profile: a name in dit4dit_bringup/config or a path.'),
    ('joints', [''], 'Joints to command, in order ([""]: the profile policy joints).'),
    ('control_rate_hz', 250.0, 'Control loop rate (1-500 Hz).'),
    ('strategy', 'crossfade', 'Chunk transition: replace, crossfade or rtc.'),
    ('crossfade_s', 0.1, 'Cross-fade duration of the crossfade strategy [s].'),
    ('max_chunk_age_s', 1.0, 'Refuse chunks whose observation is older than this on arrival.'),
    ('policy_timeout_s', 0.5, 'Hold if no new chunk arrived for this long (policy watchdog).'),
    ('max_observation_age_s', 0.25, 'Hold if joint states are older than this (watchdog).'),
    ('ramp_in_s', -1.0, 'Enable ramp duration [s] (<0: from the profile).'),
    ('auto_enable', False, 'Enable at start (simulation); on a robot, call ~/enable.'),
    ('estop_service', '/g1_bridge/estop', 'Trigger service that damps the robot on e-stop ("": '
     'none, simulation).'),
    ('episode_events', False, 'Follow episode_event: re-enable at each START, hold at each end '
     '(simulation).'),
)


class ActionExecutorNode(Node):
    """The action executor (see the module docstring)."""

    def __init__(self, **kwargs):
        """Declare and validate parameters, build the core objects, start the timer."""
        super().__init__('action_executor', **kwargs)
        p = declare_parameters(self, PARAMETERS)
        if not 1.0 <= p['control_rate_hz'] <= 500.0:
            raise ValueError(f'control_rate_hz {p["control_rate_hz"]} must be in [1, 500]')
        profile = load_profile(p['profile'])
        self.joints = [j for j in p['joints'] if j] or list(profile.policy_joints)
        arrays = profile.arrays(self.joints)
        vel, acc = profile.execution_limits(self.joints)
        self.dt = 1.0 / p['control_rate_hz']
        self.limits = JointLimits(list(self.joints), arrays['lower'], arrays['upper'], vel, acc)
        self.safety = SafetyFilter(self.limits, self.dt)
        self.chunks = ChunkExecutor(len(self.joints), ExecutorConfig(
            strategy=p['strategy'], crossfade_s=p['crossfade_s'],
            max_chunk_age_s=p['max_chunk_age_s']))
        ramp = p['ramp_in_s'] if p['ramp_in_s'] >= 0 else profile.execution.get('ramp_in_s', 2.0)
        self.p, self.ramp_s = p, ramp
        self.state = ExecutorStatus.STATE_DISABLED
        self.message = ''
        self.measured = self.measured_stamp = None
        self.last_chunk_time = None
        self.ramp_start = self.ramp_from = None
        self.period_error = 0.0
        self._last_tick = None
        self.command_pub = self.create_publisher(JointState, 'joint_command', 10)
        self.status_pub = self.create_publisher(ExecutorStatus, '~/status', 10)
        self.create_subscription(JointTrajectory, 'action_chunk', self._on_chunk, 10)
        self.create_subscription(JointState, 'joint_states', self._on_joints,
                                 qos_profile_sensor_data)
        self.create_service(Trigger, '~/enable', self._on_enable)
        self.create_service(Trigger, '~/hold', self._on_hold)
        self.create_service(Trigger, '~/estop', self._on_estop)
        self.estop_client = self.create_client(Trigger, p['estop_service']) \
            if p['estop_service'] else None     # '' (simulation): nothing to damp
        self.episode_start = None     # stamp [s] of the START whose first joint state is awaited
        if p['episode_events']:
            self.create_subscription(EpisodeEvent, 'episode_event', self._on_episode, 10)
        self.create_timer(self.dt, self.tick)
        self.create_timer(0.1, self.publish_status)
        self._auto_enable = p['auto_enable']
        self.get_logger().info(
            f'executor: {len(self.joints)} joints at {p["control_rate_hz"]:.0f} Hz, strategy '
            f'{p["strategy"]}, velocity cap {vel.max():.2f} rad/s')

    # -- inputs ------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_joints(self, msg: JointState):
        lookup = {n: i for i, n in enumerate(msg.name)}
        if any(j not in lookup for j in self.joints) or len(msg.position) != len(msg.name):
            self.get_logger().warn('joint_states lack commanded joints', throttle_duration_sec=2)
            return
        q = np.array([msg.position[lookup[j]] for j in self.joints])
        if not np.all(np.isfinite(q)):
            self.get_logger().warn('joint_states contain NaN', throttle_duration_sec=2)
            return
        self.measured, self.measured_stamp = q, self._now()
        if self.episode_start is not None:
            if _seconds(msg.header.stamp) < self.episode_start:
                return                # still the previous episode's pose
            self.episode_start = None
            self._auto_enable = True
        if self._auto_enable and self.state == ExecutorStatus.STATE_DISABLED:
            self._auto_enable = False
            self.enable()

    def _on_chunk(self, msg: JointTrajectory):
        now = self._now()
        try:
            chunk = chunk_from_trajectory(msg, self.joints)
        except ValueError as exc:
            self.get_logger().warn(f'chunk refused: {exc}', throttle_duration_sec=1)
            return
        line = self.chunks.submit(chunk, now)
        if not line.startswith('refused'):
            self.last_chunk_time = now
        self.get_logger().debug(line)

    def _on_episode(self, msg: EpisodeEvent):
        if msg.event == EpisodeEvent.START:
            start = _seconds(msg.header.stamp)
            self.chunks.reset(not_before=start)
            self.last_chunk_time = None
            self.episode_start = start
            self._set(ExecutorStatus.STATE_DISABLED, f'episode {msg.episode_index} starting')
        elif self.state != ExecutorStatus.STATE_ESTOP:
            # The episode ended: publish nothing until the next START. A held pose would still
            # be on its way when the simulator resets and drag the arm back to where it was.
            self._set(ExecutorStatus.STATE_DISABLED, f'episode {msg.episode_index} ended')

    # -- services ----------------------------------------------------------------------------
    def enable(self) -> str:
        """Start ramping in from the measured pose; return a message (or raise if impossible)."""
        if self.measured is None:
            raise RuntimeError('no joint states yet')
        self.safety.reset(self.measured)
        self.ramp_start, self.ramp_from = self._now(), self.safety.command.copy()
        self._set(ExecutorStatus.STATE_RAMPING_IN, '')
        return f'ramping in over {self.ramp_s:.1f} s'

    def _on_enable(self, request, response):
        try:
            response.message = self.enable()
            response.success = True
        except RuntimeError as exc:
            response.success, response.message = False, str(exc)
        return response

    def _on_hold(self, request, response):
        if self.state in (ExecutorStatus.STATE_DISABLED, ExecutorStatus.STATE_ESTOP):
            response.success, response.message = False, 'not enabled'
        else:
            self._set(ExecutorStatus.STATE_HOLDING, 'hold requested')
            response.success, response.message = True, 'holding'
        return response

    def _on_estop(self, request, response):
        self._set(ExecutorStatus.STATE_ESTOP, 'e-stop')
        if self.estop_client is not None and self.estop_client.service_is_ready():
            self.estop_client.call_async(Trigger.Request())
        response.success, response.message = True, 'e-stop: commands stopped, damping requested'
        return response

    def _set(self, state, message):
        if state != self.state:
            self.get_logger().info(f'state {self.state} -> {state} {message}'.strip())
        self.state, self.message = state, message

    # -- control loop ------------------------------------------------------------------------
    def tick(self):
        """Compute and publish one command (or none) for this control period."""
        wall = time.monotonic()
        if self._last_tick is not None:
            self.period_error = abs((wall - self._last_tick) - self.dt)
        self._last_tick = wall
        if self.state in (ExecutorStatus.STATE_DISABLED, ExecutorStatus.STATE_ESTOP):
            return
        now = self._now()
        reason = self._watchdog(now)
        target = None if reason else self.chunks.target(now)
        if self.state == ExecutorStatus.STATE_RAMPING_IN and not reason:
            alpha = min(1.0, (now - self.ramp_start) / max(self.ramp_s, 1e-6))
            goal = target if target is not None else self.ramp_from
            target = (1 - alpha) * self.ramp_from + alpha * goal
            if alpha >= 1.0:
                self._set(ExecutorStatus.STATE_RUNNING, '')
        elif reason:
            self._set(ExecutorStatus.STATE_HOLDING, reason)
        elif self.state == ExecutorStatus.STATE_HOLDING and self.message == 'hold requested':
            target = None
        elif target is None:
            self._set(ExecutorStatus.STATE_HOLDING, 'no valid action left')
        else:
            self._set(ExecutorStatus.STATE_RUNNING, '')
        command = self.safety.apply(target if target is not None else self.safety.command)
        msg = JointState(name=list(self.joints), position=[float(v) for v in command])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.command_pub.publish(msg)

    def _watchdog(self, now):
        if self.measured_stamp is None or now - self.measured_stamp > \
                self.p['max_observation_age_s']:
            return 'watchdog: joint states too old'
        if self.last_chunk_time is None:
            # Ramping in may start before the first chunk (it blends toward the measured pose).
            return '' if self.state == ExecutorStatus.STATE_RAMPING_IN else \
                'watchdog: no chunk from the policy'
        if now - self.last_chunk_time > self.p['policy_timeout_s']:
            return 'watchdog: no chunk from the policy'      # in every state, ramp-in included
        return ''

    def publish_status(self):
        """Publish the ExecutorStatus."""
        msg = ExecutorStatus(state=self.state, transition_strategy=self.p['strategy'],
                             chunk_index=max(0, int(self.chunks.current_index)),
                             dropped_actions=int(self.chunks.dropped_actions),
                             clamped_targets=int(sum(self.safety.counters.values())),
                             control_period_error_s=float(self.period_error),
                             message=self.message)
        msg.header.stamp = self.get_clock().now().to_msg()
        if self.last_chunk_time is not None:
            msg.chunk_age_s = float(self._now() - self.last_chunk_time)
        self.status_pub.publish(msg)


def _seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def chunk_from_trajectory(msg: JointTrajectory, joints) -> Chunk:
    """Return a policy JointTrajectory as a Chunk in ``joints`` order; ValueError if unusable."""
    lookup = {n: i for i, n in enumerate(msg.joint_names)}
    missing = [j for j in joints if j not in lookup]
    if missing:
        raise ValueError(f'chunk lacks joints {", ".join(missing[:4])}')
    if len(msg.points) < 1:
        raise ValueError('chunk has no points')
    cols = [lookup[j] for j in joints]
    rows = []
    for point in msg.points:
        if len(point.positions) != len(msg.joint_names):
            raise ValueError('a point has the wrong number of positions')
        rows.append([point.positions[c] for c in cols])
    times = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points]
    dt = (times[1] - times[0]) if len(times) > 1 else 1.0 / 30.0
    stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9 + times[0]
    return Chunk(stamp=stamp, dt=dt, positions=np.array(rows, dtype=np.float64))


def main(args=None):
    """Run the node (``ros2 run dit4dit_policy action_executor``)."""
    return run_node(ActionExecutorNode, args)


if __name__ == '__main__':
    main()
