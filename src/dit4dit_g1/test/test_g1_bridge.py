"""
g1_bridge, driven through its callbacks in-process and once as its own process over DDS.

In-process the node is built with parameter overrides and its publishers are replaced by captures;
the DDS test runs ``python -m dit4dit_g1.nodes.g1_bridge`` against this process (loopback). The
bridge takes its tables from a G1 description; the tests use a variant of the shipped one with
tighter arm limits, other gains, a faster velocity cap and shorter ramps, to see them applied.
How it stops under signals is tested in dit4dit_system_tests (test_stopping).
"""

import math
import subprocess
import sys
import time

from dit4dit_common.testing import Capture
from dit4dit_g1.crc import lowcmd_crc
from dit4dit_g1.description import load_description
from dit4dit_g1.lowcmd import ARM_SDK_WEIGHT_INDEX, DEX3_ENABLE, DEX3_TIMEOUT
from dit4dit_g1.nodes.g1_bridge import G1BridgeNode
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger
from unitree_hg.msg import HandState, LowCmd, LowState, MotorState
import yaml

SHIPPED = load_description()
ARMS = list(range(15, 29))
ARM_NAMES = [SHIPPED.body_names[i] for i in ARMS]
BODY_NAMES = list(SHIPPED.body_names)
RATE = 250.0
MAX_VEL = 2.0
STEP = MAX_VEL / RATE


@pytest.fixture
def make_bridge(context, variant):
    """Return ``make(**parameters)``: a bridge on the test description, publishers captured."""
    nodes = []

    def make(ramp_down_s=0.4, **overrides):
        params = {'description': variant(ramp_down_s), 'control_mode': 'arm_sdk',
                  'rate_hz': RATE, 'lowstate_timeout_s': 60.0}   # the watchdog has its test
        params.update(overrides)
        node = _bridge(context, params)
        nodes.append(node)
        return node
    yield make
    for node in nodes:
        node.destroy_node()


