"""
``command_ghost``: the joint states of the commanded robot, for a translucent "ghost" in rviz.

Publishes ``/commanded/joint_states`` (``sensor_msgs/JointState``) at ``rate_hz``: the measured
``/joint_states`` with every joint that ``/dit4dit/joint_command`` carries replaced by its
commanded value.
A second ``robot_state_publisher`` (``frame_prefix: commanded/``) turns it into the ghost's TF, so
rviz draws what the executor asks for over what the robot does. Nothing is published before both
inputs have arrived; commands older than ``max_command_age_s`` are dropped (the ghost then sits on
the measured robot).
"""

import time

from dit4dit_common import topics
from dit4dit_common.params import declare, Param
from dit4dit_common.runner import run_node
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState

PARAMETERS = (
    Param('rate_hz', 30.0, 'Publishing rate of the commanded joint states [Hz] (rviz needs no '
          'more).', low=0.1, high=100.0),
    Param('max_command_age_s', 0.5, 'Ignore a joint_command older than this [s].', low=0.0,
          high=60.0),
)


def merge(measured: JointState, command: JointState) -> JointState:
    """Return ``measured`` with the positions of ``command``'s joints replaced."""
    commanded = dict(zip(command.name, command.position))
    out = JointState(name=list(measured.name))
    out.position = [float(commanded.get(n, q)) for n, q in zip(measured.name, measured.position)]
    out.header = measured.header
    return out


class CommandGhostNode(Node):
    """See the module docstring."""

    def __init__(self, **kwargs):
        """Declare parameters, subscribe, start the timer."""
        super().__init__('command_ghost', **kwargs)
        self.p = declare(self, PARAMETERS)
        self.measured = self.command = None
        self.command_time = 0.0
        self.pub = self.create_publisher(JointState, topics.name('commanded_joint_states'), 10)
        self.create_subscription(JointState, topics.name('joint_states'), self._on_measured,
                                 qos_profile_sensor_data)
        self.create_subscription(JointState, topics.name('joint_command'), self._on_command, 10)
        self.create_timer(1.0 / self.p['rate_hz'], self.tick)

    def _on_measured(self, msg):
        if len(msg.position) == len(msg.name):
            self.measured = msg

    def _on_command(self, msg):
        if len(msg.position) == len(msg.name):
            self.command, self.command_time = msg, time.monotonic()

    def tick(self):
        """Publish the merged state (or nothing before the first measurement)."""
        if self.measured is None:
            return
        command = self.command
        if command is None or time.monotonic() - self.command_time > self.p['max_command_age_s']:
            command = JointState()
        self.pub.publish(merge(self.measured, command))


def main(args=None):
    """Run the node (``ros2 run dit4dit_control command_ghost``)."""
    return run_node(CommandGhostNode, args, name='command_ghost')


if __name__ == '__main__':
    raise SystemExit(main())
