"""libero_expert answers each whole observation once; through sim_bridge it matches direct runs."""

import os

os.environ.setdefault('MUJOCO_GL', 'egl')

from dit4dit_common.testing import Capture  # noqa: E402
from dit4dit_msgs.msg import EpisodeEvent  # noqa: E402
from dit4dit_sim.envs.libero import COMMAND_NAMES  # noqa: E402
from dit4dit_sim.expert_parity import compare  # noqa: E402
from dit4dit_sim.experts.libero_expert import plan_for_task  # noqa: E402
from dit4dit_sim.nodes.libero_expert import LiberoExpertNode, parse_event  # noqa: E402
import pytest  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

TASK = 'libero_spatial/0'


def stamped(msg, sec):
    msg.header.stamp.sec = sec
    return msg


def start(task=f'libero/{TASK}', sec=10):
    return stamped(EpisodeEvent(event=EpisodeEvent.START, task=task, instruction='pick up'), sec)


def joints(sec):
    return stamped(JointState(name=['panda_finger_joint1', 'panda_finger_joint2'],
                              position=[0.04, -0.04]), sec)


def objects(sec, names):
    markers = []
    for i, name in enumerate(names):
        m = stamped(Marker(ns=name, id=i), sec)
        m.pose.position.x, m.pose.position.y, m.pose.position.z = 0.1 * i, 0.05 * i, 1.0
        markers.append(m)
    return MarkerArray(markers=markers)


def test_parse_event_accepts_libero_tasks_only():
    assert parse_event(start()) == TASK
    for task in ('g1_tabletop/reach', 'libero', 'libero/'):
        with pytest.raises(ValueError):
            parse_event(start(task))


def test_one_command_per_whole_new_observation_stamped_like_it(context):
    node = LiberoExpertNode(context=context)
    node.pub = Capture()
    names = ['eef', *plan_for_task(TASK)]
    try:
        node._on_joints(joints(11))
        node._on_objects(objects(11, names))
        assert node.pub.msgs == []                         # no episode yet
        node._on_event(start(task='g1_tabletop/reach'))
        node._on_joints(joints(12))
        node._on_objects(objects(12, names))
        assert node.pub.msgs == []                         # not a LIBERO episode
        node._on_event(start(sec=20))
        node._on_joints(joints(19))
        node._on_objects(objects(19, names))
        assert node.pub.msgs == []                         # observed before the START
        node._on_joints(joints(21))
        assert node.pub.msgs == []                         # markers of that instant missing
        node._on_objects(objects(21, names))
        assert len(node.pub.msgs) == 1
        command = node.pub.msgs[0]
        assert list(command.name) == list(COMMAND_NAMES) and len(command.position) == 7
        assert command.header.stamp.sec == 21
        node._on_objects(objects(21, names))               # the same instant again
        node._on_joints(joints(22))
        node._on_objects(objects(23, names))               # stamps disagree
        assert len(node.pub.msgs) == 1
        node._on_objects(objects(22, ['eef']))             # marker set without the plan's names
        node._on_joints(joints(24))
        node._on_objects(objects(24, ['blue_cube']))       # no eef: not this simulator
        assert len(node.pub.msgs) == 1
        node._on_event(stamped(EpisodeEvent(event=EpisodeEvent.SUCCESS), 30))
        node._on_joints(joints(31))
        node._on_objects(objects(31, names))
        assert len(node.pub.msgs) == 1                     # silent after the end
    finally:
        node.destroy_node()


def test_the_bridge_adds_no_regression_on_a_libero_episode():
    table = compare([TASK], episodes=1, render_size=64, log=lambda *_: None)
    row = table['rows'][0]
    assert row['direct'] and row['ros'], table
    assert table['agreeing_episodes'] == 1
