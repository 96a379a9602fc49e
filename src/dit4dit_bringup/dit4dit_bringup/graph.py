"""
The one description of the robot graph: which nodes run, with which parameters and remappings.

``g1.launch.py`` turns it into launch actions on a full ROS 2 install; ``run_graph`` runs the same
description without ``ros2 launch`` (all nodes in one process, or one process per node). ROS-free.
"""

import dataclasses
from dataclasses import dataclass, field
import typing

CONTROL_MODES = ('arm_sdk', 'lowcmd')
HARDWARE = ('real', 'sim')
STRATEGIES = ('replace', 'crossfade', 'rtc')    # dit4dit_policy.runtime.chunk_executor's registry


def launch_arguments(cls, configurations) -> dict:
    """
    Return the field values of the arguments dataclass ``cls`` from launch configuration texts.

    Launch arguments arrive as text: ints and floats are converted, booleans must read true or
    false (``bool('false')`` would be True), anything else stays text.
    """
    values = {}
    for f in dataclasses.fields(cls):
        text = configurations[f.name]
        name = f.type if isinstance(f.type, str) else f.type.__name__
        if name == 'bool':
            if text.lower() not in ('true', 'false'):
                raise ValueError(f'{f.name}: {text!r} is not true or false')
            values[f.name] = text.lower() == 'true'
        else:
            values[f.name] = {'int': int, 'float': float}.get(name, str)(text)
    return values


