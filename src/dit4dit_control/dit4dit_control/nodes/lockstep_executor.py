"""
``lockstep_executor``: one action of the current chunk per observation, for lockstep simulators.

Wraps ``dit4dit_control.lockstep.LockstepExecutor``. Each ``/joint_states`` message is an
observation: if the current chunk (``/dit4dit/action_chunk``) has the action due at its stamp, it
is published on ``/dit4dit/joint_command`` stamped like the observation, which lets
``sim_bridge`` in ``lockstep`` take its next step; otherwise nothing is published and the
simulation waits for the policy's next chunk. Nothing is ever held or repeated, so it also runs
commands that are not positions (LIBERO's OSC deltas). For simulation only: on a robot the
``action_executor`` streams targets through the safety filter at the control rate.

With ``episode_events`` it forgets the chunk at every episode START and end
(``/dit4dit/episode_event``). ``dit4dit_msgs/ExecutorStatus`` on ``/dit4dit/executor_status``
shows the state (RUNNING when the newest observation was answered, HOLDING while it waits for a
chunk) and the counters.
"""

from dit4dit_common import stamps, topics
from dit4dit_common.params import declare, Param
from dit4dit_common.runner import run_node
from dit4dit_msgs.msg import EpisodeEvent, ExecutorStatus
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from ..lockstep import LockstepExecutor

PARAMETERS = (
    Param('joints', [''], 'Joints (or command names) every chunk commands, in the order '
          'published (required).'),
    Param('lower', -1.0, 'Commands are clipped to [lower, upper] (LIBERO: -1).'),
    Param('upper', 1.0, 'Commands are clipped to [lower, upper] (LIBERO: 1).'),
    Param('episode_events', True, 'Follow /dit4dit/episode_event: forget the chunk at every '
          'START and end.'),
)


class LockstepExecutorNode(Node):
    """See the module docstring."""

    def __init__(self, **kwargs):
        """Declare and validate parameters, wire topics."""
        super().__init__('lockstep_executor', **kwargs)
        p = self.p = declare(self, PARAMETERS)
        joints = [j for j in p['joints'] if j]
        if not joints:
            raise ValueError('parameter joints is required (the commands every chunk names)')
        self.core = LockstepExecutor(joints, p['lower'], p['upper'])
        self.observation_stamp = None
        self.command_pub = self.create_publisher(JointState, topics.name('joint_command'), 10)
        self.status_pub = self.create_publisher(ExecutorStatus, topics.name('executor_status'),
                                                10)
        self.create_subscription(JointTrajectory, topics.name('action_chunk'), self._on_chunk,
                                 10)
        self.create_subscription(JointState, topics.name('joint_states'), self._on_joints,
                                 qos_profile_sensor_data)
        if p['episode_events']:
            self.create_subscription(EpisodeEvent, topics.name('episode_event'),
                                     self._on_episode, 10)
        self.create_timer(0.5, self.publish_status)
        self.get_logger().info(f'lockstep executor: {len(joints)} commands, one action per '
                               'observation')

    def _on_joints(self, msg: JointState):
        t = stamps.to_seconds(msg.header.stamp)
        if self.core.observed is None or t > self.core.observed:
            self.observation_stamp = msg.header.stamp   # what a command answers, exactly
        self._publish(self.core.on_observation(t))

    def _on_chunk(self, msg: JointTrajectory):
        if not msg.points:
            self.core.refused += 1
            self.core.last_refusal = 'chunk has no points'
        else:
            times = [stamps.to_seconds(p.time_from_start) for p in msg.points]
            # a one-action chunk answers the observation it was computed from, no later one
            dt = times[1] - times[0] if len(times) > 1 else 1e-3
            try:
                rows = [list(p.positions) for p in msg.points]
                command = self.core.on_chunk(msg.joint_names, rows,
                                             stamps.to_seconds(msg.header.stamp) + times[0], dt)
            except ValueError as exc:            # ragged rows
                self.core.refused += 1
                self.core.last_refusal = f'chunk positions: {exc}'
                command = None
            self._publish(command)
        if self.core.last_refusal:
            self.get_logger().warn(f'chunk refused: {self.core.last_refusal}',
                                   throttle_duration_sec=1.0)

    def _on_episode(self, msg: EpisodeEvent):
        if msg.event == EpisodeEvent.START:
            self.core.episode_started(stamps.to_seconds(msg.header.stamp))
        else:
            self.core.episode_ended()

    def _publish(self, command):
        if command is None:
            return
        msg = JointState(name=list(self.core.joints), position=[float(v) for v in command])
        msg.header.stamp = self.observation_stamp
        self.command_pub.publish(msg)

    def publish_status(self):
        """Publish the ExecutorStatus."""
        core = self.core
        waiting = core.observed is None or core.observed != core.answered
        msg = ExecutorStatus(
            state=ExecutorStatus.STATE_HOLDING if waiting else ExecutorStatus.STATE_RUNNING,
            transition_strategy='lockstep', chunk_index=core.chunks,
            refused_chunks=core.refused, clamped_targets=core.clipped,
            message=core.last_refusal or ('waiting for a chunk' if waiting else ''))
        msg.header.stamp = self.get_clock().now().to_msg()
        self.status_pub.publish(msg)


def main(args=None):
    """Run the node (``ros2 run dit4dit_control lockstep_executor``)."""
    return run_node(LockstepExecutorNode, args, name='lockstep_executor')


if __name__ == '__main__':
    raise SystemExit(main())
