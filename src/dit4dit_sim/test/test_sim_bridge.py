"""sim_bridge: episodes, events and topics in-process (callbacks), then as a process over DDS."""

import os
import signal
import subprocess
import sys
import time

os.environ.setdefault('MUJOCO_GL', 'egl')

from dit4dit_common.testing import Capture  # noqa: E402
from dit4dit_msgs.msg import EpisodeEvent  # noqa: E402
from dit4dit_msgs.srv import ResetEpisode  # noqa: E402
from dit4dit_sim.experts.g1_tabletop_expert import TabletopExpert  # noqa: E402
from dit4dit_sim.nodes.sim_bridge import episode_seed, SimBridgeNode  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import rclpy  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402


def make_bridge(context, **overrides):
    params = {'render_height': 48, 'render_width': 64, 'split': 'held_out', 'pause_s': 0.1}
    params.update(overrides)
    node = SimBridgeNode(context=context,
                         parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    for name in ('image_pub', 'event_pub', 'task_pub', 'objects_pub', 'clock_pub'):
        setattr(node, name, Capture())
    node.image_pubs = [node.image_pub]
    node.joint_pub = node.io.pub = Capture()        # the robot side: joint_topics
    node.on_command = node.io.on_command
    return node


def events(node):
    return [(m.event, m.episode_index, m.initial_state_index) for m in node.event_pub.msgs]


def test_an_episode_starts_and_publishes_camera_joints_task_and_objects(context):
    node = make_bridge(context)
    try:
        node.advance(0.02)
        assert events(node) == [(EpisodeEvent.START, 0, 0)]
        start = node.event_pub.msgs[0]
        assert start.task == 'g1_tabletop/reach' and start.instruction.startswith('reach the ')
        assert node.task_pub.msgs[-1].data == start.instruction
        image = node.image_pub.msgs[-1]
        assert (image.height, image.width, image.encoding) == (48, 64, 'rgb8')
        joints = node.joint_pub.msgs[-1]
        assert len(joints.name) == 43 and len(joints.position) == 43
        assert {m.ns for m in node.objects_pub.msgs[-1].markers} == {
            'red_cube', 'green_cube', 'blue_cube'}
        for _ in range(200):           # one simulated second in the node's 5 ms ticks
            node.advance(0.005)
        assert len(node.image_pub.msgs) == pytest.approx(1 + 15, abs=2)     # 15 Hz of sim time
        assert len(node.joint_pub.msgs) == pytest.approx(1 + 100, abs=3)
        stamps = [m.clock.sec + m.clock.nanosec * 1e-9 for m in node.clock_pub.msgs]
        assert all(b > a for a, b in zip(stamps, stamps[1:]))
    finally:
        node.destroy_node()


def test_expert_commands_give_success_then_the_next_episode_until_max(context):
    node = make_bridge(context, max_episodes=2)
    try:
        expert = TabletopExpert(node.env)
        node.advance(0.02)
        episode = -1
        for _ in range(2000):
            if node.finished:
                break
            if node.running and node.episode_index != episode:
                episode = node.episode_index
                expert.reset()
            if node.running:
                target = expert.act(1 / 30)
                node.on_command(JointState(name=list(expert.joints), position=target.tolist()))
            node.advance(1 / 30)
        kinds = [e[0] for e in events(node)]
        assert kinds == [EpisodeEvent.START, EpisodeEvent.SUCCESS] * 2
        assert [e[2] for e in events(node)] == [0, 0, 1, 1]
        assert node.finished and node.results == [(0, True), (1, True)]
    finally:
        node.destroy_node()


def test_time_limit_fails_and_reset_aborts_a_running_episode(context):
    node = make_bridge(context, auto_reset=False)
    try:
        node.advance(0.05)
        assert events(node) == []                          # waits for ~/reset
        response = node._on_reset(ResetEpisode.Request(initial_state_index=3, task='push'),
                                  ResetEpisode.Response())
        assert response.success and response.instruction.startswith('push the ')
        response = node._on_reset(ResetEpisode.Request(initial_state_index=5),
                                  ResetEpisode.Response())
        assert response.success and response.episode_index == 1
        assert [e[0] for e in events(node)] == [EpisodeEvent.START, EpisodeEvent.ABORT,
                                                EpisodeEvent.START]
        bad = node._on_reset(ResetEpisode.Request(initial_state_index=20),
                             ResetEpisode.Response())
        assert not bad.success and 'out of range' in bad.message
        bad = node._on_reset(ResetEpisode.Request(initial_state_index=0, task='stack'),
                             ResetEpisode.Response())
        assert not bad.success and 'valid: reach, push' in bad.message
        while node.running:
            node.advance(0.05)
        assert events(node)[-1] == (EpisodeEvent.FAILURE, 1, 5)
        assert node.env.time >= node.env.task.time_limit_s
    finally:
        node.destroy_node()


def test_time_limit_parameter_overrides_the_environments(context):
    node = make_bridge(context, auto_reset=False, time_limit_s=0.5)
    try:
        node.start_episode(0)
        while node.running:
            node.advance(0.05)
        assert events(node)[-1][0] == EpisodeEvent.FAILURE
        assert node.event_pub.msgs[-1].message == 'time limit'
        assert node.env.time == pytest.approx(0.5, abs=0.01)
        assert node.env.task.time_limit_s > 1.0
    finally:
        node.destroy_node()


def test_malformed_commands_and_tasks_are_refused(context):
    node = make_bridge(context)
    try:
        node.advance(0.02)
        act = node.env.model.actuator('left_elbow_joint').id
        before = node.env.data.ctrl[act]
        for msg in (JointState(name=['left_elbow_joint'], position=[float('nan')]),
                    JointState(name=['left_elbow_joint', 'tail'], position=[1.0, 0.0]),
                    JointState(name=['left_elbow_joint'], position=[1.0, 2.0])):
            node.on_command(msg)
            assert node.env.data.ctrl[act] == before
        node.on_command(JointState(name=['left_elbow_joint'], position=[1.0]))
        assert node.env.data.ctrl[act] == pytest.approx(1.0)
        late = JointState(name=['left_elbow_joint'], position=[0.5])
        late.header.stamp.sec = node.episode_start_ns // 1_000_000_000 - 1   # previous episode
        node.on_command(late)
        assert node.env.data.ctrl[act] == pytest.approx(1.0) and node.stale_commands == 1
        response = node._on_reset(ResetEpisode.Request(initial_state_index=-1, task='stack'),
                                  ResetEpisode.Response())
        assert not response.success and 'valid: reach, push' in response.message
        response = node._on_reset(ResetEpisode.Request(initial_state_index=-1, task='push'),
                                  ResetEpisode.Response())
        assert response.success and node.env.task.name == 'push'
        assert node.state_index == 1                  # -1: the next initial state in order
    finally:
        node.destroy_node()


def test_lockstep_steps_once_per_fresh_command_or_after_the_timeout(context):
    node = make_bridge(context, lockstep=True, lockstep_timeout_s=0.3)
    try:
        # The first episode starts within a long tick: its steps still wait for a command
        node.advance(0.5)
        assert node.running and node.env.time == 0.0, 'stepped before any command'
        start = node.env.time
        assert node.lockstep_counts(node.episode_index)['steps'] == 0
        observations = len(node.joint_pub.msgs)
        for _ in range(3):
            node.tick()
        assert node.env.time == start                      # nothing answered the observation
        command = JointState(name=['left_elbow_joint'], position=[-0.5])
        command.header.stamp = node.joint_pub.msgs[-1].header.stamp
        node.on_command(command)
        node.tick()
        assert node.env.time == pytest.approx(start + 0.05)
        assert len(node.joint_pub.msgs) == observations + 1     # every step is observed
        assert len(node.objects_pub.msgs) == len(node.joint_pub.msgs)
        node.on_command(command)                           # answers the previous observation
        node.tick()
        assert node.env.time == pytest.approx(start + 0.05)
        time.sleep(0.35)
        node.tick()
        assert node.env.time == pytest.approx(start + 0.10) and node.lockstep_timeouts == 1
        # the episode's record, kept where commands are applied: one answered, one timed out
        episode = node.episode_index
        assert node.lockstep_counts(episode) == {'steps': 2, 'commands': 1,
                                                 'lockstep_timeouts': 1}
        assert node.lockstep_counts(episode + 1) is None
    finally:
        node.destroy_node()


def test_lockstep_without_timeout_waits_for_ever_and_says_so(context, monkeypatch):
    from dit4dit_sim.nodes import sim_bridge

    monkeypatch.setattr(sim_bridge, 'LOCKSTEP_PATIENCE_S', 0.05)
    node = make_bridge(context, lockstep=True, lockstep_timeout_s=0.0)
    warnings = []
    monkeypatch.setattr(node, 'get_logger', lambda: type(
        'Log', (), {'warn': lambda self, text, **kw: warnings.append(text),
                    'info': lambda self, text, **kw: None})())
    try:
        node.advance(0.02)
        start = node.env.time
        node.tick()
        time.sleep(0.1)
        node.tick()
        assert node.env.time == start and node.lockstep_timeouts == 0
        assert warnings and 'without a command answering the observation' in warnings[-1]
    finally:
        node.destroy_node()


def test_seeds_of_splits():
    held = tuple(range(1000, 1020))
    assert episode_seed('held_out', 3, held) == (1003, '')
    assert episode_seed('train', 3, held) == (3, '')
    with pytest.raises(ValueError):
        episode_seed('train', 1000, held)
    with pytest.raises(ValueError):
        episode_seed('held_out', -1, held)
    # every target of a scene in turn, then the next scene
    colours = ('red', 'green', 'blue')
    assert [episode_seed('train_every_target', i, held, colours) for i in range(4)] == [
        (0, 'red'), (0, 'green'), (0, 'blue'), (1, 'red')]
    with pytest.raises(ValueError, match='out of range'):
        episode_seed('train_every_target', 3000, held, colours)
    with pytest.raises(ValueError, match='needs an environment with targets'):
        episode_seed('train_every_target', 0, held, ())


def test_every_target_split_names_each_cube_of_a_scene_in_turn(context):
    node = make_bridge(context, split='train_every_target', auto_reset=False)
    try:
        seen = []
        for index in range(3):
            node.start_episode(index)
            seen.append((node.env.state.cubes, node.env.instruction))
        assert [i for _, i in seen] == ['reach the red cube', 'reach the green cube',
                                        'reach the blue cube']
        assert seen[0][0] == seen[1][0] == seen[2][0]
    finally:
        node.destroy_node()


@pytest.mark.dds
def test_sim_bridge_process_over_dds():
    """The node as its own process: images and a START event arrive over DDS; SIGINT stops it."""
    from sensor_msgs.msg import Image
    proc = subprocess.Popen(
        [sys.executable, '-m', 'dit4dit_sim.nodes.sim_bridge', '--ros-args',
         '-p', 'render_height:=48', '-p', 'render_width:=64'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rclpy.init()
    node = rclpy.create_node('sim_bridge_probe')
    try:
        images, starts = [], []
        node.create_subscription(Image, '/camera/image_raw', images.append, 10)
        node.create_subscription(EpisodeEvent, '/dit4dit/episode_event', starts.append, 10)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (len(images) >= 5 and starts):
            rclpy.spin_once(node, timeout_sec=0.1)
            assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert len(images) >= 5 and images[-1].width == 64
        assert starts and starts[0].event in (EpisodeEvent.START, EpisodeEvent.FAILURE)
        assert np.frombuffer(bytes(images[-1].data), np.uint8).std() > 5   # a real picture
    finally:
        node.destroy_node()
        rclpy.shutdown()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0


def test_expert_reads_the_task_and_cube_from_the_start_event():
    from dit4dit_sim.nodes.scripted_expert import parse_event
    event = EpisodeEvent(task='g1_tabletop/push', instruction='push the green cube')
    assert parse_event(event) == ('push', 'green')
    with pytest.raises(ValueError, match='not a g1_tabletop task'):
        parse_event(EpisodeEvent(task='libero/x', instruction='push the green cube'))
    with pytest.raises(ValueError, match='no single cube colour'):
        parse_event(EpisodeEvent(task='g1_tabletop/reach', instruction='reach the cube'))
