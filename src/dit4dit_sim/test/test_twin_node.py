"""
sim_bridge on the G1 twin: the robot's wire, then Unitree's own Python SDK as the commander.

LowState, HandState, LowCmd and diagnostics in process; the SDK (CycloneDDS) over DDS.
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

os.environ.setdefault('MUJOCO_GL', 'egl')

from dit4dit_common.testing import Capture  # noqa: E402
from dit4dit_g1.crc import lowstate_crc  # noqa: E402
from dit4dit_g1.description import load_description  # noqa: E402
from dit4dit_msgs.msg import EpisodeEvent  # noqa: E402
from dit4dit_sim.nodes.sim_bridge import SimBridgeNode  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

G1 = load_description()
ELBOW = G1.body_names.index('left_elbow_joint')


def make_twin(context, **overrides):
    params = {'environment': 'g1_twin', 'render_height': 32, 'render_width': 32,
              'auto_reset': False, 'stamp_clock': 'wall'}
    params.update(overrides)
    node = SimBridgeNode(context=context,
                         parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    return node


def test_the_twin_reports_like_the_robot_at_500_hz_with_valid_crcs(context):
    node = make_twin(context)
    try:
        io = node.io
        io.lowstate_pub = Capture(copy=True)
        io.hand_pubs = {side: Capture(copy=True) for side in io.hand_pubs}
        node.event_pub = Capture()
        for _ in range(100):                       # 0.5 s in 5 ms ticks, between episodes
            node.advance(0.005)
        states = io.lowstate_pub.msgs
        assert len(states) == pytest.approx(250, abs=2)              # 500 Hz, always on
        assert len(io.hand_pubs['left'].msgs) == pytest.approx(50, abs=2)
        for msg in states[-5:]:
            assert msg.crc == lowstate_crc(msg) and msg.mode_machine == 5
        ticks = [m.tick for m in states]
        assert all(b - a == 2 for a, b in zip(ticks, ticks[1:]))   # ms of the twin's clock
        q = np.array([m.q for m in states[-1].motor_state[:29]])
        assert q[ELBOW] == pytest.approx(-0.8, abs=0.02)           # HOME, held by the controller
        assert states[-1].imu_state.accelerometer[2] > 9.0
        assert not node.running and node.event_pub.msgs == []      # no episode until ~/reset
        node.start_episode(2)
        assert [e.event for e in node.event_pub.msgs] == [EpisodeEvent.START]
    finally:
        node.destroy_node()


def test_lockstep_is_refused_for_the_robots_wire(context):
    with pytest.raises(ValueError, match='carry no stamp'):
        make_twin(context, lockstep=True)


def _missing_sdk():
    missing = [m for m in ('cyclonedds', 'unitree_sdk2py') if importlib.util.find_spec(m) is None]
    return f'{", ".join(missing)} not importable (requirements.txt pins them)' if missing else ''


@pytest.mark.dds
def test_unitree_sdk_commands_move_the_twin_and_it_accepts_the_sdks_crc(context):
    """
    Acceptance: a program written against unitree_sdk2py (CycloneDDS) commands the twin.

    It publishes rt/arm_sdk; the twin checks the SDK's CRC, accepts every LowCmd and the elbow
    moves; the SDK recomputes the same CRC for every LowState the twin sends.
    """
    reason = _missing_sdk()
    if reason:
        pytest.skip(reason)
    from rclpy.executors import SingleThreadedExecutor

    node = make_twin(context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    start = float(node.env.body_state()[0][ELBOW])
    target = start + 0.6
    spec = {'role': 'commander', 'domain': int(os.environ['ROS_DOMAIN_ID']),
            'command_topic': 'rt/arm_sdk', 'targets': {str(ELBOW): target}, 'kp': 80.0,
            'kd': 3.0, 'weight': 1.0, 'rate_hz': 250.0, 'report_hz': 20.0, 'duration_s': 60.0}
    proc = subprocess.Popen([sys.executable, '-m', 'dit4dit_g1.unitree_sdk_peer',
                             json.dumps(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    reports, output = [], []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.002)
            while not lines.empty():
                line = lines.get()
                output.append(line)
                if line.startswith('{"tick"'):
                    reports.append(json.loads(line))
            if reports and reports[-1]['q'][ELBOW] > target - 0.1:
                break
            assert proc.poll() is None, 'SDK peer exited:\n' + ''.join(output)[-3000:]
        assert reports, ('the Unitree SDK received no LowState from the twin (Fast DDS -> '
                         'CycloneDDS)\n' + ''.join(output)[-3000:])
        motors = node.env.motors
        assert motors.accepted['arm_sdk'] > 0, (
            'the twin received no LowCmd from the SDK\n' + ''.join(output)[-3000:])
        assert reports[-1]['q'][ELBOW] > target - 0.1, reports[-1]['q'][ELBOW]
        assert all(r['crc'] == r['sdk_crc'] and r['mode_machine'] == 5 for r in reports)
        assert sum(motors.rejected.values()) == 0, motors.counters()
        print(f'SDK -> twin: elbow {start:.2f} -> {reports[-1]["q"][ELBOW]:.2f} rad '
              f'(target {target:.2f}); {motors.accepted["arm_sdk"]} LowCmd accepted')
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        executor.shutdown()
        node.destroy_node()
