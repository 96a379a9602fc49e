"""
Acceptance: g1_bridge (rclpy over Fast DDS) against Unitree's own Python SDK (over CycloneDDS).

A separate process (``dit4dit_g1.unitree_sdk_peer``, written against ``unitree_sdk2py``) plays the
robot: it publishes ``rt/lowstate`` and reports every ``rt/arm_sdk`` / ``rt/lowcmd`` command it
receives, with the CRC recomputed by the SDK's own ``unitree_sdk2py.utils.crc.CRC``. Both
vendors stay on loopback: Fast DDS through ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (set by
conftest), CycloneDDS through an ``lo``-only, multicast-free configuration with 127.0.0.1 as its
unicast peer.

Needs ``unitree-sdk2py-dimos`` and ``cyclonedds`` in the environment; skipped otherwise.
"""

import importlib.util
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

from dit4dit_g1.description import load_description
from dit4dit_g1.lowcmd import ARM_SDK_WEIGHT_INDEX
import numpy as np
import pytest

pytestmark = pytest.mark.dds

ARMS = list(range(15, 29))
ARM_NAMES = [load_description().body_names[i] for i in ARMS]
PEER_Q = [round(0.02 * i - 0.1, 4) for i in range(29)]
MODE_MACHINE = 5


def _missing_sdk():
    missing = [m for m in ('cyclonedds', 'unitree_sdk2py') if importlib.util.find_spec(m) is None]
    if missing:
        return (f'{", ".join(missing)} not importable: pip install unitree-sdk2py-dimos==1.0.3 '
                'cyclonedds==11.0.1 (unitree-sdk2py-dimos with --no-deps: it asks for '
                'opencv-python, which clashes with opencv-python-headless)')
    return ''


@pytest.fixture
def sdk_peer(request):
    reason = _missing_sdk()
    if reason:
        pytest.skip(reason)
    topic = request.param

    def start():
        spec = {'domain': int(os.environ['ROS_DOMAIN_ID']), 'command_topic': topic,
                'q': PEER_Q, 'mode_machine': MODE_MACHINE, 'rate_hz': 200.0,
                'report_hz': 50.0, 'duration_s': 90.0}
        proc = subprocess.Popen([sys.executable, '-m', 'dit4dit_g1.unitree_sdk_peer',
                                 json.dumps(spec)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = queue.Queue()

        def pump():
            for line in proc.stdout:
                lines.put(line)
        threading.Thread(target=pump, daemon=True).start()
        return proc, lines

    proc, lines = start()
    yield topic, proc, lines
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.parametrize('sdk_peer', ['rt/arm_sdk', 'rt/lowcmd'], indirect=True)
def test_unitree_sdk_sees_our_commands_and_we_see_its_state(sdk_peer, variant):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import JointState
    from std_srvs.srv import Trigger

    from dit4dit_g1.nodes.g1_bridge import G1BridgeNode

    topic, proc, lines = sdk_peer
    mode = topic.split('/')[1]
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    params = {'control_mode': mode, 'rate_hz': 250.0,
              'description': variant(ramp_down_s=0.2, max_velocity=3.0)}
    bridge = G1BridgeNode(context=ctx, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()])
    helper = rclpy.create_node('interop_driver', context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(bridge)
    executor.add_node(helper)
    target = np.linspace(-0.5, 0.5, 14)
    target[5] = -4.0                                   # the bridge clamps it to -1.0
    expected = np.clip(target, -1.0, 1.0)
    cmd_pub = helper.create_publisher(JointState, '/dit4dit/joint_command', 10)
    enable = helper.create_client(Trigger, '/g1_bridge/enable')
    reports, output = [], []
    try:
        deadline = time.monotonic() + 60
        future = None
        good = None
        while time.monotonic() < deadline and good is None:
            assert proc.poll() is None, 'SDK peer exited:\n' + ''.join(output)[-3000:]
            executor.spin_once(timeout_sec=0.004)
            if future is None and bridge.core.measured is not None and enable.service_is_ready():
                future = enable.call_async(Trigger.Request())
            if future is not None and future.done():
                assert future.result().success, future.result().message
                cmd_pub.publish(JointState(name=ARM_NAMES,
                                           position=[float(v) for v in target]))
            while not lines.empty():
                line = lines.get()
                output.append(line)
                if line.startswith('{"mode_pr"'):
                    report = json.loads(line)
                    reports.append(report)
                    q = np.array(report['q'])
                    weight_ok = (q[ARM_SDK_WEIGHT_INDEX] == 1.0) if mode == 'arm_sdk' else True
                    if weight_ok and np.allclose(q[ARMS], expected, atol=1e-6):
                        good = report
        assert bridge.core.measured is not None, (
            'no LowState from the Unitree SDK reached rclpy (CycloneDDS -> Fast DDS discovery '
            'on loopback failed)\n' + ''.join(output)[-3000:])
        assert reports, ('the Unitree SDK received no LowCmd from rclpy (Fast DDS -> '
                         'CycloneDDS)\n' + ''.join(output)[-3000:])
        assert good is not None, f'last report: {reports[-1]}'
        # the robot side (Unitree's SDK) sees valid commands ...
        for report in reports:
            assert report['crc'] == report['sdk_crc'], report
            assert report['mode_machine'] == MODE_MACHINE and report['mode_pr'] == 0
            assert all(0.0 <= w <= 1.0 for w in [report['q'][ARM_SDK_WEIGHT_INDEX]])
        assert [good['kp'][i] for i in ARMS] == [60.0] * 14
        assert [good['mode'][i] for i in ARMS] == [1] * 14
        if mode == 'lowcmd':
            assert all(good['mode'][i] == 1 and good['kp'][i] > 0 for i in range(15))
            assert good['q'][ARM_SDK_WEIGHT_INDEX] == 0.0
        # ... and the bridge decoded the SDK's LowState
        assert bridge.core.measured == pytest.approx(np.array(PEER_Q), abs=1e-6)
        assert bridge.core.mode_machine == MODE_MACHINE
    finally:
        executor.shutdown()
        helper.destroy_node()
        bridge.destroy_node()
        rclpy.try_shutdown(context=ctx)
