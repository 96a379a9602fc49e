"""
The ``bag_recorder`` node records live topics over real DDS (loopback, the run's ROS_DOMAIN_ID).

The recorder runs in its own process, as ``python -m dit4dit_train.nodes.recorder``; this process
publishes camera frames, joint states and episode events at 30 Hz for about two seconds, stops the
recorder with SIGINT and reads the bag back with rosbags.
"""

import array
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

from dit4dit_msgs.msg import EpisodeEvent
import dit4dit_train
from dit4dit_train.bag_types import make_typestore
import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.highlevel import AnyReader
from rosbags.interfaces import QosReliability
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import SetBool
import yaml

pytestmark = pytest.mark.dds

PREFIX = f'/dit4dit_recorder_test_{os.getpid()}'
CAM = f'{PREFIX}/camera/image_raw'
JOINTS = f'{PREFIX}/joint_states'
EVENTS = f'{PREFIX}/episode_event'
MISSING = f'{PREFIX}/never_published'
UNKNOWN = f'{PREFIX}/service_events'  # std_srvs/srv/SetBool_Event: not in the typestore
RATE_HZ = 30.0
FRAMES = 60
WIDTH, HEIGHT = 64, 48
JOINT_NAMES = ['left_elbow_joint', 'right_elbow_joint']
MAX_LOST_AT_START = 5


def _recorder_env():
    """Return the environment for a recorder process that imports this dit4dit_train."""
    env = dict(os.environ)
    root = str(Path(dit4dit_train.__file__).resolve().parents[1])
    env['PYTHONPATH'] = os.pathsep.join(p for p in (root, env.get('PYTHONPATH')) if p)
    env['PYTHONUNBUFFERED'] = '1'
    return env


