"""policy_node: callbacks store, the worker publishes stamped chunks, bad input is refused."""

import threading
import time

from dit4dit_common.image import rgb_to_image_fields
from dit4dit_common.stamps import to_ns as _ns
from dit4dit_msgs.msg import PolicyStatus
from dit4dit_msgs.srv import SetTask
from dit4dit_policy.testing import make_tiny_checkpoint
import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState

JOINTS = [f'arm_{i}' for i in range(4)]


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp('ckpt') / 'c', JOINTS, fps=20,
                                cameras=[('head', 48, 64)])


@pytest.fixture
def params():
    return {}


@pytest.fixture
def node(checkpoint, params):
    from dit4dit_policy.nodes.policy_node import PolicyNode
    rclpy.init()
    params = {'checkpoint': str(checkpoint), 'seed': 3, **params}
    node = PolicyNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    node.published = []
    node.chunk_pub.publish = node.published.append
    node.statuses = []
    node.status_pub.publish = node.statuses.append
    yield node
    node.destroy_node()
    rclpy.shutdown()


def _image(node, age=0.0, encoding='rgb8', size=(48, 64)):
    msg = Image(**rgb_to_image_fields(np.full((*size, 3), 90, np.uint8)))
    msg.encoding = encoding
    msg.header.stamp = (node.get_clock().now() - rclpy.duration.Duration(seconds=age)).to_msg()
    return msg


def _joints(node, names=JOINTS, values=(0.1, 0.2, 0.3, 0.4)):
    msg = JointState(name=list(reversed(names)), position=list(reversed(values)))
    msg.header.stamp = node.get_clock().now().to_msg()
    return msg


def _wait(cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.02)
    return cond()


def _set_task(node, text):
    return node._on_set_task(SetTask.Request(instruction=text), SetTask.Response())


def test_publishes_a_chunk_stamped_with_the_observation_time(node):
    assert _set_task(node, 'reach the red cube').success
    node._on_joints(_joints(node))
    image = _image(node)
    node._on_image(0, image)
    assert _wait(lambda: node.published), node.message
    chunk = node.published[0]
    assert chunk.header.stamp == image.header.stamp
    assert chunk.joint_names == JOINTS and len(chunk.points) == 8
    assert [p.time_from_start.nanosec for p in chunk.points[:3]] == [0, 50_000_000, 100_000_000]
    assert all(-1.0 <= v <= 1.0 for p in chunk.points for v in p.positions)
    assert node.state == PolicyStatus.STATE_RUNNING and node.chunk_index >= 1


@pytest.mark.parametrize('case, reason', [
    ('stale', 'stale observation'), ('encoding', 'unsupported image encoding'),
    ('nan', 'NaN'), ('missing', 'joint states lack arm_3'),
    ('size', '/camera/image_raw: image is 96x96, expected 64x48 (the size the checkpoint was '
             'trained on; check_image_size:=false resizes)'),
])
def test_bad_observations_are_refused_with_a_reason(node, case, reason):
    _set_task(node, 'reach')
    names = JOINTS[:3] if case == 'missing' else JOINTS
    values = (0.1, float('nan'), 0.3, 0.4) if case == 'nan' else (0.1, 0.2, 0.3, 0.4)[:len(names)]
    node._on_joints(_joints(node, names, values))
    node._on_image(0, _image(node, age=2.0 if case == 'stale' else 0.0,
                             encoding='hsv8' if case == 'encoding' else 'rgb8',
                             size=(96, 96) if case == 'size' else (48, 64)))
    assert _wait(lambda: node.rejected >= 1)
    assert reason in node.message and not node.published
    assert node.state == PolicyStatus.STATE_REJECTING
    assert node.statuses[-1].rejected_observations >= 1 and reason in node.statuses[-1].message


def test_waits_for_an_instruction_and_clears_it(node):
    node._on_joints(_joints(node))
    node._on_image(0, _image(node))
    assert _wait(lambda: node.state == PolicyStatus.STATE_WAITING_FOR_INSTRUCTION)
    assert not node.published
    response = _set_task(node, 'open the drawer')
    assert response.previous_instruction == '' and response.success
    assert _set_task(node, '').previous_instruction == 'open the drawer'