def launch_default(value) -> str:
    """Return a field default as launch-argument text (booleans lower case)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


@dataclass
class NodeSpec:
    """One node of the graph."""

    package: str
    executable: str                 # ros2 run / launch executable
    name: str
    node_class: str                 # 'module:Class' for in-process composition; '' (C++ node):
    #                                 ros2 launch / ros2 run only
    parameters: typing.Dict[str, typing.Any] = field(default_factory=dict)
    remappings: typing.List[typing.Tuple[str, str]] = field(default_factory=list)

    namespace: str = ''

    @property
    def module(self) -> str:
        """Return the module that runs this node as a process (``python -m``), or ''."""
        return self.node_class.split(':')[0]


@dataclass
class G1Arguments:
    """The declared arguments of ``g1.launch.py`` (validated)."""

    checkpoint: str = ''
    profile: str = 'g1_29dof_dex3'
    camera_topic: str = '/camera/image_raw'
    compressed: bool = False
    control_mode: str = 'arm_sdk'
    hardware: str = 'real'
    device: str = 'cpu'
    instruction: str = ''
    control_rate_hz: float = 250.0
    strategy: str = 'crossfade'
    policy_timeout_s: float = 0.5
    imagine_every_n_chunks: int = 0
    urdf: str = ''
    rviz: bool = False

    def __post_init__(self):
        """Validate."""
        if not self.checkpoint:
            raise ValueError('checkpoint is required (a checkpoint directory)')
        if self.control_mode not in CONTROL_MODES:
            raise ValueError(f'control_mode {self.control_mode!r}: valid are '
                             f'{", ".join(CONTROL_MODES)}')
        if self.hardware not in HARDWARE:
            raise ValueError(f'hardware {self.hardware!r}: valid are {", ".join(HARDWARE)}')
        if self.strategy not in STRATEGIES:
            raise ValueError(f'strategy {self.strategy!r}: valid are {", ".join(STRATEGIES)}')
        if self.imagine_every_n_chunks < 0:
            raise ValueError('imagine_every_n_chunks must be >= 0')


DESCRIPTIONS = {
    'checkpoint': 'policy checkpoint directory',
    'profile': 'robot profile (dit4dit_bringup/config name or YAML path)',
    'camera_topic': 'head camera image topic',
    'compressed': 'camera topic carries sensor_msgs/CompressedImage',
    'control_mode': 'arm_sdk (arms blended into the walking controller) or lowcmd (whole body)',
    'hardware': 'real (the robot, DDS domain 0) or sim (a simulator speaking Unitree topics)',
    'device': 'torch device for inference (cpu, cuda:0)',
    'instruction': 'initial task instruction',
    'control_rate_hz': 'executor and bridge rate [Hz]',
    'strategy': 'chunk transition strategy: replace, crossfade or rtc',
    'policy_timeout_s': 'executor holds if the policy sends no chunk for this long',
    'imagine_every_n_chunks': 'publish the imagined future for rviz after every n-th chunk '
                              '(0: off; slows the policy)',
    'urdf': 'G1 URDF file: robot_state_publisher for the measured robot and the commanded '
            'ghost in rviz (empty: no robot model)',
    'rviz': 'start rviz2 with the dit4dit view',
}


def g1_graph(args: G1Arguments) -> typing.List[NodeSpec]:
    """Return the G1 graph: policy_node -> action_executor -> g1_bridge."""
    from dit4dit_policy.runtime.robot_profile import load_profile

    profile = load_profile(args.profile)
    body = [j for j in profile.joints if not j.hand]
    sides = dex3_sides(profile)
    hands = {(): 'none', ('left',): 'left', ('right',): 'right'}.get(sides, 'both')
    arrays = profile.arrays([j.name for j in body])
    vel, _ = profile.execution_limits([j.name for j in body])
    nodes = [
        NodeSpec('dit4dit_policy', 'policy_node', 'policy_node',
                 'dit4dit_policy.nodes.policy_node:PolicyNode',
                 {'checkpoint': args.checkpoint, 'device': args.device,
                  'camera_topics': [args.camera_topic], 'compressed': args.compressed,
                  'joint_states_topic': '/joint_states', 'instruction': args.instruction,
                  'rtc_inpainting': args.strategy == 'rtc',
                  'imagine_every_n_chunks': args.imagine_every_n_chunks}),
        NodeSpec('dit4dit_policy', 'action_executor', 'action_executor',
                 'dit4dit_policy.nodes.action_executor:ActionExecutorNode',
                 {'profile': args.profile, 'joints': list(profile.policy_joints),
                  'control_rate_hz': args.control_rate_hz,
                  'strategy': args.strategy, 'policy_timeout_s': args.policy_timeout_s,
                  'auto_enable': args.hardware == 'sim', 'estop_service': '/g1_bridge/estop'},
                 [('action_chunk', '/policy_node/action_chunk'),
                  ('joint_states', '/joint_states'), ('joint_command', '/dit4dit/joint_command')]),
        NodeSpec('dit4dit_bringup', 'g1_bridge', 'g1_bridge',
                 'dit4dit_bringup.nodes.g1_bridge:G1BridgeNode',
                 {'control_mode': args.control_mode, 'rate_hz': args.control_rate_hz,
                  'joint_names': [j.name for j in body],
                  'motor_indices': [int(m) for m in arrays['motor']],
                  'lower': [float(v) for v in arrays['lower']],
                  'upper': [float(v) for v in arrays['upper']],
                  'kp': [float(v) for v in arrays['kp']], 'kd': [float(v) for v in arrays['kd']],
                  'max_velocity': float(vel.max()), 'hands': hands},
                 [('joint_states', '/joint_states'), ('joint_command', '/dit4dit/joint_command')]),
    ]
    if args.urdf:
        nodes += robot_model_nodes(args.urdf)
    return nodes


def robot_model_nodes(urdf: str) -> typing.List[NodeSpec]:
    """Return robot_state_publisher for the measured robot and, fed by the ghost, the commanded."""
    from pathlib import Path

    path = Path(urdf).expanduser()
    if not path.is_file():
        raise ValueError(f'urdf {urdf!r} is not a file')
    description = path.read_text()
    return [
        NodeSpec('robot_state_publisher', 'robot_state_publisher', 'robot_state_publisher', '',
                 {'robot_description': description},
                 [('joint_states', '/joint_states')]),
        NodeSpec('dit4dit_bringup', 'command_ghost', 'command_ghost',
                 'dit4dit_bringup.nodes.command_ghost:CommandGhostNode', {},
                 [('joint_states', '/joint_states'), ('joint_command', '/dit4dit/joint_command'),
                  ('commanded_joint_states', '/commanded/joint_states')]),
        NodeSpec('robot_state_publisher', 'robot_state_publisher',
                 'robot_state_publisher_commanded', '',
                 {'robot_description': description, 'frame_prefix': 'commanded/'},
                 [('joint_states', '/commanded/joint_states')], namespace='commanded'),
    ]


def dex3_sides(profile) -> typing.Tuple[str, ...]:
    """
    Return the Dex3 hands (sides) that the policy controls; check the profile against the wire.

    The bridge addresses hand joint i of a side as ``DEX3_JOINT_NAMES[side][i]``, so the profile's
    hand joints must carry exactly those names and motor indices.
    """
    from dit4dit_bringup.g1_lowcmd import DEX3_JOINT_NAMES

    sides = []
    for side, names in DEX3_JOINT_NAMES.items():
        hand = [j for j in profile.joints if j.hand == side]
        if not hand:
            continue
        wire = {j.name: int(j.motor) for j in hand}
        expected = {name: i for i, name in enumerate(names)}
        if wire != expected:
            raise ValueError(f'profile {profile.name}: the {side} Dex3 joints must be '
                             f'{list(names)} with motor indices 0-6 in that order')
        if any(n in profile.policy_joints for n in names):
            sides.append(side)
    return tuple(sides)


@dataclass
class CollectArguments:
    """The arguments of ``collect_demos.launch.py`` and ``dit4dit_train.collect_demos``."""

    output: str = ''
    task: str = 'reach'
    episodes: int = 20
    first_index: int = 0
    render_size: int = 96
    real_time_factor: float = 1.0
    storage: str = 'mcap'
    every_target: bool = False

    def __post_init__(self):
        """Validate."""
        if not self.output:
            raise ValueError('output is required (a bag directory to create)')
        _check_episodes(self)


COLLECT_DESCRIPTIONS = {
    'output': 'bag directory to create (must not exist)',
    'task': 'g1_tabletop task: reach or push',
    'episodes': 'number of finished episodes to record',
    'first_index': 'first training initial state (seed); use disjoint ranges per run',
    'render_size': 'head camera image size [px] (square; the demo checkpoint was trained on 96)',
    'real_time_factor': 'simulated seconds per wall second (the other nodes follow /clock)',
    'storage': 'rosbag2 storage: mcap or sqlite3',
    'every_target': 'name each cube of a scene in turn (3 episodes per scene; only the '
                    'instruction tells them apart) instead of one drawn cube per scene',
}
# The suite's topic names (the recording preset "sim" and the feature map "g1_tabletop").
SIM_REMAPPINGS = [('joint_command', '/dit4dit/joint_command'),
                  ('episode_event', '/dit4dit/episode_event'), ('task', '/dit4dit/task')]


def _check_episodes(args):
    """Validate the episode fields that collection and evaluation share."""
    if args.episodes < 1 or args.first_index < 0:
        raise ValueError('episodes must be >= 1 and first_index >= 0')
    if not 16 <= args.render_size <= 1024:
        raise ValueError(f'render_size {args.render_size} must be in [16, 1024]')
    if not args.real_time_factor > 0:
        raise ValueError('real_time_factor must be > 0')


def _sim_bridge(args, split: str, start_delay_s: float) -> NodeSpec:
    """Return the g1_tabletop sim_bridge running ``args.episodes`` episodes of ``split``."""
    return NodeSpec('dit4dit_bringup', 'sim_bridge', 'sim_bridge',
                    'dit4dit_bringup.nodes.sim_bridge:SimBridgeNode',
                    {'environment': 'g1_tabletop', 'task': args.task,
                     'render_height': args.render_size, 'render_width': args.render_size,
                     'split': split, 'auto_reset': True, 'first_index': args.first_index,
                     'max_episodes': args.episodes, 'real_time_factor': args.real_time_factor,
                     'start_delay_s': start_delay_s},
                    list(SIM_REMAPPINGS))


def collect_graph(args: CollectArguments) -> typing.List[NodeSpec]:
    """Return sim_bridge (training initial states) + scripted_expert + the bag recorder."""
    # Every node but the simulator runs on its /clock: stamps and timers stay consistent even
    # when the simulation runs slower (or faster) than the wall clock.
    return [
        _sim_bridge(args, 'train_every_target' if args.every_target else 'train',
                    start_delay_s=2.0),
        NodeSpec('dit4dit_bringup', 'scripted_expert', 'scripted_expert',
                 'dit4dit_bringup.nodes.scripted_expert:ScriptedExpertNode',
                 {'use_sim_time': True},
                 SIM_REMAPPINGS[:2] + [('objects', '/sim_bridge/objects')]),
        NodeSpec('dit4dit_train', 'bag_recorder', 'bag_recorder',
                 'dit4dit_train.nodes.recorder:BagRecorder',
                 {'preset': 'sim', 'output': args.output, 'storage': args.storage,
                  'discovery_timeout_s': 1.0, 'use_sim_time': True}),
    ]


@dataclass
class SimArguments:
    """The declared arguments of ``sim.launch.py`` and closed-loop evaluation (validated)."""

    checkpoint: str = ''
    task: str = 'reach'
    episodes: int = 20
    first_index: int = 0
    render_size: int = 96
    strategy: str = 'crossfade'
    control_rate_hz: float = 100.0
    real_time_factor: float = 1.0
    device: str = 'cpu'

    def __post_init__(self):
        """Validate."""
        if not self.checkpoint:
            raise ValueError('checkpoint is required (a checkpoint directory)')
        if self.strategy not in STRATEGIES:
            raise ValueError(f'strategy {self.strategy!r}: valid are {", ".join(STRATEGIES)}')
        _check_episodes(self)
        if not 0 < self.control_rate_hz <= 500:
            raise ValueError('control_rate_hz must be in (0, 500]')


SIM_DESCRIPTIONS = {
    'checkpoint': 'policy checkpoint directory',
    'task': 'g1_tabletop task: reach or push',
    'episodes': 'held-out episodes to run',
    'first_index': 'first held-out initial state',
    'render_size': 'head camera image size [px] (square; as in the training demonstrations)',
    'strategy': 'chunk transition strategy: replace, crossfade or rtc',
    'control_rate_hz': 'executor rate [Hz]',
    'real_time_factor': 'simulated seconds per wall second (the other nodes follow /clock)',
    'device': 'torch device for inference (cpu, cuda:0)',
}


def sim_graph(args: SimArguments) -> typing.List[NodeSpec]:
    """Return sim_bridge (held-out initial states) -> policy_node -> action_executor -> sim."""
    from dit4dit_policy.model.checkpoint import read_normalizer

    joints = list(read_normalizer(args.checkpoint).action_names)
    if not joints:
        raise ValueError(f'{args.checkpoint}: the checkpoint names no action joints')
    return [
        _sim_bridge(args, 'held_out', start_delay_s=3.0),
        NodeSpec('dit4dit_policy', 'policy_node', 'policy_node',
                 'dit4dit_policy.nodes.policy_node:PolicyNode',
                 {'checkpoint': args.checkpoint, 'device': args.device,
                  'camera_topics': ['/camera/image_raw'], 'joint_states_topic': '/joint_states',
                  'task_topic': '/dit4dit/task', 'rtc_inpainting': args.strategy == 'rtc',
                  'max_observation_age_s': 0.5, 'use_sim_time': True}),
        NodeSpec('dit4dit_policy', 'action_executor', 'action_executor',
                 'dit4dit_policy.nodes.action_executor:ActionExecutorNode',
                 {'profile': 'g1_29dof_dex3', 'joints': joints,
                  'control_rate_hz': args.control_rate_hz, 'strategy': args.strategy,
                  'auto_enable': True, 'episode_events': True, 'ramp_in_s': 0.2,
                  'estop_service': '', 'use_sim_time': True},
                 [('action_chunk', '/policy_node/action_chunk'),
                  ('joint_states', '/joint_states'), ('joint_command', '/dit4dit/joint_command'),
                  ('episode_event', '/dit4dit/episode_event')]),
    ]


@dataclass
class ExpertArguments:
    """A LIBERO scripted expert through ROS (``dit4dit_bringup.expert_parity``), validated."""

    task: str = 'libero_spatial/0'
    episodes: int = 2
    first_index: int = 0
    render_size: int = 128
    camera_fps: float = 10.0
    lockstep: bool = True

    def __post_init__(self):
        """Validate."""
        if self.episodes < 1 or self.first_index < 0:
            raise ValueError('episodes must be >= 1 and first_index >= 0')
        if not 16 <= self.render_size <= 1024 or not self.camera_fps > 0:
            raise ValueError('render_size must be in [16, 1024] and camera_fps > 0')


def expert_graph(args: ExpertArguments) -> typing.List[NodeSpec]:
    """Return sim_bridge (LIBERO, held-out initial states) + the libero_expert node."""
    return [
        NodeSpec('dit4dit_bringup', 'sim_bridge', 'sim_bridge',
                 'dit4dit_bringup.nodes.sim_bridge:SimBridgeNode',
                 {'environment': 'libero', 'task': args.task, 'split': 'held_out',
                  'render_height': args.render_size, 'render_width': args.render_size,
                  'camera_fps': args.camera_fps, 'auto_reset': True,
                  'first_index': args.first_index, 'max_episodes': args.episodes,
                  # The direct loop's success test: the first step at which the goal holds.
                  'success_hold_s': 0.0, 'lockstep': args.lockstep, 'start_delay_s': 1.0},
                 list(SIM_REMAPPINGS)),
        NodeSpec('dit4dit_bringup', 'libero_expert', 'libero_expert',
                 'dit4dit_bringup.nodes.libero_expert:LiberoExpertNode',
                 {'use_sim_time': True},
                 SIM_REMAPPINGS[:2] + [('objects', '/sim_bridge/objects')]),
    ]
