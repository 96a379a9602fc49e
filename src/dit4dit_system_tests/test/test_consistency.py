"""
One fact, one place: every other mention of a topic, parameter or G1 fact agrees with its source.

* Topics: the registry (``dit4dit_common.topics``). The graphs are built for real (every node of
  the G1, simulation and collection graphs, in this process) and their publishers' and
  subscriptions' resolved names are compared with the recording presets, the rviz view and the
  recording docs.
* Parameters: each node's ``PARAMETERS`` table. Every key that a graph description or a per-node
  YAML file gives a node must be one the node declares.
* The G1 description (``dit4dit_g1``): the feature maps' joints, the simulated G1's joints.
"""

import importlib
import os
from pathlib import Path
import re

os.environ.setdefault('MUJOCO_GL', 'egl')

from dit4dit_bringup.graph import (  # noqa: E402
    collect_graph, CollectArguments, config_dir, g1_graph, G1_PARAMS, G1Arguments,
    node_parameters, sim_graph, SIM_PARAMS, SimArguments)
from dit4dit_common import topics  # noqa: E402
from dit4dit_common.params import names  # noqa: E402
from dit4dit_g1.description import load_description  # noqa: E402
from dit4dit_policy.testing import make_tiny_checkpoint  # noqa: E402
from dit4dit_sim.expert_parity import expert_graph, ExpertArguments  # noqa: E402
from dit4dit_train.recording import load_preset  # noqa: E402
import pytest  # noqa: E402

pytestmark = pytest.mark.dds
ROOT = Path(__file__).resolve().parents[3]
G1 = load_description()
BUILTIN = {'use_sim_time'}          # declared by every rclpy node


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp('ckpt')
    return {'g1': make_tiny_checkpoint(root / 'g1', list(G1.profile.policy_joints)),
            'sim': make_tiny_checkpoint(root / 'sim', list(G1.profile.policy_joints)[:14],
                                        fps=15, cameras=[('head', 64, 64)])}


@pytest.fixture(scope='module')
def graphs(checkpoints, tmp_path_factory):
    urdf = tmp_path_factory.mktemp('urdf') / 'g1.urdf'
    urdf.write_text('<robot name="g1"/>')
    out = tmp_path_factory.mktemp('bags') / 'b'
    return {
        'g1': g1_graph(G1Arguments(checkpoint=str(checkpoints['g1']), urdf=str(urdf))),
        'g1_compressed': g1_graph(G1Arguments(checkpoint=str(checkpoints['g1']),
                                              compressed=True)),
        'g1_twin': g1_graph(G1Arguments(checkpoint=str(checkpoints['g1']), hardware='sim')),
        'sim': sim_graph(SimArguments(checkpoint=str(checkpoints['sim']))),
        'collect': collect_graph(CollectArguments(output=str(out), episodes=1)),
        'collect_libero': collect_graph(CollectArguments(
            output=str(out), episodes=1, environment='libero', task='libero_spatial/0')),
        'expert': expert_graph(ExpertArguments()),
    }


def _endpoints(specs):
    """Build the Python nodes of ``specs`` in this process; return {node: (pubs, subs)}."""
    from dit4dit_common.runner import build_node, Graph

    python = {s.name: (lambda s=s: build_node(s)) for s in specs
              if s.node_class and s.name != 'bag_recorder'}   # it records what others carry
    with Graph(python, name='consistency') as graph:
        return {name: ({p.topic_name for p in node.publishers},
                       {s.topic_name for s in node.subscriptions})
                for name, node in graph.nodes.items()}


def _carried(*specs_lists):
    topics_seen = set()
    for specs in specs_lists:
        for pubs, subs in _endpoints(specs).values():
            topics_seen |= pubs | subs
    return topics_seen


