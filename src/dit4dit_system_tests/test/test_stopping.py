"""
Stopping is the same whatever the signals: real processes, real signals, over DDS on loopback.

For one SIGINT, two SIGINTs 0.3 s apart (Ctrl-C in a terminal reaches the whole process group,
and ``ros2 launch`` forwards its own) and SIGTERM (``ros2 launch`` escalating):

* the G1 bridge ramps the arm_sdk weight all the way to 0 over its description's ramp-down time
  before it exits 0, without a traceback;
* the bag recorder leaves a closed bag (mcap and sqlite3) that the converter turns into a
  dataset.
"""

import os
import signal
import subprocess
import sys
import time

from dit4dit_g1.description import description_path, load_description
from dit4dit_g1.lowcmd import ARM_SDK_WEIGHT_INDEX
import numpy as np
import pytest
import rclpy
from rclpy.qos import qos_profile_sensor_data
import yaml

pytestmark = pytest.mark.dds
PATTERNS = {'one SIGINT': (signal.SIGINT,), 'two SIGINTs': (signal.SIGINT, signal.SIGINT),
            'SIGTERM': (signal.SIGTERM,)}
RAMP_DOWN_S = 1.0
G1 = load_description()


def _send(proc, pattern):
    for i, sig in enumerate(pattern):
        if i:
            time.sleep(0.3)
        if proc.poll() is None:
            proc.send_signal(sig)


@pytest.fixture
def ros():
    from rclpy.executors import SingleThreadedExecutor
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('stopping_test', context=context)
    node.executor_ = SingleThreadedExecutor(context=context)
    node.executor_.add_node(node)
    yield node
    node.executor_.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=context)


