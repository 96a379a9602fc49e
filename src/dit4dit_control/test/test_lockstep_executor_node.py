"""lockstep_executor node: observations answered by stamp, driven through its callbacks."""

from builtin_interfaces.msg import Duration, Time
from dit4dit_common.testing import Capture
from dit4dit_msgs.msg import EpisodeEvent, ExecutorStatus
import pytest
import rclpy
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

JOINTS = ['osc_x', 'osc_z', 'gripper']


@pytest.fixture
def node():
    from dit4dit_control.nodes.lockstep_executor import LockstepExecutorNode
    rclpy.init()
    node = LockstepExecutorNode(parameter_overrides=[Parameter('joints', value=JOINTS)])
    node.command_pub = Capture()
    node.status_pub = Capture()
    yield node
    node.destroy_node()
    rclpy.shutdown()


def _observe(node, sec, nanosec=0):
    msg = JointState(name=['eef_x'], position=[0.0])
    msg.header.stamp = Time(sec=sec, nanosec=nanosec)
    node._on_joints(msg)


def _chunk(node, sec, rows, names=JOINTS, nanosec=0):
    msg = JointTrajectory(joint_names=list(names))
    msg.header.stamp = Time(sec=sec, nanosec=nanosec)
    for k, row in enumerate(rows):
        msg.points.append(JointTrajectoryPoint(
            positions=[float(v) for v in row],
            time_from_start=Duration(sec=0, nanosec=50_000_000 * k)))
    node._on_chunk(msg)


def test_each_observation_is_answered_with_its_stamp_and_a_used_up_chunk_waits(node):
    _observe(node, 10)
    assert node.command_pub.msgs == []                    # no chunk: the simulation waits
    _chunk(node, 10, [[0.1, 0.2, 2.0], [0.3, 0.4, -1.0]])
    _observe(node, 10, 50_000_000)
    _observe(node, 10, 100_000_000)                        # used up
    sent = node.command_pub.msgs
    assert [(m.header.stamp.sec, m.header.stamp.nanosec) for m in sent] == [
        (10, 0), (10, 50_000_000)]
    assert list(sent[0].name) == JOINTS and list(sent[0].position) == [0.1, 0.2, 1.0]
    node.publish_status()
    status = node.status_pub.msgs[-1]
    assert status.state == ExecutorStatus.STATE_HOLDING and status.clamped_targets == 1
    assert status.transition_strategy == 'lockstep' and 'waiting' in status.message


def test_a_partial_chunk_is_refused_and_an_episode_start_forgets_the_chunk(node):
    _chunk(node, 10, [[0.1, 0.2]], names=JOINTS[:2])
    assert node.core.refused == 1 and 'needs exactly' in node.core.last_refusal
    _chunk(node, 10, [[0.1, 0.2, 0.3]] * 4)
    start = EpisodeEvent(event=EpisodeEvent.START)
    start.header.stamp = Time(sec=10, nanosec=100_000_000)
    node._on_episode(start)
    _observe(node, 10, 100_000_000)                        # the old chunk had an action for it
    assert node.command_pub.msgs == []
    _chunk(node, 10, [[0.1, 0.2, 0.3]])                    # observed before the START
    assert 'before the episode started' in node.core.last_refusal


def test_joints_are_required():
    from dit4dit_control.nodes.lockstep_executor import LockstepExecutorNode
    rclpy.init()
    try:
        with pytest.raises(ValueError, match='joints is required'):
            LockstepExecutorNode()
    finally:
        rclpy.shutdown()
