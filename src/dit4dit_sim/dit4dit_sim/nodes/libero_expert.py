"""
``libero_expert``: the LIBERO pick-and-place oracle as a ROS node that commands as a policy would.

Subscribes ``/joint_states`` (the finger joints), the simulator's object markers
(``/dit4dit/objects``, ``visualization_msgs/MarkerArray``: the objects and the end effector
``eef``, privileged state as scripted experts use) and ``/dit4dit/episode_event``. On each START
of a ``libero/<suite>/<index>`` episode it takes the plan from the task's BDDL goal
(``plan_for_task``); then it answers every observation (a joint state and the markers with the
same stamp, newer than the last one answered) with one ``/dit4dit/joint_command``
(``sensor_msgs/JointState`` over the OSC action's pseudo-joints) stamped like that observation.
With ``sim_bridge`` in lockstep the environment then steps exactly as under ``run_direct``, the
oracle stepping the environment with no ROS in between.
"""

from dit4dit_common import topics
from dit4dit_common.runner import run_node
from dit4dit_common.stamps import to_ns as _ns
from dit4dit_msgs.msg import EpisodeEvent
import numpy as np
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from visualization_msgs.msg import MarkerArray

from ..envs.libero import COMMAND_NAMES
from ..experts.libero_expert import LiberoOracle, plan_for_task

FINGERS = ('panda_finger_joint1', 'panda_finger_joint2')
PARAMETERS = ()        # none: it answers each observation, at the simulator's pace


def parse_event(event: EpisodeEvent) -> str:
    """Return the LIBERO task id (``suite/index``) of a START event; ValueError otherwise."""
    env, _, task = event.task.partition('/')
    if env != 'libero' or not task:
        raise ValueError(f'not a libero task: {event.task!r}')
    return task


class LiberoExpertNode(Node):
    """See the module docstring."""

    def __init__(self, **kwargs):
        """Wire topics; the oracle is made per episode."""
        super().__init__('libero_expert', **kwargs)
        self.oracle = None
        self.start_ns = None            # START stamp of the running episode
        self.answered_ns = -1           # stamp of the last observation answered
        self.joints = None              # (stamp ns, finger positions)
        self.objects = None             # (stamp ns, name -> position)
        self.commands = 0
        self.pub = self.create_publisher(JointState, topics.name('joint_command'), 10)
        self.create_subscription(JointState, topics.name('joint_states'), self._on_joints,
                                 qos_profile_sensor_data)
        self.create_subscription(MarkerArray, topics.name('objects'), self._on_objects, 10)
        self.create_subscription(EpisodeEvent, topics.name('episode_event'), self._on_event, 10)

    def _on_event(self, msg: EpisodeEvent):
        self.oracle = None
        if msg.event != EpisodeEvent.START:
            return
        try:
            task = parse_event(msg)
            self.oracle = LiberoOracle(plan_for_task(task))
        except ValueError as exc:
            self.get_logger().warn(f'episode ignored: {exc}')
            return
        self.start_ns = _ns(msg.header.stamp)
        self.get_logger().info(f'expert: {msg.instruction!r} ({task}: '
                               f'{self.oracle.object} onto {self.oracle.target})')
        self._answer()

    def _on_joints(self, msg: JointState):
        names = list(msg.name)
        if len(msg.position) != len(names) or not all(f in names for f in FINGERS):
            return
        self.joints = (_ns(msg.header.stamp),
                       np.array([msg.position[names.index(f)] for f in FINGERS]))
        self._answer()

    def _on_objects(self, msg: MarkerArray):
        if not msg.markers:
            return
        # As Libero.objects gives them: (position, colour, size); the oracle uses the sizes to
        # pick the side of the rim with room around it.
        self.objects = (_ns(msg.markers[0].header.stamp),
                        {m.ns: ((m.pose.position.x, m.pose.position.y, m.pose.position.z),
                                (m.color.r, m.color.g, m.color.b), m.scale.x)
                         for m in msg.markers})
        self._answer()

    def _answer(self):
        """Publish the oracle's action once a whole new observation of this episode is in."""
        if self.oracle is None or self.joints is None or self.objects is None:
            return
        stamp = self.joints[0]
        if stamp != self.objects[0] or stamp <= self.answered_ns or stamp < self.start_ns:
            return
        objects = self.objects[1]
        missing = [n for n in ('eef', self.oracle.object, self.oracle.target) if n not in objects]
        if missing:
            self.get_logger().warn(f'no marker for {", ".join(missing)}: not this LIBERO task?',
                                   throttle_duration_sec=5.0)
            return
        action = self.oracle.act(objects['eef'][0], self.joints[1], objects)
        if not np.all(np.isfinite(action)):
            return
        self.answered_ns = stamp
        msg = JointState(name=list(COMMAND_NAMES), position=[float(v) for v in action])
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        self.pub.publish(msg)
        self.commands += 1


def main(args=None):
    """Run the node (``ros2 run dit4dit_sim libero_expert``)."""
    return run_node(LiberoExpertNode, args, name='libero_expert')


if __name__ == '__main__':
    raise SystemExit(main())