def test_every_preset_topic_is_carried_by_its_graph(graphs):
    robot = _carried(graphs['g1'], graphs['g1_compressed'])
    missing = [t.name for t in load_preset('g1').topics if t.name not in robot]
    assert not missing, f'record_g1 lists topics the G1 graph neither publishes nor reads: ' \
        f'{missing}'
    simulation = _carried(graphs['sim'], graphs['collect'])
    missing = [t.name for t in load_preset('sim').enabled_topics() if t.name not in simulation]
    assert not missing, f'record_sim lists topics the simulation graphs do not carry: {missing}'
    disabled = [t.name for t in load_preset('sim').topics if not t.enabled]
    assert set(disabled) <= robot
    libero = _carried(graphs['collect_libero'])
    missing = [t.name for t in load_preset('libero').enabled_topics() if t.name not in libero]
    assert not missing, f'record_libero lists topics LIBERO collection does not carry: {missing}'


def test_every_topic_a_graph_node_uses_is_in_the_registry(graphs):
    registry = {t.name for t in topics.TOPICS.values()}
    private = re.compile(r'^/(rosout|parameter_events)$')
    for name, specs in graphs.items():
        for node, (pubs, subs) in _endpoints(specs).items():
            unknown = {t for t in pubs | subs if t not in registry and not private.match(t)}
            assert not unknown, f'{name}/{node} uses topics outside the registry: {unknown}'


def test_the_registry_camera_names_follow_image_transport():
    assert topics.name('camera_compressed') == topics.name('camera') + '/compressed'


def _declared(spec):
    module = importlib.import_module(spec.module)
    return set(names(module.PARAMETERS)) | BUILTIN


def test_graph_parameter_keys_are_declared_by_their_nodes(graphs):
    wrong = []
    for name, specs in graphs.items():
        for spec in specs:
            if not spec.node_class:
                continue                    # robot_state_publisher (C++): not ours
            extra = set(spec.parameters) - _declared(spec)
            if extra:
                wrong.append(f'{name}/{spec.name}: {sorted(extra)}')
    assert not wrong, 'parameters the nodes do not declare:\n' + '\n'.join(wrong)


@pytest.mark.parametrize('file', [G1_PARAMS, SIM_PARAMS])
def test_per_node_yaml_keys_are_declared(graphs, file):
    specs = {s.name: s for g in graphs.values() for s in g if s.node_class}
    for node, params in node_parameters(file).items():
        assert node in specs, f'{file}: no node {node} in any graph'
        extra = set(params) - _declared(specs[node])
        assert not extra, f'{file}: {node} does not declare {sorted(extra)}'


def test_rviz_and_docs_name_registry_topics():
    registry = {t.name for t in topics.TOPICS.values()}
    rviz = (config_dir() / 'dit4dit.rviz').read_text()
    descriptions = {'/robot_description', '/commanded/robot_description'}
    shown = set(re.findall(r'Value: (/[\w/]+)', rviz)) - descriptions
    assert shown and shown <= registry, shown - registry
    docs = ROOT / 'docs' / 'recording.md'
    if docs.is_file():
        table = set(re.findall(r'^\| `(/[\w/]+)` \|', docs.read_text(), re.M))
        preset_topics = {t.name for p in ('g1', 'sim') for t in load_preset(p).topics}
        assert table == preset_topics, table ^ preset_topics


def test_feature_maps_use_the_g1_descriptions_joints():
    from dit4dit_train.feature_map import load_feature_map
    dex3 = load_feature_map('g1_dex3')
    assert dex3.state.joints == list(G1.profile.policy_joints)
    tabletop = load_feature_map('g1_tabletop')
    assert set(tabletop.action_joints) <= set(G1.profile.policy_joints)
    for fmap in (dex3, tabletop):
        assert fmap.cameras['head'].topic == topics.name('camera')
        assert fmap.action.topic == topics.name('joint_command')


def test_the_simulated_g1_has_the_descriptions_joints():
    from dit4dit_sim.envs.g1_tabletop import ARM_JOINTS, G1Tabletop, TabletopConfig
    env = G1Tabletop(TabletopConfig(render_size=(32, 32)))
    try:
        assert set(env.joint_names) == {j.name for j in G1.profile.joints}
        assert set(ARM_JOINTS) <= set(G1.profile.policy_joints)
    finally:
        env.close()