def _start_recorder(**params):
    args = [sys.executable, '-m', 'dit4dit_train.nodes.recorder', '--ros-args']
    for name, value in params.items():
        if isinstance(value, list):
            value = '[' + ','.join(value) + ']'
        args += ['-p', f'{name}:={value}']
    return subprocess.Popen(args, env=_recorder_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.fixture
def node():
    # A fresh context (DDS participant) per test: a participant that outlived the previous
    # recorder process was seen by the next one only after about 3 s (Fast DDS), a new one at once.
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('recorder_test_publisher', context=context)
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


@pytest.fixture(scope='module')
def store():
    return make_typestore()


def _image(i):
    msg = Image()
    msg.header.stamp.sec = 1000 + i
    msg.header.stamp.nanosec = 1000 * i
    msg.header.frame_id = 'head_camera'
    msg.height, msg.width, msg.encoding, msg.step = HEIGHT, WIDTH, 'rgb8', WIDTH * 3
    msg.data = array.array('B', bytes([i % 256]) * (WIDTH * HEIGHT * 3))
    return msg


def _joints(i):
    msg = JointState()
    msg.header.stamp.sec = 2000 + i
    msg.header.stamp.nanosec = 7 * i
    msg.name = JOINT_NAMES
    msg.position = [0.01 * i, -0.01 * i]
    return msg


def _event(kind, message=''):
    msg = EpisodeEvent()
    msg.header.stamp.sec = 3000 + kind
    msg.event = kind
    msg.episode_index = 4
    msg.instruction = 'pick the red cube'
    msg.task = 'g1_tabletop/pick'
    msg.initial_state_index = 7
    msg.message = message
    return msg


def _wait_for_subscribers(publishers, recorder, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(p.get_subscription_count() >= 1 for p in publishers):
            return
        assert recorder.poll() is None, 'recorder exited early:\n' + recorder.stdout.read()
        time.sleep(0.05)
    recorder.send_signal(signal.SIGINT)
    out = recorder.communicate(timeout=20)[0]
    pytest.fail(f'the recorder did not subscribe within {timeout} s:\n{out}')


def _write_preset(path):
    topics = [
        (CAM, 'sensor_msgs/msg/Image', 'best_effort', 10),
        (JOINTS, 'sensor_msgs/msg/JointState', 'reliable', 50),  # relaxed: published best effort
        (EVENTS, 'dit4dit_msgs/msg/EpisodeEvent', 'reliable', 100),
        (MISSING, 'std_msgs/msg/String', 'reliable', 10),
        (UNKNOWN, 'std_srvs/srv/SetBool_Event', 'reliable', 10),
    ]
    path.write_text(yaml.safe_dump({'description': 'recorder test', 'topics': [
        {'name': n, 'type': t, 'reliability': r, 'durability': 'volatile', 'depth': d}
        for n, t, r, d in topics]}))
    return path


def _suffix_of(published, recorded, what):
    """Assert ``recorded`` is ``published`` less at most a few of its first items."""
    lost = len(published) - len(recorded)
    assert 0 <= lost <= MAX_LOST_AT_START, f'{what}: {len(recorded)} of {len(published)} recorded'
    assert recorded == published[lost:], f'{what}: messages lost or reordered after the start'


@pytest.mark.parametrize('storage, source', [('mcap', 'topics'), ('sqlite3', 'preset')],
                         ids=['mcap-topics', 'sqlite3-preset'])
def test_records_live_topics(node, store, tmp_path, storage, source):
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    best_effort = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
    pubs = {CAM: node.create_publisher(Image, CAM, reliable),
            JOINTS: node.create_publisher(JointState, JOINTS, best_effort),
            EVENTS: node.create_publisher(EpisodeEvent, EVENTS, reliable)}
    unknown = node.create_publisher(SetBool.Event, UNKNOWN, reliable)
    out = tmp_path / 'bag'
    params = {'output': str(out), 'storage': storage, 'discovery_timeout_s': 1.0}
    if source == 'topics':
        params['topics'] = [CAM, JOINTS, EVENTS, MISSING, UNKNOWN]
    else:
        params['preset'] = str(_write_preset(tmp_path / 'preset.yaml'))
    recorder = _start_recorder(**params)
    try:
        _wait_for_subscribers(list(pubs.values()), recorder)
        t0 = time.time_ns()
        pubs[EVENTS].publish(_event(EpisodeEvent.START))
        start = time.monotonic()
        for i in range(FRAMES):
            time.sleep(max(0.0, start + i / RATE_HZ - time.monotonic()))
            pubs[CAM].publish(_image(i))
            pubs[JOINTS].publish(_joints(i))
        pubs[EVENTS].publish(_event(EpisodeEvent.SUCCESS, 'done'))
        t1 = time.time_ns()
        time.sleep(0.5)  # let the last messages arrive
    finally:
        recorder.send_signal(signal.SIGINT)
        log = recorder.communicate(timeout=30)[0]
        for pub in (*pubs.values(), unknown):
            node.destroy_publisher(pub)
    print(log)  # shown by pytest when the test fails
    assert recorder.returncode == 0, log

    summary = [line for line in log.splitlines() if ' messages in ' in line]
    assert len(summary) == 1, log
    assert f'never appeared: {MISSING}' in summary[0]
    assert f'skipped: {UNKNOWN} (type std_srvs/srv/SetBool_Event unknown to the typestore' in \
        summary[0]
    assert str(out) in summary[0] and f'[{storage}]' in summary[0]
    if source == 'preset':  # the preset's QoS, made compatible with a best-effort publisher
        assert f'recording {EVENTS} [dit4dit_msgs/msg/EpisodeEvent] reliable volatile depth 100' \
            in log
        assert f'{JOINTS}: a publisher offers less than reliable/volatile; subscribing ' \
            'best_effort/volatile' in log
        assert f'recording {JOINTS} [sensor_msgs/msg/JointState] best_effort volatile depth 50' \
            in log

    meta = yaml.safe_load((out / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert meta['storage_identifier'] == storage
    meta_counts = {t['topic_metadata']['name']: t['message_count']
                   for t in meta['topics_with_message_count']}
    meta_types = {t['topic_metadata']['name']: t['topic_metadata']['type']
                  for t in meta['topics_with_message_count']}
    assert meta_types == {CAM: 'sensor_msgs/msg/Image', JOINTS: 'sensor_msgs/msg/JointState',
                          EVENTS: 'dit4dit_msgs/msg/EpisodeEvent'}

    got = {CAM: [], JOINTS: [], EVENTS: []}
    with AnyReader([out], default_typestore=store) as reader:
        conns = {c.topic: c for c in reader.connections}
        assert set(conns) == set(got)
        # The publishers' offered QoS is stored (this test publishes reliable).
        assert conns[CAM].ext.offered_qos_profiles[0].reliability == QosReliability.RELIABLE
        assert conns[JOINTS].ext.offered_qos_profiles[0].reliability == \
            QosReliability.BEST_EFFORT
        for conn, stamp, raw in reader.messages():
            assert t0 - 10**9 <= stamp <= t1 + 10**9, 'bag time is not the receive time'
            got[conn.topic].append((stamp, reader.deserialize(raw, conn.msgtype)))
    assert {t: len(v) for t, v in got.items()} == meta_counts

    for topic, items in got.items():
        stamps = [s for s, _ in items]
        assert stamps == sorted(stamps), topic
    cams = [m for _, m in got[CAM]]
    _suffix_of([(1000 + i, 1000 * i) for i in range(FRAMES)],
               [(m.header.stamp.sec, m.header.stamp.nanosec) for m in cams], CAM)
    for m in cams:
        i = m.header.stamp.sec - 1000
        assert (m.height, m.width, m.encoding, m.step, m.header.frame_id) == (
            HEIGHT, WIDTH, 'rgb8', WIDTH * 3, 'head_camera')
        assert len(m.data) == WIDTH * HEIGHT * 3 and set(m.data.tolist()) == {i}
    joints = [m for _, m in got[JOINTS]]
    _suffix_of([(2000 + i, 7 * i) for i in range(FRAMES)],
               [(m.header.stamp.sec, m.header.stamp.nanosec) for m in joints], JOINTS)
    for m in joints:
        i = m.header.stamp.sec - 2000
        assert list(m.name) == JOINT_NAMES
        assert m.position.tolist() == pytest.approx([0.01 * i, -0.01 * i])

    events = [m for _, m in got[EVENTS]]
    assert [e.event for e in events] == [EpisodeEvent.START, EpisodeEvent.SUCCESS]
    for e, message in zip(events, ['', 'done']):
        assert (e.header.stamp.sec, e.episode_index, e.instruction, e.task,
                e.initial_state_index, e.message) == (
            3000 + e.event, 4, 'pick the red cube', 'g1_tabletop/pick', 7, message)


def test_unusable_output_is_refused(tmp_path):
    existing = tmp_path / 'existing'
    existing.mkdir()
    (existing / 'keep.txt').write_text('a previous recording')
    no_parent = tmp_path / 'no' / 'such' / 'bag'
    runs = {
        'existing': _start_recorder(output=str(existing), topics=[JOINTS]),
        'no_parent': _start_recorder(output=str(no_parent), topics=[JOINTS]),
        'storage': _start_recorder(output=str(tmp_path / 'b'), storage='rosbag1',
                                   topics=[JOINTS]),
        'nothing': _start_recorder(output=str(tmp_path / 'c')),
    }
    logs = {}
    for name, proc in runs.items():
        logs[name] = proc.communicate(timeout=60)[0]
        assert proc.returncode == 2, f'{name}: exit {proc.returncode}\n{logs[name]}'
        assert '[bag_recorder] cannot start: ' in logs[name], logs[name]
        assert 'Traceback' not in logs[name]
    assert f"output '{existing}' already exists; refusing to overwrite" in logs['existing']
    assert [p.name for p in existing.iterdir()] == ['keep.txt']
    assert f"parent directory of output '{no_parent}' does not exist" in logs['no_parent']
    assert not (tmp_path / 'no').exists()
    assert "storage='rosbag1': valid are mcap, sqlite3" in logs['storage']
    assert 'nothing to record: set topics' in logs['nothing']
    assert not (tmp_path / 'b').exists() and not (tmp_path / 'c').exists()
