"""
The G1 graph against the twin over DDS: ``g1.launch.py hardware:=sim``, one process per node.

policy_node -> action_executor -> g1_bridge -> /arm_sdk LowCmd + Dex3 HandCmd -> the twin
(``dit4dit_sim`` sim_bridge on ``g1_twin``: MuJoCo physics behind the robot's own wire), with the
shipped demo checkpoint. This process plays the operator (``dit4dit_bringup.evaluate_g1``'s
steps) and the mischief: a LowCmd with a broken CRC, an e-stop in mid-motion, a twin that freezes
(SIGSTOP) under an enabled bridge. ``make demo-g1`` runs the same graph on 20 held-out states
(its command: ``test_g1_twin_demo``).
"""

from pathlib import Path
import signal
import time

from dit4dit_bringup.evaluate_g1 import Operator, Session
from dit4dit_bringup.graph import g1_graph, G1Arguments
from dit4dit_bringup.run_graph import ProcessGraph
from dit4dit_g1.description import load_description
import numpy as np
import pytest

pytestmark = pytest.mark.dds

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / 'demo' / 'g1_tabletop_reach_tiny'
G1 = load_description()
ARMS = list(range(15, 29))
ELBOW = G1.body_names.index('left_elbow_joint')


class Twin:
    """The running graph, the operator and what this test watches on the robot's wire."""

    def __init__(self, graph, processes, operator, node):
        """Subscribe to LowState (q, dq of the 29 body motors with their arrival time)."""
        from dit4dit_common import topics
        from dit4dit_sim.nodes.robot_io import UNITREE_QOS
        from unitree_hg.msg import LowCmd, LowState

        self.graph, self.processes, self.op, self.node = graph, processes, operator, node
        self.session = Session(graph, processes, operator)
        self.states = []
        self.lowcmds = []
        node.create_subscription(LowState, topics.name('lowstate'), self._on_state, UNITREE_QOS)
        node.create_subscription(LowCmd, topics.name('arm_sdk'), self.lowcmds.append,
                                 UNITREE_QOS)
        # mischief goes to /lowcmd: what is published on /arm_sdk here would be recorded as the
        # bridge's weight by the operator
        self.lowcmd = node.create_publisher(LowCmd, topics.name('lowcmd'), UNITREE_QOS)

    def _on_state(self, msg):
        motors = msg.motor_state[:29]
        self.states.append((time.monotonic(), np.array([m.q for m in motors]),
                            np.array([m.dq for m in motors])))

    def spin(self, seconds: float, each=None):
        """Spin (and call ``each()`` every 4 ms) for ``seconds``; fail if a process died."""
        end, next_each = time.monotonic() + seconds, 0.0
        while time.monotonic() < end:
            if each is not None and time.monotonic() >= next_each:
                each()
                next_each = time.monotonic() + 0.004
            self.graph.spin_once(0.002)
        assert not self.processes.exited(), self.processes.exited()

    def drain(self, timeout: float = 10.0):
        """Wait until two diagnostics in a row report the same counters (the queue is drained)."""
        end, last = time.monotonic() + timeout, None
        while time.monotonic() < end:
            seen = self.op.twin_counters
            self.session.wait(lambda: self.op.twin_counters is not seen, 3.0, 'diagnostics')
            if self.op.twin_counters == last:
                return
            last = self.op.twin_counters
        raise AssertionError(f'the twin kept counting for {timeout} s: {last}')

    def q(self):
        """Return the latest measured body positions."""
        return self.states[-1][1]

    def reset(self, index: int):
        """Reset the twin to held-out state ``index`` (the bridge disabled first)."""
        from dit4dit_msgs.srv import ResetEpisode

        self.session.disable_bridge()
        self.session.call(self.op.reset_client, ResetEpisode.Request(initial_state_index=index),
                          '/g1_twin/reset')


@pytest.fixture(scope='module')
def twin(tmp_path_factory):
    from dit4dit_bringup.closed_loop import EpisodeMonitor
    from dit4dit_common.runner import Graph
    import rclpy

    logs = tmp_path_factory.mktemp('g1_twin_logs')
    specs = g1_graph(G1Arguments(checkpoint=str(DEMO), hardware='sim'))
    with Graph({'operator': lambda: rclpy.create_node('g1_twin_test')}, name='test') as graph:
        node = graph.nodes['operator']
        operator = Operator(node, EpisodeMonitor(0, 'none'), 'arm_sdk')
        with ProcessGraph(specs, log_dir=logs) as processes:
            t = Twin(graph, processes, operator, node)
            try:
                assert t.session.wait_ready()       # the twin at real time after start-up
                assert t.session.wait(lambda: len(t.states) > 10, 10.0, '/lowstate')
            except Exception:
                _dump(logs)
                raise
            yield t
            if processes.exited():
                _dump(logs)


def _dump(logs):
    for log in sorted(Path(logs).glob('*.log')):
        print(f'--- {log.name}\n{log.read_text()[-2000:]}')