def test_callbacks_only_store(node):
    """A callback returns at once even while inference runs (it never calls the model)."""
    _set_task(node, 'reach')
    calls = []
    original = node.runner.predict

    def slow(*args, **kwargs):
        calls.append(threading.current_thread().name)
        time.sleep(0.3)
        return original(*args, **kwargs)
    node.runner.predict = slow
    node._on_joints(_joints(node))
    t = time.monotonic()
    node._on_image(0, _image(node))
    assert time.monotonic() - t < 0.05
    assert _wait(lambda: node.published)
    assert calls and all(name == 'policy_worker' for name in calls)


def _positions(chunk):
    return np.array([p.positions for p in chunk.points])


@pytest.mark.parametrize('params', [{'rtc_inpainting': True, 'rtc_max_deviation': 10.0,
                                     'rtc_soft_actions': 2}])
def test_rtc_inpainting_reproduces_the_actions_being_executed(node):
    _set_task(node, 'reach')
    node._on_joints(_joints(node))
    first_image = _image(node)
    node._on_image(0, first_image)
    assert _wait(lambda: len(node.published) == 1), node.message
    assert node.last_guide is None                              # nothing executed yet
    first = _positions(node.published[0])
    node._on_joints(_joints(node))
    node._on_image(0, _image(node))
    assert _wait(lambda: len(node.published) == 2), node.message
    second = node.published[1]
    guide = node.last_guide
    assert guide is not None and guide.frozen >= 1
    offset = (_ns(second.header.stamp) - _ns(first_image.header.stamp)) * 1e-9 / 0.05
    for k in range(guide.frozen):                               # frozen: the previous plan
        index = offset + k
        lo = int(np.floor(index))
        expected = first[lo] + (index - lo) * (first[min(lo + 1, 7)] - first[lo])
        assert _positions(second)[k] == pytest.approx(expected, abs=1e-5)
    _set_task(node, 'another task')                             # a new task: no guide
    node._on_joints(_joints(node))
    node._on_image(0, _image(node))
    assert _wait(lambda: len(node.published) == 3)
    assert node.last_guide is None


@pytest.mark.parametrize('params', [{'rtc_inpainting': True, 'rtc_max_deviation': 1e-6}])
def test_rtc_inpainting_is_skipped_when_the_joints_left_the_previous_chunk(node):
    _set_task(node, 'reach')
    for count in (1, 2):
        node._on_joints(_joints(node))
        node._on_image(0, _image(node))
        assert _wait(lambda: len(node.published) == count), node.message
        assert node.last_guide is None


@pytest.mark.parametrize('params', [{'imagine_every_n_chunks': 2, 'imagine_steps': 2}])
def test_imagined_future_is_published_every_n_chunks(node):
    imagined = []
    node.imagined_pub.publish = imagined.append
    _set_task(node, 'reach')
    for count in (1, 2, 3):
        node._on_joints(_joints(node))
        node._on_image(0, _image(node))
        assert _wait(lambda: len(node.published) == count), node.message
    assert _wait(lambda: len(imagined) == 1)
    msg = imagined[0]
    v = node.runner.config.video
    assert msg.encoding == 'rgb8' and msg.header.stamp == node.published[1].header.stamp
    assert (msg.height, msg.width) == (v.frame_size[0], v.frame_size[1] * len(v.frame_indices))


@pytest.mark.parametrize('params', [{'check_image_size': False}])
def test_other_frame_sizes_are_resized_when_asked(node):
    _set_task(node, 'reach')
    node._on_joints(_joints(node))
    node._on_image(0, _image(node, size=(96, 96)))
    assert _wait(lambda: node.published), node.message


