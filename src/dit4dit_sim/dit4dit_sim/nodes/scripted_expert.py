"""
``scripted_expert``: the tabletop experts as a ROS node that commands joints as the policy would.

Subscribes ``/joint_states``, the simulator's object markers (``/dit4dit/objects``,
``visualization_msgs/MarkerArray``: privileged state, as scripted experts use) and
``/dit4dit/episode_event``. On each START it waits for the first joint state and object poses
of the new episode, then plans with ``TabletopExpert`` on a private copy of the scene
(``G1Tabletop.mirror``) and publishes ``/dit4dit/joint_command`` (``sensor_msgs/JointState``, the
14 arm joints) at ``rate_hz`` until the episode ends. The task and the named cube come from the
event (``task`` = ``g1_tabletop/<task>``, the colour from the instruction).
"""

from dit4dit_common import stamps, topics
from dit4dit_common.params import declare, Param
from dit4dit_common.runner import run_node
from dit4dit_msgs.msg import EpisodeEvent
import numpy as np
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from visualization_msgs.msg import MarkerArray

from ..envs.g1_tabletop import COLOURS, G1Tabletop, TabletopConfig, TASKS
from ..experts.g1_tabletop_expert import ExpertConfig, TabletopExpert

PARAMETERS = (
    Param('rate_hz', 30.0, 'Joint command rate [Hz].', low=0.1, high=500.0),
    Param('max_speed', 0.5, 'Largest joint speed of the expert [rad/s] (the executor caps at '
          '1).', low=1e-3, high=1.0),
)


def parse_event(event: EpisodeEvent):
    """Return (task name, cube colour) of a START event; ValueError if it is not a tabletop one."""
    env, _, name = event.task.partition('/')
    if env != 'g1_tabletop' or name not in TASKS:
        raise ValueError(f'not a g1_tabletop task: {event.task!r}')
    colours = [c for c in COLOURS if f' {c} ' in f' {event.instruction} ']
    if len(colours) != 1:
        raise ValueError(f'no single cube colour in {event.instruction!r}')
    return name, colours[0]


class ScriptedExpertNode(Node):
    """See the module docstring."""

    def __init__(self, **kwargs):
        """Declare parameters, build the planning copy of the scene, wire topics."""
        super().__init__('scripted_expert', **kwargs)
        self.p = declare(self, PARAMETERS)
        self.env = G1Tabletop(TabletopConfig())
        self.expert = TabletopExpert(self.env, ExpertConfig(max_speed=self.p['max_speed']))
        self.joints = self.cubes = None
        self.cubes_stamp = 0
        self.pending = None            # (START event, its stamp in ns) awaiting a joint state
        self.active = False
        self.pub = self.create_publisher(JointState, topics.name('joint_command'), 10)
        self.create_subscription(JointState, topics.name('joint_states'), self._on_joints,
                                 qos_profile_sensor_data)
        self.create_subscription(MarkerArray, topics.name('objects'), self._on_objects, 5)
        self.create_subscription(EpisodeEvent, topics.name('episode_event'), self._on_event, 10)
        self.create_timer(1.0 / self.p['rate_hz'], self.tick)

    def _on_joints(self, msg):
        if len(msg.position) == len(msg.name):
            self.joints = msg

    def _on_objects(self, msg):
        if msg.markers:
            self.cubes_stamp = stamps.to_ns(msg.markers[0].header.stamp)
        self.cubes = {m.ns.removesuffix('_cube'): (m.pose.position.x, m.pose.position.y,
                                                   m.pose.position.z) for m in msg.markers}

    def _on_event(self, msg):
        if msg.event == EpisodeEvent.START:
            self.pending, self.active = msg, False
        else:
            self.pending, self.active = None, False

    def _mirror(self, target=''):
        self.env.mirror(self.joints.name, self.joints.position, self.cubes or {}, target)

    def tick(self):
        """Plan once a new episode's first joint state is in; then publish a command each tick."""
        if self.pending is not None and self.joints is not None and self.cubes is not None:
            start = stamps.to_ns(self.pending.header.stamp)
            # Both from the new episode: planning on the previous episode's cubes misses.
            if stamps.to_ns(self.joints.header.stamp) >= start and self.cubes_stamp >= start:
                try:
                    task, colour = parse_event(self.pending)
                except ValueError as exc:
                    self.get_logger().warn(f'episode ignored: {exc}')
                    self.pending = None
                    return
                self.env.set_task(task)
                self._mirror(colour)
                self.expert.reset()
                self.pending, self.active = None, True
                self.get_logger().info(f'expert: {self.env.instruction} with the '
                                       f'{self.expert.side} arm')
        if not self.active:
            return
        self._mirror()
        target = self.expert.act(1.0 / self.p['rate_hz'])
        msg = JointState(name=list(self.expert.joints), position=[float(v) for v in target])
        msg.header.stamp = self.get_clock().now().to_msg()
        if np.all(np.isfinite(target)):
            self.pub.publish(msg)


def main(args=None):
    """Run the node (``ros2 run dit4dit_sim scripted_expert``)."""
    return run_node(ScriptedExpertNode, args, name='scripted_expert')


if __name__ == '__main__':
    raise SystemExit(main())
