"""
``command_ghost``: the joint states of the commanded robot, for a translucent "ghost" in rviz.

Publishes ``commanded_joint_states`` (``sensor_msgs/JointState``) at ``rate_hz``: the measured
``joint_states`` with every joint that ``joint_command`` carries replaced by its commanded value.
A second ``robot_state_publisher`` (``frame_prefix: commanded/``) turns it into the ghost's TF, so
rviz draws what the executor asks for over what the robot does. Nothing is published before both
inputs have arrived; commands older than ``max_command_age_s`` are dropped (the ghost then sits on
the measured robot).
"""

import time

from dit4dit_policy.nodes.spin import declare_parameters, run_node
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState

PARAMETERS = (
    ('rate_hz', 30.0, 'Publishing rate of commanded_joint_states [Hz] (rviz needs no more).'),
    ('max_command_age_s', 0.5, 'Ignore a joint_command older than this [s].'),
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
        self.p = declare_parameters(self, PARAMETERS)
        if not 0.0 < self.p['rate_hz'] <= 100.0:
            raise ValueError(f'rate_hz {self.p["rate_hz"]} must be in (0, 100]')
        self.measured = self.command = None
        self.command_time = 0.0
        self.pub = self.create_publisher(JointState, 'commanded_joint_states', 10)
        self.create_subscription(JointState, 'joint_states', self._on_measured,
                                 qos_profile_sensor_data)
        self.create_subscription(JointState, 'joint_command', self._on_command, 10)
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
    """Run the node (``ros2 run dit4dit_bringup command_ghost``)."""
    return run_node(CommandGhostNode, args)


if __name__ == '__main__':
    main()