def test_a_lowcmd_with_a_broken_crc_moves_nothing_on_the_twin(twin):
    """On /lowcmd at 250 Hz for 1 s: dropped and counted, nothing moves; the intact one moves."""
    from dit4dit_g1.crc import lowcmd_crc
    from dit4dit_g1.lowcmd import G1CommandBuilder
    from unitree_hg.msg import LowCmd

    twin.reset(0)
    twin.spin(0.5)
    before = twin.q().copy()
    builder = G1CommandBuilder(G1, 'lowcmd', [ELBOW])       # the others held where they are
    builder.set_hold_pose(before)
    msg = LowCmd()
    builder.fill(msg, [before[ELBOW] + 0.5], mode_machine=5)
    good = msg.crc
    msg.crc ^= 0x00010000
    twin.drain()
    rejected, counters = twin.op.rejected, dict(twin.op.twin_counters)
    twin.spin(1.0, each=lambda: twin.lowcmd.publish(msg))
    twin.drain()
    # The twin takes what DDS delivers (reliable, depth 10) while the CPU allows: with this test
    # process, the policy and the bridge on two cores, about 17 of the ~150 sent. Every one it
    # took was dropped for its CRC, none accepted.
    assert twin.op.rejected - rejected >= 10
    assert twin.op.twin_counters['rejected_crc'] - counters.get('rejected_crc', 0) >= 10
    assert twin.op.twin_counters.get('accepted_lowcmd', 0) == counters.get('accepted_lowcmd', 0)
    assert np.abs(twin.q() - before).max() < 0.01, 'a LowCmd with a broken CRC moved the robot'
    msg.crc = good                                 # intact: it moves (the test can fail)
    assert lowcmd_crc(msg) == good
    twin.spin(1.0, each=lambda: twin.lowcmd.publish(msg))
    assert twin.q()[ELBOW] - before[ELBOW] > 0.3


def test_the_executors_estop_damps_the_twins_motors(twin):
    """Mid-episode, /action_executor/estop: the bridge sends kp = 0 and the arms slow down."""
    from std_srvs.srv import Trigger

    op, session = twin.op, twin.session
    twin.reset(3)
    session.trigger('/g1_bridge/enable')
    session.wait(lambda: op.weight >= 1.0, 10.0, 'the weight to reach 1')
    session.trigger('/action_executor/enable')
    start = len(twin.states)
    twin.spin(2.5)                                # the ramp in: the policy moves the arms
    moving = np.abs(np.array([dq for _, _, dq in twin.states[start:]])[:, ARMS]).max()
    assert moving > 0.1, f'the arms never moved (|dq| <= {moving:.3f} rad/s)'
    client = op.node.create_client(Trigger, '/action_executor/estop')
    session.call(client, Trigger.Request(), '/action_executor/estop')
    stopped = time.monotonic()
    commands = len(twin.lowcmds)
    twin.spin(3.0)
    damping = twin.lowcmds[commands + 50:]        # the e-stop reaches the bridge within 0.2 s
    assert damping, 'the bridge stopped publishing'
    assert all(m.motor_cmd[s].kp == 0.0 and m.motor_cmd[s].kd > 0.0
               for m in damping for s in range(12, 29))
    late = [dq for t, _, dq in twin.states if t > stopped + 2.0]
    speed = np.abs(np.array(late)[:, ARMS]).max(axis=1)
    print(f'e-stop: arm speed {moving:.2f} rad/s before, {speed.max():.3f} rad/s 2-3 s after')
    # Damping, no feed-forward (Unitree's damping mode): the arms sink slowly under gravity,
    # at the speed the motors' kd allows, instead of following the policy.
    assert speed.max() < min(0.5 * moving, 0.3), 'the damped arms did not slow down'
    session.trigger('/g1_bridge/enable')          # the e-stop is left by enabling again
    session.wait(lambda: op.weight >= 1.0, 10.0, 'the weight to reach 1')


def test_the_lowstate_watchdog_disables_the_bridge_when_the_twin_freezes(twin):
    """SIGSTOP the twin under an enabled bridge: the weight ramps to 0 and LowCmd stops."""
    op, session = twin.op, twin.session
    if op.weight < 1.0:
        twin.reset(4)
        session.trigger('/g1_bridge/enable')
        session.wait(lambda: op.weight >= 1.0, 10.0, 'the weight to reach 1')
    proc = next(p for spec, p in twin.processes.procs if spec.name == 'g1_twin')
    proc.send_signal(signal.SIGSTOP)
    try:
        frozen = time.monotonic()
        session.wait(lambda: op.weight <= 0.0, 10.0, 'the weight to reach 0')
        took = time.monotonic() - frozen
        count = len(op.weights)
        twin.spin(0.5)
    finally:
        proc.send_signal(signal.SIGCONT)
    ramp = [w for t, w in op.weights if t >= frozen - op.t0]
    assert ramp == sorted(ramp, reverse=True) and ramp[-1] == 0.0
    # never faster than the ramp (safety); slower when the bridge's timer is starved by the graph
    # on two cores: it steps the weight by period / ramp_s per LowCmd (CI measured 5.3 s for 3 s)
    assert G1.ramp_down_s - 0.5 < took < 2 * G1.ramp_down_s + 1.0, took
    assert len(op.weights) == count, 'the bridge still publishes after its ramp down'
    log = (Path(twin.processes.log_dir) / 'g1_bridge.log').read_text()
    assert 'no /lowstate for 0.100 s: disabling' in log
    twin.spin(0.5)
    assert twin.states[-1][0] > time.monotonic() - 0.2, 'the twin did not resume'