@pytest.mark.parametrize('pattern', PATTERNS.values(), ids=PATTERNS.keys())
def test_the_bridge_ramps_the_arm_sdk_weight_to_zero(ros, tmp_path, pattern):
    from std_srvs.srv import Trigger
    from unitree_hg.msg import LowCmd, LowState

    data = yaml.safe_load(description_path().read_text())
    data['execution'].update(arm_sdk_ramp_up_s=0.2, arm_sdk_ramp_down_s=RAMP_DOWN_S)
    description = tmp_path / 'g1.yaml'
    description.write_text(yaml.safe_dump(data))
    proc = subprocess.Popen(
        [sys.executable, '-m', 'dit4dit_g1.nodes.g1_bridge', '--ros-args',
         '-p', f'description:={description}', '-p', 'lowstate_timeout_s:=1.0'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    weights = []
    ros.create_subscription(LowCmd, '/arm_sdk', lambda m: weights.append(
        (time.monotonic(), m.motor_cmd[ARM_SDK_WEIGHT_INDEX].q)), 100)
    lowstate = ros.create_publisher(LowState, '/lowstate', 10)
    enable = ros.create_client(Trigger, '/g1_bridge/enable')
    state = LowState()
    state.mode_machine = 5
    future, signalled, deadline = None, None, time.monotonic() + 60
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            lowstate.publish(state)
            ros.executor_.spin_once(timeout_sec=0.004)
            if future is None and enable.service_is_ready():
                future = enable.call_async(Trigger.Request())
            if signalled is None and weights and weights[-1][1] == 1.0:
                signalled = time.monotonic()
                _send(proc, pattern)
        output = proc.communicate(timeout=10)[0]
        _spin_messages(ros)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert signalled is not None, 'the weight never reached 1:\n' + output[-3000:]
    assert proc.returncode == 0, output[-3000:]
    assert 'Traceback' not in output and 'KeyboardInterrupt' not in output, output[-3000:]
    down = [(t, w) for t, w in weights if t >= signalled]
    values = [w for _, w in down]
    assert values[-1] == 0.0, f'last arm_sdk weight {values[-1]}'
    assert all(b <= a for a, b in zip(values, values[1:])), 'the weight went up again'
    ramp = [t for t, w in down if 0.0 < w < 1.0]
    assert len(ramp) > 0.5 * RAMP_DOWN_S * 250, f'{len(ramp)} commands in the ramp'
    took = down[-1][0] - signalled
    assert 0.8 * RAMP_DOWN_S < took < RAMP_DOWN_S + 1.0, f'ramp took {took:.2f} s'
    if len(pattern) > 1:
        assert 'still stopping' in output            # the second signal was answered


def _spin_messages(node, seconds=0.2):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        node.executor_.spin_once(timeout_sec=0.01)


ARMS = [G1.body_names[i] for i in range(15, 29)]


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
@pytest.mark.parametrize('pattern', PATTERNS.values(), ids=PATTERNS.keys())
def test_the_recorder_leaves_a_bag_the_converter_reads(ros, tmp_path, pattern, storage):
    from dit4dit_common.image import rgb_to_image_fields
    from dit4dit_msgs.msg import EpisodeEvent
    from dit4dit_train.convert import main as convert
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import String

    bag = tmp_path / 'bag'
    proc = subprocess.Popen(
        [sys.executable, '-m', 'dit4dit_train.nodes.recorder', '--ros-args',
         '-p', 'preset:=sim', '-p', f'output:={bag}', '-p', f'storage:={storage}',
         '-p', 'discovery_timeout_s:=1.0'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, 'PYTHONUNBUFFERED': '1'})
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    camera = ros.create_publisher(Image, '/camera/image_raw', qos_profile_sensor_data)
    joints = ros.create_publisher(JointState, '/joint_states', qos_profile_sensor_data)
    command = ros.create_publisher(JointState, '/dit4dit/joint_command', reliable)
    events = ros.create_publisher(EpisodeEvent, '/dit4dit/episode_event', reliable)
    task = ros.create_publisher(String, '/dit4dit/task', QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    publishers = (camera, joints, command, events)
    try:
        deadline = time.monotonic() + 30
        while not all(p.get_subscription_count() for p in publishers):
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            assert time.monotonic() < deadline, 'the recorder never subscribed'
            time.sleep(0.05)
        time.sleep(0.3)

        def stamped(msg):
            msg.header.stamp = ros.get_clock().now().to_msg()
            return msg
        task.publish(String(data='reach the red cube'))
        events.publish(stamped(EpisodeEvent(event=EpisodeEvent.START, instruction='reach the '
                                            'red cube', task='g1_tabletop/reach')))
        frame = rgb_to_image_fields(np.full((32, 32, 3), 100, np.uint8))
        for i in range(30):                                    # 2 s at 15 Hz
            q = [0.01 * i] * len(ARMS)
            joints.publish(stamped(JointState(name=ARMS, position=q)))
            command.publish(stamped(JointState(name=ARMS, position=q)))
            camera.publish(stamped(Image(**frame)))
            time.sleep(1 / 15)
        events.publish(stamped(EpisodeEvent(event=EpisodeEvent.SUCCESS,
                                            instruction='reach the red cube')))
        time.sleep(0.3)
        _send(proc, pattern)
        output = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output[-3000:]
    assert 'Traceback' not in output and 'KeyboardInterrupt' not in output, output[-3000:]
    assert (bag / 'metadata.yaml').is_file(), output[-3000:]
    dataset = tmp_path / 'dataset'
    assert convert([str(bag), '--map', 'g1_tabletop', '--output', str(dataset)]) == 0
    info = yaml.safe_load((dataset / 'meta' / 'info.json').read_text())
    assert info['total_episodes'] == 1 and info['total_frames'] >= 15


def test_the_ramp_down_is_what_the_launch_waits_for(tmp_path):
    """The launch's SIGTERM timeout for the bridge is the bridge's own stop budget."""
    from dit4dit_bringup.graph import g1_graph, G1Arguments
    from dit4dit_g1.bridge import shutdown_budget_s
    from dit4dit_policy.testing import make_tiny_checkpoint
    checkpoint = make_tiny_checkpoint(tmp_path / 'c', ARMS)
    specs = {s.name: s for s in g1_graph(G1Arguments(checkpoint=str(checkpoint)))}
    assert specs['g1_bridge'].stop_budget_s == shutdown_budget_s(G1.ramp_down_s)
    assert shutdown_budget_s(G1.ramp_down_s) > G1.ramp_down_s
