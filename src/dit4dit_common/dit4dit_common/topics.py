"""
The topic registry: every topic the suite publishes or subscribes, by logical key.

Nodes take their topic names from here, and so do the graph descriptions, the recording presets
(which list keys, not names), the converter's feature maps and the closed-loop monitor; the
system tests compare every other mention (docs, rviz, presets) with it. A deployment that needs
other names remaps them (``-r /dit4dit/joint_command:=/my/command``) rather than editing nodes.

Camera views map to topics by name (``CAMERA_VIEWS``): a policy trained on view ``head`` listens
on the ``camera`` topic, ``wrist`` on ``wrist_camera``.
"""

from dataclasses import dataclass
import typing


@dataclass(frozen=True)
class Topic:
    """One topic: its registry key, ROS name, message type and what it carries."""

    key: str
    name: str
    msgtype: str            # 'pkg/msg/Name'
    description: str


_TOPICS = (
    # sensors
    Topic('camera', '/camera/image_raw', 'sensor_msgs/msg/Image', 'head camera, raw RGB'),
    Topic('camera_compressed', '/camera/image_raw/compressed', 'sensor_msgs/msg/CompressedImage',
          'head camera, JPEG (image_transport)'),
    Topic('wrist_camera', '/wrist_camera/image_raw', 'sensor_msgs/msg/Image',
          'wrist camera (LIBERO), raw RGB'),
    Topic('joint_states', '/joint_states', 'sensor_msgs/msg/JointState', 'measured joints'),
    Topic('imu', '/imu', 'sensor_msgs/msg/Imu', 'pelvis IMU of the G1'),
    # the policy graph
    Topic('action_chunk', '/dit4dit/action_chunk', 'trajectory_msgs/msg/JointTrajectory',
          'action chunks of the policy, stamped with their observation time'),
    Topic('policy_status', '/dit4dit/policy_status', 'dit4dit_msgs/msg/PolicyStatus',
          'the policy node state machine'),
    Topic('imagined', '/dit4dit/imagined', 'sensor_msgs/msg/Image',
          "the video model's imagined future frames (rviz)"),
    Topic('joint_command', '/dit4dit/joint_command', 'sensor_msgs/msg/JointState',
          'joint position targets from the executor (or a teleoperator, or an expert)'),
    Topic('executor_status', '/dit4dit/executor_status', 'dit4dit_msgs/msg/ExecutorStatus',
          'the action executor state machine'),
    Topic('commanded_joint_states', '/commanded/joint_states', 'sensor_msgs/msg/JointState',
          'measured joints with the commanded ones substituted (rviz ghost)'),
    Topic('diagnostics', '/diagnostics', 'diagnostic_msgs/msg/DiagnosticArray',
          'node health'),
    # episodes and tasks
    Topic('episode_event', '/dit4dit/episode_event', 'dit4dit_msgs/msg/EpisodeEvent',
          'episode starts and ends: the converter cuts episodes here'),
    Topic('task', '/dit4dit/task', 'std_msgs/msg/String',
          'the task instruction in force (transient local)'),
    # simulation
    Topic('objects', '/dit4dit/objects', 'visualization_msgs/msg/MarkerArray',
          'simulated object poses (rviz, scripted experts)'),
    Topic('clock', '/clock', 'rosgraph_msgs/msg/Clock', 'simulated time'),
    # Unitree G1 wire (ROS 2 names of the robot's rt/ DDS topics)
    Topic('lowstate', '/lowstate', 'unitree_hg/msg/LowState', 'G1 motor and IMU state, 500 Hz'),
    Topic('arm_sdk', '/arm_sdk', 'unitree_hg/msg/LowCmd',
          'G1 arm commands blended into the walking controller'),
    Topic('lowcmd', '/lowcmd', 'unitree_hg/msg/LowCmd', 'G1 whole-body commands'),
    Topic('dex3_left_state', '/dex3/left/state', 'unitree_hg/msg/HandState', 'left Dex3 state'),
    Topic('dex3_right_state', '/dex3/right/state', 'unitree_hg/msg/HandState',
          'right Dex3 state'),
    Topic('dex3_left_cmd', '/dex3/left/cmd', 'unitree_hg/msg/HandCmd', 'left Dex3 command'),
    Topic('dex3_right_cmd', '/dex3/right/cmd', 'unitree_hg/msg/HandCmd', 'right Dex3 command'),
)
TOPICS: typing.Dict[str, Topic] = {t.key: t for t in _TOPICS}

# Camera view name (a dataset's observation.images.<view>) -> registry key of its topic.
CAMERA_VIEWS = {'head': 'camera', 'wrist': 'wrist_camera'}


class UnknownTopic(KeyError):
    """A registry key that does not exist."""

    def __str__(self):
        """Name the key and the valid ones."""
        return f'unknown topic key {self.args[0]!r}; valid: {", ".join(TOPICS)}'


def topic(key: str) -> Topic:
    """Return the registry entry ``key``; UnknownTopic lists the valid keys."""
    try:
        return TOPICS[key]
    except KeyError:
        raise UnknownTopic(key) from None


def name(key: str) -> str:
    """Return the ROS name of registry key ``key``."""
    return topic(key).name


def resolve(key_or_name: str) -> str:
    """Return a ROS name: a registry key is looked up, a name (starting with '/') kept."""
    return key_or_name if key_or_name.startswith('/') else name(key_or_name)


def camera_topic(view: str) -> str:
    """Return the topic of camera view ``view``; KeyError lists the known views."""
    if view not in CAMERA_VIEWS:
        raise KeyError(f'camera view {view!r} has no registry topic (known: '
                       f'{", ".join(CAMERA_VIEWS)}); give its topic explicitly')
    return name(CAMERA_VIEWS[view])


def dex3(side: str, kind: str) -> str:
    """Return the Dex3 ``kind`` ('state' or 'cmd') topic of hand ``side``."""
    return name(f'dex3_{side}_{kind}')