def test_the_contract_gives_topics_joints_and_period(node):
    subs = {s.topic_name for s in node.subscriptions}
    assert {'/camera/image_raw', '/joint_states'} <= subs
    assert '/dit4dit/task' not in subs                         # follow_task is off
    pubs = {p.topic_name for p in node.publishers}
    assert {'/dit4dit/action_chunk', '/dit4dit/policy_status', '/diagnostics',
            '/dit4dit/imagined'} <= pubs
    assert node.state_joints == JOINTS and node.action_period == pytest.approx(0.05)


def test_camera_topics_must_match_the_contracts_views(checkpoint):
    from dit4dit_policy.nodes.policy_node import PolicyNode
    rclpy.init()
    try:
        with pytest.raises(ValueError, match="2 camera_topics for the contract's 1 views"):
            PolicyNode(parameter_overrides=[
                Parameter('checkpoint', value=str(checkpoint)),
                Parameter('camera_topics', value=['/a/image', '/b/image'])])
        node = PolicyNode(parameter_overrides=[Parameter('checkpoint', value=str(checkpoint)),
                                               Parameter('camera_topics', value=['/a/image'])])
        assert '/a/image' in {s.topic_name for s in node.subscriptions}
        node.destroy_node()
    finally:
        rclpy.shutdown()


@pytest.mark.parametrize('params', [{'follow_task': True}])
def test_task_topic_sets_the_instruction(node):
    assert '/dit4dit/task' in {s.topic_name for s in node.subscriptions}
    from std_msgs.msg import String
    node._on_task(String(data=' reach the red cube '))
    assert node._instruction == 'reach the red cube'
    node._on_joints(_joints(node))
    node._on_image(0, _image(node))
    assert _wait(lambda: node.published), node.message


def _observe_at(node, ns):
    """Publish joint states, then the frame, stamped ``ns`` (a lockstep simulator's step)."""
    joints, image = _joints(node), _image(node)
    joints.header.stamp.sec, joints.header.stamp.nanosec = divmod(ns, 1_000_000_000)
    image.header.stamp = joints.header.stamp
    node._on_joints(joints)
    node._on_image(0, image)


@pytest.mark.parametrize('params', [{'actions_per_query': 4}])
def test_actions_per_query_queries_only_the_observation_n_periods_later(node):
    assert _set_task(node, 'reach the red cube').success
    base = node.get_clock().now().nanoseconds
    period = 50_000_000                                  # the contract's 20 Hz
    queried = []
    for step in range(9):
        _observe_at(node, base + step * period)
        # a query takes its time; observations wait for the command (lockstep)
        assert _wait(lambda: len(node.published) == len(queried) + (step % 4 == 0))
        if step % 4 == 0:
            queried.append(step)
        time.sleep(0.05)                                 # a query not due is not made
        assert len(node.published) == len(queried), step
    assert [_ns(c.header.stamp) for c in node.published] == [base + s * period for s in (0, 4, 8)]
    assert queried == [0, 4, 8]


@pytest.mark.parametrize('params', [{'actions_per_query': 4, 'max_observation_age_s': 10.0}])
def test_actions_per_query_waits_for_joint_states_as_new_as_the_frame(node):
    assert _set_task(node, 'reach the red cube').success
    image = _image(node)
    old = _joints(node)
    old.header.stamp.sec -= 1
    node._on_joints(old)
    node._on_image(0, image)
    time.sleep(0.3)
    assert node.published == []                          # the frame's joint states are missing
    fresh = _joints(node)
    fresh.header.stamp = image.header.stamp
    node._on_joints(fresh)                               # wakes the worker by itself
    assert _wait(lambda: node.published)


def test_actions_per_query_cannot_exceed_the_chunk(checkpoint):
    from dit4dit_policy.nodes.policy_node import PolicyNode
    rclpy.init()
    try:
        with pytest.raises(ValueError, match='exceeds the chunk of 8 actions'):
            PolicyNode(parameter_overrides=[Parameter('checkpoint', value=str(checkpoint)),
                                            Parameter('actions_per_query', value=9)])
    finally:
        rclpy.shutdown()