def _bridge(context, params):
    node = G1BridgeNode(context=context,
                        parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    node.lowcmd_pub = Capture(copy=True)
    node.joint_state_pub = Capture()
    node.imu_pub = Capture()
    node.hand_pubs = {side: Capture(copy=True) for side in node.hand_pubs}
    return node


def hand_state(q):
    return HandState(motor_state=[MotorState(q=float(v), dq=0.5, tau_est=0.1) for v in q])


def lowstate(q=None, mode_machine=5):
    msg = LowState()
    msg.mode_machine = mode_machine
    msg.imu_state.quaternion = [0.9, 0.1, 0.2, 0.3]     # w, x, y, z
    msg.imu_state.gyroscope = [1.0, 2.0, 3.0]
    msg.imu_state.accelerometer = [0.0, 0.5, 9.8]
    q = np.linspace(-0.3, 0.3, 29) if q is None else q
    for i in range(29):
        msg.motor_state[i].q = float(q[i])
        msg.motor_state[i].dq = 0.1 * i
        msg.motor_state[i].tau_est = -0.2 * i
    return msg


def call(node, name):
    response = getattr(node, f'_on_{name}')(Trigger.Request(), Trigger.Response())
    return response.success, response.message


def command(names, positions):
    return JointState(name=list(names), position=[float(p) for p in positions])


def weights(node):
    return [m.motor_cmd[ARM_SDK_WEIGHT_INDEX].q for m in node.lowcmd_pub.msgs]


def test_lowstate_becomes_joint_states_and_imu(make_bridge):
    node = make_bridge()
    state = lowstate()
    node.on_lowstate(state)
    js = node.joint_state_pub.msgs[-1]
    assert list(js.name) == BODY_NAMES                 # every body joint, by motor slot
    assert js.position == pytest.approx([state.motor_state[i].q for i in range(29)])
    assert js.velocity == pytest.approx([0.1 * i for i in range(29)])
    assert js.effort == pytest.approx([-0.2 * i for i in range(29)])
    imu = node.imu_pub.msgs[-1]
    o = imu.orientation
    assert (o.x, o.y, o.z, o.w) == pytest.approx((0.1, 0.2, 0.3, 0.9))
    assert imu.angular_velocity.z == pytest.approx(3.0)
    assert imu.linear_acceleration.z == pytest.approx(9.8)
    assert imu.header.frame_id == 'imu_in_pelvis'


def test_no_lowcmd_before_the_first_lowstate(make_bridge):
    node = make_bridge()
    assert call(node, 'enable') == (False, 'no /lowstate received yet')
    for _ in range(20):
        node.tick()
    assert node.lowcmd_pub.msgs == []
    node.on_lowstate(lowstate())
    node.tick()
    assert node.lowcmd_pub.msgs == []          # LowState, but not enabled yet
    assert call(node, 'enable')[0]
    node.tick()
    assert len(node.lowcmd_pub.msgs) == 1


def test_command_to_lowcmd_clamped_rate_limited_with_crc_and_mode_machine(make_bridge):
    node = make_bridge()
    state = lowstate(mode_machine=9)
    measured = np.array([state.motor_state[i].q for i in ARMS])
    node.on_lowstate(state)
    assert call(node, 'enable')[0]
    node.tick()
    first = node.lowcmd_pub.msgs[-1]
    assert [first.motor_cmd[i].q for i in ARMS] == pytest.approx(measured, abs=1e-6)
    target = np.full(14, 0.5)
    target[0], target[1] = 7.0, -7.0                 # beyond the limits (+-1)
    node.on_command(command(ARM_NAMES, target))
    previous = measured
    for _ in range(200):
        node.tick()
        msg = node.lowcmd_pub.msgs[-1]
        q = np.array([msg.motor_cmd[i].q for i in ARMS])
        assert np.all(np.abs(q - previous) <= STEP + 1e-6)     # velocity limit per tick
        assert np.all(q <= 1.0 + 1e-6) and np.all(q >= -1.0 - 1e-6)
        assert msg.crc == lowcmd_crc(msg)
        assert msg.mode_machine == 9 and msg.mode_pr == 0
        previous = q
    assert q == pytest.approx(np.clip(target, -1.0, 1.0), abs=1e-6)
    w = weights(node)
    assert w[0] == pytest.approx(1 / RATE / 0.2) and w[-1] == 1.0
    assert all(b >= a for a, b in zip(w, w[1:]))
    assert all(msg.motor_cmd[i].kp == 60.0 for i in ARMS)


def test_partial_command_keeps_the_others_at_the_latched_pose(make_bridge):
    node = make_bridge()
    state = lowstate()
    node.on_lowstate(state)
    call(node, 'enable')
    node.on_command(command(ARM_NAMES[:2], [0.0, 0.0]))
    for _ in range(100):
        node.tick()
    q = [node.lowcmd_pub.msgs[-1].motor_cmd[i].q for i in ARMS]
    assert q[:2] == pytest.approx([0.0, 0.0], abs=1e-6)
    assert q[2:] == pytest.approx([state.motor_state[i].q for i in ARMS[2:]], abs=1e-6)


@pytest.mark.parametrize('bad', [
    command(ARM_NAMES[:1] + ['left_hand_thumb_0_joint'], [0.9, 0.0]),    # unknown name
    command(ARM_NAMES[:2], [0.9]),                                       # length mismatch
    command(ARM_NAMES[:2], [0.9, math.nan]),                             # NaN
    command(ARM_NAMES[:2], [0.9, math.inf]),                             # infinity
    command([ARM_NAMES[0], ARM_NAMES[0]], [0.9, 0.9]),                   # duplicate
])
def test_malformed_commands_are_refused_whole(make_bridge, bad):
    node = make_bridge()
    state = lowstate()
    node.on_lowstate(state)
    call(node, 'enable')
    node.on_command(bad)
    assert node.core.command is None
    for _ in range(50):
        node.tick()
    q = [node.lowcmd_pub.msgs[-1].motor_cmd[i].q for i in ARMS]
    assert q == pytest.approx([state.motor_state[i].q for i in ARMS], abs=1e-6)


def test_estop_damps_until_enable(make_bridge):
    node = make_bridge()
    node.on_lowstate(lowstate())
    call(node, 'enable')
    node.on_command(command(ARM_NAMES, np.zeros(14)))
    for _ in range(25):
        node.tick()
    frozen = weights(node)[-1]
    assert call(node, 'estop')[0]
    node.on_command(command(ARM_NAMES, np.full(14, 0.5)))      # ignored while e-stopped
    for _ in range(30):
        node.tick()
    for msg in node.lowcmd_pub.msgs[-30:]:
        assert all(msg.motor_cmd[i].kp == 0.0 and msg.motor_cmd[i].kd > 0.0
                   for i in range(29))
        assert msg.motor_cmd[ARM_SDK_WEIGHT_INDEX].q == pytest.approx(frozen)
        assert msg.crc == lowcmd_crc(msg)
    assert call(node, 'disable')[0] is False                   # e-stop is latched
    assert call(node, 'enable')[0]
    node.tick()
    msg = node.lowcmd_pub.msgs[-1]
    assert all(msg.motor_cmd[i].kp == 60.0 for i in ARMS)


def test_disable_ramps_the_weight_down_then_stops(make_bridge):
    node = make_bridge()
    node.on_lowstate(lowstate())
    call(node, 'enable')
    for _ in range(60):
        node.tick()
    assert weights(node)[-1] == 1.0
    count = len(node.lowcmd_pub.msgs)
    assert call(node, 'disable') == (True, 'disabling')
    for _ in range(200):
        node.tick()
    down = weights(node)[count:]
    assert all(b <= a for a, b in zip(down, down[1:])) and down[-1] == 0.0
    assert len(down) == pytest.approx(0.4 * RATE, abs=2)       # ramp_down_s at rate_hz
    assert node.state == 'disabled'


def test_shutdown_request_ramps_down_and_finishes(make_bridge):
    node = make_bridge()
    node.request_shutdown()
    assert node.finished                           # nothing was published: done at once
    node = make_bridge()
    node.on_lowstate(lowstate())
    call(node, 'enable')
    for _ in range(60):
        node.tick()
    node.request_shutdown()
    assert call(node, 'enable')[0] is False
    for _ in range(200):
        node.tick()
    assert node.finished and weights(node)[-1] == 0.0


def test_lowcmd_mode_holds_the_rest_and_disable_damps(make_bridge):
    node = make_bridge(control_mode='lowcmd', ramp_down_s=0.0)
    state = lowstate()
    node.on_lowstate(state)
    call(node, 'enable')
    node.tick()
    msg = node.lowcmd_pub.msgs[-1]
    held = np.clip([state.motor_state[i].q for i in range(15)], SHIPPED.lower[:15],
                   SHIPPED.upper[:15])                       # the latched pose, clipped
    for i in range(15):
        assert msg.motor_cmd[i].mode == 1 and msg.motor_cmd[i].kp >= 40.0
        assert msg.motor_cmd[i].q == pytest.approx(held[i], abs=1e-6)
    assert msg.motor_cmd[ARM_SDK_WEIGHT_INDEX].q == 0.0
    assert node.lowcmd_topic == '/lowcmd'
    call(node, 'disable')
    node.tick()
    msg = node.lowcmd_pub.msgs[-1]
    assert all(msg.motor_cmd[i].kp == 0.0 and msg.motor_cmd[i].kd > 0 for i in range(29))
    count = len(node.lowcmd_pub.msgs)
    node.tick()
    assert len(node.lowcmd_pub.msgs) == count and node.state == 'disabled'


@pytest.mark.parametrize('overrides, match', [
    ({'control_mode': 'walk'}, "control_mode='walk': valid are arm_sdk, lowcmd"),
    ({'rate_hz': 1000.0}, 'parameter rate_hz'),
    ({'hands': 'three'}, "hands='three'"),
    ({'lowstate_timeout_s': 0.0}, 'parameter lowstate_timeout_s'),
    ({'description': 'g1_23dof'}, 'unknown G1 description'),
])
def test_invalid_parameters_give_a_clear_error(context, variant, overrides, match):
    with pytest.raises(ValueError, match=match):
        _bridge(context, {'description': variant(), **overrides})


def test_the_shipped_description_gives_every_table(context):
    node = G1BridgeNode(context=context)
    try:
        core = node.core
        assert core.names == [BODY_NAMES[i] for i in range(12, 29)]    # arm_sdk: waist + arms
        assert node.lowcmd_topic == '/arm_sdk' and core.dt == pytest.approx(1 / 250)
        assert (core.ramp.duration_up_s, core.ramp.duration_down_s) == (1.0, 3.0)
        assert core.max_step == pytest.approx(SHIPPED.max_velocity / 250)
        assert node.shutdown_budget_s == pytest.approx(3.0 + 1.0)
        assert node.describe_parameter('description').read_only
    finally:
        node.destroy_node()


@pytest.mark.dds
def test_bridge_process_over_dds(tmp_path, variant):
    """Run the bridge in its own process; this process plays the robot and the executor."""
    params = tmp_path / 'g1_bridge.yaml'
    params.write_text(yaml.safe_dump({'g1_bridge': {'ros__parameters': {
        'description': variant(), 'rate_hz': 250.0}}}))
    proc = subprocess.Popen(
        [sys.executable, '-m', 'dit4dit_g1.nodes.g1_bridge', '--ros-args',
         '--params-file', str(params), '-r', '/dit4dit/joint_command:=/test/joint_command'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node('g1_bridge_dds_test', context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    try:
        cmds = []
        node.create_subscription(LowCmd, '/arm_sdk', cmds.append, 50)
        low = node.create_publisher(LowState, '/lowstate', 10)
        cmd_pub = node.create_publisher(
            JointState, '/test/joint_command',
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        enable = node.create_client(Trigger, '/g1_bridge/enable')
        state = lowstate(mode_machine=6)
        target = np.linspace(-0.4, 0.4, 14)
        target[3] = 3.0                                           # clamped to 1.0
        deadline = time.monotonic() + 60
        future = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            low.publish(state)
            if future is None and enable.service_is_ready() and low.get_subscription_count():
                future = enable.call_async(Trigger.Request())
            if future is not None and future.done():
                assert future.result().success, future.result().message
                cmd_pub.publish(command(ARM_NAMES, target))
            executor.spin_once(timeout_sec=0.004)
            if cmds and cmds[-1].motor_cmd[ARM_SDK_WEIGHT_INDEX].q == 1.0 and np.allclose(
                    [cmds[-1].motor_cmd[i].q for i in ARMS], np.clip(target, -1, 1),
                    atol=1e-6):
                break
        assert cmds, 'no LowCmd from the bridge process'
        last = cmds[-1]
        assert [last.motor_cmd[i].q for i in ARMS] == pytest.approx(np.clip(target, -1, 1),
                                                                    abs=1e-6)
        assert last.crc == lowcmd_crc(last) and last.mode_machine == 6
        assert all(last.motor_cmd[i].kp == 60.0 for i in ARMS)    # the description's gains
    finally:
        if proc.poll() is None:
            proc.kill()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)


def test_every_lowstate_feeds_the_loop_and_joint_states_follow_at_their_rate(
        make_bridge, monkeypatch):
    node = make_bridge(joint_state_rate_hz=100.0)
    clock = [100.0]
    monkeypatch.setattr('dit4dit_g1.nodes.g1_bridge.time.monotonic', lambda: clock[0])
    for _ in range(500):                       # one second of a 500 Hz robot, some jitter
        clock[0] += 0.002 + np.random.default_rng(len(node.imu_pub.msgs)).uniform(-2e-4, 2e-4)
        node.on_lowstate(lowstate())
        assert node.core.lowstate_time == clock[0]
    assert len(node.joint_state_pub.msgs) == pytest.approx(100, abs=1)
    assert len(node.imu_pub.msgs) == len(node.joint_state_pub.msgs)


def test_dex3_hands_join_joint_states_and_take_their_commands(make_bridge):
    node = make_bridge(hands='both')
    left, right = SHIPPED.hands['left'], SHIPPED.hands['right']
    left_q = np.clip(np.full(7, 0.3), left.lower, left.upper)
    node.on_hand_state('left', hand_state(left_q))
    node.on_lowstate(lowstate())
    js = node.joint_state_pub.msgs[-1]
    assert list(js.name) == BODY_NAMES + list(left.names)       # right: none yet
    assert js.position[29:] == pytest.approx(left_q)
    right_q = np.clip(np.full(7, -0.2), right.lower, right.upper)
    node.on_hand_state('right', hand_state(right_q))
    node.next_joint_state = 0.0                         # due now (joint_state_rate_hz)
    node.on_lowstate(lowstate())
    assert len(node.joint_state_pub.msgs[-1].name) == 29 + 14
    assert call(node, 'enable')[0]
    node.tick()
    held = node.hand_pubs['right'].msgs[-1]
    assert [m.q for m in held.motor_cmd] == pytest.approx(right_q, abs=1e-6)
    assert [m.mode for m in held.motor_cmd] == [i | DEX3_ENABLE for i in range(7)]
    # Far outside the left hand's limits: clamped there, and moved at most STEP a tick.
    node.on_command(command(left.names, np.full(7, 5.0)))
    outputs = []
    for _ in range(300):
        node.tick()
        outputs.append([m.q for m in node.hand_pubs['left'].msgs[-1].motor_cmd])
    outputs = np.array(outputs)
    assert np.all(np.abs(np.diff(outputs, axis=0)) <= STEP + 1e-6)
    assert outputs[-1] == pytest.approx(left.upper, abs=1e-6)
    assert [m.q for m in node.hand_pubs['right'].msgs[-1].motor_cmd] == pytest.approx(
        right_q, abs=1e-6)                              # not commanded: still held
    assert node.hand_pubs['left'].msgs[-1].motor_cmd[0].kp > 0
    assert call(node, 'estop')[0]
    node.tick()
    for side in ('left', 'right'):
        assert all(m.kp == 0.0 and m.kd > 0.0 for m in node.hand_pubs[side].msgs[-1].motor_cmd)


def test_dex3_hands_release_after_disable_and_stale_state_leaves_joint_states(make_bridge):
    node = make_bridge(hands='left', hand_state_timeout_s=0.05)
    node.on_hand_state('left', hand_state(np.zeros(7)))
    node.on_lowstate(lowstate())
    call(node, 'enable')
    node.tick()
    call(node, 'disable')
    for _ in range(200):
        node.tick()
    assert node.state == 'disabled'
    last = node.hand_pubs['left'].msgs[-1]
    assert all(m.mode & DEX3_TIMEOUT and m.kp == 0.0 for m in last.motor_cmd)
    count = len(node.hand_pubs['left'].msgs)
    node.tick()
    assert len(node.hand_pubs['left'].msgs) == count                 # released once
    time.sleep(0.08)
    node.on_lowstate(lowstate())
    assert list(node.joint_state_pub.msgs[-1].name) == BODY_NAMES    # stale hand left out
    call(node, 'enable')                                           # a stale hand: not held
    node.tick()
    assert len(node.hand_pubs['left'].msgs) == count


@pytest.mark.parametrize('mode', ['arm_sdk', 'lowcmd'])
def test_lost_lowstate_disables_the_bridge(make_bridge, mode):
    node = make_bridge(control_mode=mode, lowstate_timeout_s=0.05)
    node.on_lowstate(lowstate())
    call(node, 'enable')
    for _ in range(60):
        node.tick()
        node.on_lowstate(lowstate())
    assert node.state == 'enabled'
    time.sleep(0.1)
    node.tick()
    assert node.state == 'disabling'
    msg = node.lowcmd_pub.msgs[-1]
    if mode == 'arm_sdk':
        assert msg.motor_cmd[ARM_SDK_WEIGHT_INDEX].q < 1.0
    else:
        assert all(msg.motor_cmd[i].kp == 0.0 for i in range(29))
        time.sleep(0.45)                         # lowcmd damps for ramp_down_s (wall time)
    for _ in range(200):
        node.tick()
    assert node.state == 'disabled'
