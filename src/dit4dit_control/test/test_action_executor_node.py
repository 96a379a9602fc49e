"""action_executor node: services and state machine, driven through its callbacks."""

from builtin_interfaces.msg import Duration
from dit4dit_msgs.msg import EpisodeEvent, ExecutorStatus
import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

JOINTS = ['left_elbow_joint', 'right_elbow_joint']


@pytest.fixture
def params():
    return {}


@pytest.fixture
def node(params, profile_path):
    from dit4dit_control.nodes.action_executor import ActionExecutorNode
    rclpy.init()
    params = {'profile': profile_path, 'joints': JOINTS, 'ramp_in_s': 0.0,
              'control_rate_hz': 100.0, **params}
    node = ActionExecutorNode(parameter_overrides=[Parameter(k, value=v)
                                                   for k, v in params.items()])
    node.sent = []
    node.command_pub.publish = node.sent.append
    yield node
    node.destroy_node()
    rclpy.shutdown()


def _joints(node, q=(0.5, 0.5)):
    msg = JointState(name=JOINTS, position=list(q))
    msg.header.stamp = node.get_clock().now().to_msg()
    node._on_joints(msg)


def _chunk(node, value):
    msg = JointTrajectory(joint_names=JOINTS)
    msg.header.stamp = node.get_clock().now().to_msg()
    for k in range(10):
        msg.points.append(JointTrajectoryPoint(
            positions=[value, value], time_from_start=Duration(nanosec=int(k * 5e7))))
    node._on_chunk(msg)


def _call(handler):
    return handler(Trigger.Request(), Trigger.Response())


def test_disabled_until_enable_then_follows_within_limits(node):
    _joints(node)
    _chunk(node, 1.5)
    node.tick()
    assert not node.sent and node.state == ExecutorStatus.STATE_DISABLED
    assert _call(node._on_enable).success
    for _ in range(5):
        _joints(node)
        _chunk(node, 1.5)
        node.tick()
    q = np.array([m.position for m in node.sent])
    assert node.state == ExecutorStatus.STATE_RUNNING
    assert np.all(np.diff(q, axis=0) > 0)                                   # moving toward 1.5
    assert np.all(np.abs(np.diff(q, axis=0)) <= 1.0 / 100.0 + 1e-9)        # 1 rad/s cap


def test_enable_needs_joint_states_and_estop_stops_commands(node):
    response = _call(node._on_enable)
    assert not response.success and 'no joint states' in response.message
    _joints(node)
    assert _call(node._on_enable).success
    assert _call(node._on_estop).success and node.state == ExecutorStatus.STATE_ESTOP
    node.sent.clear()
    _chunk(node, 1.0)
    node.tick()
    assert not node.sent


def test_watchdog_and_hold_request(node):
    _joints(node)
    _call(node._on_enable)
    node.tick()                          # the (zero-length) ramp-in completes
    node.tick()                          # no chunk ever: hold the measured pose
    assert node.state == ExecutorStatus.STATE_HOLDING
    assert 'no chunk' in node.core.message
    assert node.sent[-1].position.tolist() == pytest.approx([0.5, 0.5])
    assert _call(node._on_hold).success and node.core.message == 'hold requested'


def test_bad_chunks_are_refused_and_counted_in_the_status(node):
    status = []
    node.status_pub.publish = status.append
    for joints, positions in ((['left_elbow_joint', 'tail_joint'], [0.1, 0.2]),   # unknown
                              (['left_elbow_joint'], [0.1, 0.2])):            # wrong width
        msg = JointTrajectory(joint_names=joints)
        msg.points.append(JointTrajectoryPoint(positions=positions))
        node._on_chunk(msg)
    node._on_chunk(JointTrajectory(joint_names=JOINTS))                       # no points
    assert node.core.last_chunk_time is None
    node.publish_status()
    assert status[-1].refused_chunks == 3
    assert node.core.last_refusal == 'chunk has no points'


def test_an_arms_only_chunk_moves_the_arms_and_holds_the_rest(node):
    _joints(node, (0.5, 0.5))
    assert _call(node._on_enable).success
    for _ in range(5):
        _joints(node, (0.5, 0.5))
        msg = JointTrajectory(joint_names=['right_elbow_joint'])
        msg.header.stamp = node.get_clock().now().to_msg()
        for k in range(10):
            msg.points.append(JointTrajectoryPoint(
                positions=[1.0], time_from_start=Duration(nanosec=int(k * 5e7))))
        node._on_chunk(msg)
        node.tick()
    q = np.array([m.position for m in node.sent])
    assert np.all(q[:, 0] == pytest.approx(0.5)) and q[-1, 1] > 0.5


@pytest.mark.parametrize('params', [{'episode_events': True, 'auto_enable': True,
                                     'estop_service': ''}])
def test_episode_start_forgets_old_chunks_and_reenables_on_the_new_pose(node):
    _joints(node, (0.5, 0.5))
    assert node.state == ExecutorStatus.STATE_RAMPING_IN          # auto_enable (simulation)
    _chunk(node, 0.7)
    for _ in range(3):
        node.tick()
    old_chunk = JointTrajectory(joint_names=JOINTS)
    old_chunk.header.stamp = node.get_clock().now().to_msg()       # observed before the START
    old_chunk.points.append(JointTrajectoryPoint(positions=[1.0, 1.0]))
    old_chunk.points.append(JointTrajectoryPoint(positions=[1.0, 1.0],
                                                 time_from_start=Duration(nanosec=50_000_000)))
    start = EpisodeEvent(event=EpisodeEvent.START, episode_index=1)
    start.header.stamp = node.get_clock().now().to_msg()
    node._on_episode(start)
    assert node.state == ExecutorStatus.STATE_DISABLED
    sent = len(node.sent)
    node.tick()
    assert len(node.sent) == sent                                  # nothing while resetting
    stale = JointState(name=JOINTS, position=[0.5, 0.5])
    stale.header.stamp = old_chunk.header.stamp                    # the previous episode's pose
    node._on_joints(stale)
    assert node.state == ExecutorStatus.STATE_DISABLED
    _joints(node, (0.0, 0.0))                                      # the new episode's pose
    assert node.state == ExecutorStatus.STATE_RAMPING_IN
    node._on_chunk(old_chunk)
    assert node.core.chunks.refused_chunks >= 1                         # from before the START
    node.tick()
    assert node.sent[-1].position.tolist() == pytest.approx([0.0, 0.0])
    end = EpisodeEvent(event=EpisodeEvent.SUCCESS, episode_index=1)
    node._on_episode(end)
    _chunk(node, 0.3)
    sent = len(node.sent)
    node.tick()
    node.tick()
    assert node.state == ExecutorStatus.STATE_DISABLED and len(node.sent) == sent   # silent


@pytest.mark.parametrize('params', [{'ramp_in_s': 5.0, 'policy_timeout_s': 0.05}])
def test_a_silent_policy_stops_the_ramp_in_too(node):
    import time
    _joints(node, (0.0, 0.0))
    assert _call(node._on_enable).success
    _chunk(node, 0.5)
    node.tick()
    assert node.state == ExecutorStatus.STATE_RAMPING_IN
    time.sleep(0.08)                       # the policy says nothing for longer than its timeout
    _joints(node, (0.0, 0.0))
    node.tick()
    assert node.state == ExecutorStatus.STATE_HOLDING
    held = node.sent[-1].position.tolist()
    node.tick()
    assert node.sent[-1].position.tolist() == pytest.approx(held, abs=1e-3)   # braking, at rest
