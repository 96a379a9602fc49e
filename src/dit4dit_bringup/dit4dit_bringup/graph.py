"""
The one description of the suite's graphs: which nodes run, with which parameters.

``g1.launch.py``, ``sim.launch.py`` and ``launch/collect_demos.launch.py`` turn these lists into
launch actions on a full ROS 2 install; ``run_graph``, ``collect_demos`` and
``evaluate_closed_loop`` run the same lists without ``ros2 launch``. Parameters come from, in
order (later wins): the per-node YAML of this package (``config/g1_params.yaml``,
``config/sim_params.yaml``), what the arguments decide, and the two sources of truth below.
Topic names are the registry's (``dit4dit_common.topics``): the nodes use them, so no remapping.

* The checkpoint's policy contract (joints, cameras, image size, fps) is checked against the
  robot description here, before anything starts: a checkpoint that does not fit is refused with
  the joints named. The executor drives the profile's policy joints; a checkpoint that commands
  a subset (an arms-only policy on a robot with hands) has the others held.
* The G1 description (``dit4dit_g1``) gives the bridge its tables and the executor its limits;
  the bridge's stop budget (its ramp-down time) becomes the launch's SIGTERM timeout.

ROS-free: no rclpy, no launch; the checkpoint is read without torch.
"""

from dataclasses import dataclass
import json
from pathlib import Path
import typing

from dit4dit_common import topics
from dit4dit_common.node_spec import NodeSpec
from dit4dit_common.paths import share_dir
import yaml

CONTROL_MODES = ('arm_sdk', 'lowcmd')
HARDWARE = ('real', 'sim')
SIM_TASKS = ('reach', 'push')                   # dit4dit_sim.envs.g1_tabletop.TASKS
# Environments demonstrations are collected in: the G1 tabletop (scripted_expert) and LIBERO
# (libero_expert, libero_spatial's pick-and-place tasks; task ids like libero_spatial/3).
COLLECT_ENVIRONMENTS = ('g1_tabletop', 'libero')
LIBERO_CAMERA_FPS = 20.0                        # one frame per 20 Hz control step
STRATEGIES = ('replace', 'crossfade', 'rtc')    # dit4dit_control.chunk_executor's registry
G1_PARAMS = 'g1_params.yaml'
# Inference is best effort, the executor's and the bridge's loops (and the twin's physics) are
# not: a CPU-bound policy on the robot's computer must not delay a LowCmd or the watchdog.
POLICY_NICE = 10
SIM_PARAMS = 'sim_params.yaml'


def config_dir() -> Path:
    """Return this package's config directory (installed share/, or the source tree)."""
    return share_dir('dit4dit_bringup', __file__, 'config')


def node_parameters(file: str) -> typing.Dict[str, dict]:
    """Return {node name: parameters} of a per-node parameter YAML of this package."""
    data = yaml.safe_load((config_dir() / file).read_text()) or {}
    return {name: dict((entry or {}).get('ros__parameters') or {}) for name, entry in data.items()}


def _node(package, executable, name, node_class, parameters, file, **extra) -> NodeSpec:
    """Return a NodeSpec whose parameters are the YAML file's for ``name``, then ``parameters``."""
    merged = {**node_parameters(file).get(name, {}), **parameters}
    return NodeSpec(package, executable, name, node_class, merged, **extra)


# -- the robot ---------------------------------------------------------------------------------

@dataclass
class G1Arguments:
    """The declared arguments of ``g1.launch.py`` and ``run_graph`` (validated)."""

    checkpoint: str = ''
    description: str = 'g1_29dof_dex3'
    camera_topic: str = ''
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
    task: str = 'reach'

    def __post_init__(self):
        """Validate."""
        if not self.checkpoint:
            raise ValueError('checkpoint is required (a checkpoint directory)')
        for key, valid in (('control_mode', CONTROL_MODES), ('hardware', HARDWARE),
                           ('strategy', STRATEGIES), ('task', SIM_TASKS)):
            if getattr(self, key) not in valid:
                raise ValueError(f'{key} {getattr(self, key)!r}: valid are {", ".join(valid)}')
        if self.imagine_every_n_chunks < 0:
            raise ValueError('imagine_every_n_chunks must be >= 0')


DESCRIPTIONS = {
    'checkpoint': 'policy checkpoint directory (its contract says what it needs)',
    'description': 'G1 description: a name in dit4dit_g1/config or a YAML path',
    'camera_topic': f'head camera image topic ("": {topics.name("camera")})',
    'compressed': 'subscribe the JPEG stream (<camera topic>/compressed, CompressedImage)',
    'control_mode': 'arm_sdk (arms blended into the walking controller) or lowcmd (whole body)',
    'hardware': "real (the robot, DDS domain 0) or sim (the G1 twin: MuJoCo on Unitree's wire)",
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
    'task': 'hardware:=sim: the tabletop task of the twin, reach or push',
}


def checked_contract(checkpoint: str, profile, where: str):
    """Return the checkpoint's contract after checking that it fits ``profile``; ValueError."""
    from dit4dit_policy.contract import check_fits, ContractError
    from dit4dit_policy.model.checkpoint import CheckpointError, read_contract

    try:
        contract = read_contract(checkpoint)
        check_fits(contract, [j.name for j in profile.joints], profile.policy_joints,
                   robot=f'{where} ({profile.name})')
    except (CheckpointError, ContractError) as exc:
        raise ValueError(str(exc)) from None
    return contract


def g1_graph(args: G1Arguments) -> typing.List[NodeSpec]:
    """
    Return the G1 graph: policy_node -> action_executor -> g1_bridge (+ robot model).

    ``hardware:=sim`` adds the G1 twin (``dit4dit_sim`` sim_bridge on ``g1_twin``, named
    ``g1_twin``): the tabletop in MuJoCo behind the robot's own wire, the camera at the
    contract's size and rate, stamped with the wall clock as a robot's; nothing else changes.
    Episodes start on ``/g1_twin/reset``; the bridge and the executor are enabled by their
    services, as on the robot.
    """
    from dit4dit_g1.bridge import shutdown_budget_s
    from dit4dit_g1.description import load_description

    description = load_description(args.description)
    profile = description.profile
    contract = checked_contract(args.checkpoint, profile, 'the G1')
    cameras = {}
    if args.camera_topic:
        if len(contract.cameras) != 1:
            raise ValueError(f'camera_topic names one topic; the checkpoint has '
                             f'{len(contract.cameras)} views ({", ".join(contract.camera_names)})')
        cameras = {'camera_topics': [args.camera_topic]}
    sides = description.policy_sides()
    hands = {(): 'none', ('left',): 'left', ('right',): 'right'}.get(sides, 'both')
    nodes = [
        _node('dit4dit_policy', 'policy_node', 'policy_node',
              'dit4dit_policy.nodes.policy_node:PolicyNode',
              {'checkpoint': args.checkpoint, 'device': args.device, **cameras,
               'compressed': args.compressed, 'instruction': args.instruction,
               'rtc_inpainting': args.strategy == 'rtc',
               'imagine_every_n_chunks': args.imagine_every_n_chunks}, G1_PARAMS,
              nice=POLICY_NICE),
        _node('dit4dit_control', 'action_executor', 'action_executor',
              'dit4dit_control.nodes.action_executor:ActionExecutorNode',
              {'profile': str(description.path), 'joints': list(profile.policy_joints),
               'control_rate_hz': args.control_rate_hz, 'strategy': args.strategy,
               'policy_timeout_s': args.policy_timeout_s, 'estop_service': '/g1_bridge/estop'},
              G1_PARAMS),
        _node('dit4dit_g1', 'g1_bridge', 'g1_bridge', 'dit4dit_g1.nodes.g1_bridge:G1BridgeNode',
              {'description': str(description.path), 'control_mode': args.control_mode,
               'rate_hz': args.control_rate_hz, 'hands': hands}, G1_PARAMS,
              stop_budget_s=shutdown_budget_s(description.ramp_down_s)),
    ]
    if args.hardware == 'sim':
        nodes.append(twin_node(args, contract))
    if args.urdf:
        nodes += robot_model_nodes(args.urdf)
    return nodes


def twin_node(args: G1Arguments, contract) -> NodeSpec:
    """Return the G1 twin: sim_bridge on g1_twin, speaking the robot's wire in real time."""
    if len(contract.cameras) != 1:
        raise ValueError(f'the G1 twin has one camera; the checkpoint has '
                         f'{len(contract.cameras)} views ({", ".join(contract.camera_names)})')
    camera = contract.cameras[0]
    return _node('dit4dit_sim', 'sim_bridge', 'g1_twin',
                 'dit4dit_sim.nodes.sim_bridge:SimBridgeNode',
                 {'environment': 'g1_twin', 'task': args.task, 'split': 'held_out',
                  'render_height': camera.height, 'render_width': camera.width,
                  'camera_fps': float(contract.fps), 'auto_reset': False,
                  'stamp_clock': 'wall'}, G1_PARAMS)


def robot_model_nodes(urdf: str) -> typing.List[NodeSpec]:
    """Return robot_state_publisher for the measured robot and, fed by the ghost, the commanded."""
    path = Path(urdf).expanduser()
    if not path.is_file():
        raise ValueError(f'urdf {urdf!r} is not a file')
    description = path.read_text()
    return [
        NodeSpec('robot_state_publisher', 'robot_state_publisher', 'robot_state_publisher', '',
                 {'robot_description': description}),
        _node('dit4dit_control', 'command_ghost', 'command_ghost',
              'dit4dit_control.nodes.command_ghost:CommandGhostNode', {}, G1_PARAMS),
        NodeSpec('robot_state_publisher', 'robot_state_publisher',
                 'robot_state_publisher_commanded', '',
                 {'robot_description': description, 'frame_prefix': 'commanded/'},
                 [('joint_states', topics.name('commanded_joint_states'))],
                 namespace='commanded'),
    ]


# -- simulation --------------------------------------------------------------------------------

@dataclass
class CollectArguments:
    """The arguments of ``collect_demos.launch.py`` and ``dit4dit_bringup.collect_demos``."""

    output: str = ''
    task: str = 'reach'
    episodes: int = 20
    first_index: int = 0
    render_size: int = 96
    real_time_factor: float = 1.0
    storage: str = 'mcap'
    every_target: bool = False
    environment: str = 'g1_tabletop'

    def __post_init__(self):
        """Validate."""
        if not self.output:
            raise ValueError('output is required (a bag directory to create)')
        if self.environment not in COLLECT_ENVIRONMENTS:
            raise ValueError(f'environment {self.environment!r}: valid are '
                             f'{", ".join(COLLECT_ENVIRONMENTS)}')
        if self.environment == 'libero':
            from dit4dit_sim.envs.libero import parse_task_id
            if parse_task_id(self.task)[0] != 'libero_spatial':
                raise ValueError(f'task {self.task!r}: the LIBERO scripted expert solves '
                                 'libero_spatial tasks (libero_spatial/0 .. /9)')
            if self.every_target:
                raise ValueError('every_target names tabletop cubes; LIBERO has no targets')
        elif self.task not in SIM_TASKS:
            raise ValueError(f'task {self.task!r}: valid g1_tabletop tasks are '
                             f'{", ".join(SIM_TASKS)}')
        _check_episodes(self)
        if not 16 <= self.render_size <= 1024:
            raise ValueError(f'render_size {self.render_size} must be in [16, 1024]')


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
    'environment': 'g1_tabletop (scripted_expert) or libero (libero_expert; task:= '
                   'libero_spatial/N, both cameras, 20 Hz in lockstep)',
}


def _check_episodes(args):
    """Validate the episode fields that collection and evaluation share."""
    if args.episodes < 1 or args.first_index < 0:
        raise ValueError('episodes must be >= 1 and first_index >= 0')
    if not args.real_time_factor > 0:
        raise ValueError('real_time_factor must be > 0')


def _sim_bridge(args, split: str, start_delay_s: float, size, camera_fps=None,
                lockstep=False, environment='g1_tabletop') -> NodeSpec:
    """Return the sim_bridge of ``environment`` running ``args.episodes`` episodes of ``split``."""
    fps = {} if camera_fps is None else {'camera_fps': float(camera_fps)}
    return _node('dit4dit_sim', 'sim_bridge', 'sim_bridge',
                 'dit4dit_sim.nodes.sim_bridge:SimBridgeNode',
                 {'environment': environment, 'task': args.task, 'render_height': size[0],
                  'render_width': size[1],
                  'split': split, 'auto_reset': True, 'first_index': args.first_index,
                  'max_episodes': args.episodes, 'real_time_factor': args.real_time_factor,
                  'start_delay_s': start_delay_s, 'lockstep': lockstep, **fps}, SIM_PARAMS)


def collect_graph(args: CollectArguments) -> typing.List[NodeSpec]:
    """Return sim_bridge (training initial states) + the environment's expert + the recorder."""
    from dit4dit_train.recording import CLOSE_BUDGET_S

    # Every node but the simulator runs on its /clock: stamps and timers stay consistent even
    # when the simulation runs slower (or faster) than the wall clock.
    size = (args.render_size, args.render_size)
    if args.environment == 'libero':
        # LIBERO: a fresh placement per seed (the official initial states stay held out), both
        # cameras at the control rate, every control step answered by the expert (lockstep).
        bridge = _sim_bridge(args, 'train', start_delay_s=2.0, size=size,
                             camera_fps=LIBERO_CAMERA_FPS, lockstep=True, environment='libero')
        expert = _node('dit4dit_sim', 'libero_expert', 'libero_expert',
                       'dit4dit_sim.nodes.libero_expert:LiberoExpertNode',
                       {'use_sim_time': True}, SIM_PARAMS)
        preset = 'libero'
    else:
        bridge = _sim_bridge(args, 'train_every_target' if args.every_target else 'train',
                             start_delay_s=2.0, size=size)
        expert = _node('dit4dit_sim', 'scripted_expert', 'scripted_expert',
                       'dit4dit_sim.nodes.scripted_expert:ScriptedExpertNode',
                       {'use_sim_time': True}, SIM_PARAMS)
        preset = 'sim'
    return [
        bridge, expert,
        _node('dit4dit_train', 'bag_recorder', 'bag_recorder',
              'dit4dit_train.nodes.recorder:BagRecorder',
              {'preset': preset, 'output': args.output, 'storage': args.storage,
               'use_sim_time': True}, SIM_PARAMS, stop_budget_s=CLOSE_BUDGET_S),
    ]


@dataclass
class SimArguments:
    """The declared arguments of ``sim.launch.py`` and closed-loop evaluation (validated)."""

    checkpoint: str = ''
    task: str = 'reach'
    episodes: int = 20
    first_index: int = 0
    strategy: str = 'crossfade'
    control_rate_hz: float = 100.0
    real_time_factor: float = 1.0
    lockstep: bool = False
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
    'checkpoint': 'policy checkpoint directory (its contract gives the camera size and rate)',
    'task': 'g1_tabletop task: reach or push',
    'episodes': 'held-out episodes to run',
    'first_index': 'first held-out initial state',
    'strategy': 'chunk transition strategy: replace, crossfade or rtc',
    'control_rate_hz': 'executor rate [Hz]',
    'real_time_factor': 'simulated seconds per wall second (the other nodes follow /clock)',
    'lockstep': 'step the simulation only once a command answers the last observation '
                '(policies slower than real time)',
    'device': 'torch device for inference (cpu, cuda:0)',
}


def sim_graph(args: SimArguments) -> typing.List[NodeSpec]:
    """Return sim_bridge (held-out initial states) -> policy_node -> action_executor -> sim."""
    from dit4dit_g1.description import load_description

    description = load_description()     # the simulated robot is the G1 of the description
    contract = checked_contract(args.checkpoint, description.profile, 'the simulated G1')
    if len(contract.cameras) != 1:
        raise ValueError(f'the G1 tabletop has one camera; the checkpoint has '
                         f'{len(contract.cameras)} views ({", ".join(contract.camera_names)})')
    camera = contract.cameras[0]
    return [
        _sim_bridge(args, 'held_out', start_delay_s=3.0, size=(camera.height, camera.width),
                    camera_fps=contract.fps, lockstep=args.lockstep),
        _node('dit4dit_policy', 'policy_node', 'policy_node',
              'dit4dit_policy.nodes.policy_node:PolicyNode',
              {'checkpoint': args.checkpoint, 'device': args.device,
               'rtc_inpainting': args.strategy == 'rtc', 'use_sim_time': True}, SIM_PARAMS),
        _node('dit4dit_control', 'action_executor', 'action_executor',
              'dit4dit_control.nodes.action_executor:ActionExecutorNode',
              {'profile': str(description.path), 'joints': list(contract.action_joints),
               'control_rate_hz': args.control_rate_hz, 'strategy': args.strategy,
               'use_sim_time': True}, SIM_PARAMS),
    ]


# -- LIBERO: the benchmark's protocol through the policy graph -----------------------------------

LIBERO_ACTIONS_PER_QUERY = 8        # the official LIBERO client runs 8 actions per query


@dataclass
class LiberoArguments:
    """The declared arguments of ``libero.launch.py`` and the LIBERO benchmark (validated)."""

    checkpoint: str = ''
    task: str = 'libero_spatial/0'
    episodes: int = 50
    first_index: int = 0
    device: str = 'cpu'
    actions_per_query: int = LIBERO_ACTIONS_PER_QUERY
    time_limit_s: float = 0.0
    real_time_factor: float = 1.0       # between episodes only: lockstep steps on commands

    def __post_init__(self):
        """Validate."""
        from dit4dit_sim.envs.libero import HELD_OUT_SEEDS, parse_task_id

        if not self.checkpoint:
            raise ValueError('checkpoint is required (a checkpoint directory)')
        parse_task_id(self.task)
        _check_episodes(self)
        if self.first_index + self.episodes > len(HELD_OUT_SEEDS):
            raise ValueError(f'initial states {self.first_index}..'
                             f'{self.first_index + self.episodes - 1}: LIBERO has '
                             f'{len(HELD_OUT_SEEDS)} official ones per task (0..'
                             f'{len(HELD_OUT_SEEDS) - 1})')
        if self.actions_per_query < 1:
            raise ValueError('actions_per_query must be >= 1')
        if self.time_limit_s < 0:
            raise ValueError("time_limit_s must be >= 0 (0: the suite's published limit)")


LIBERO_DESCRIPTIONS = {
    'checkpoint': 'policy checkpoint directory trained on LIBERO (two views, 8-D state, 7-D '
                  'OSC action)',
    'task': 'LIBERO task id: <suite>/<index>, e.g. libero_spatial/0',
    'episodes': 'trials: official initial states first_index, first_index + 1, ...',
    'first_index': 'first official initial state (0..49)',
    'device': 'torch device for inference (cpu, cuda:0)',
    'actions_per_query': 'actions of each chunk run open loop before the next query (the '
                         'official client: 8)',
    'time_limit_s': "simulated seconds per trial (0: the suite's published step limit)",
    'real_time_factor': 'simulated seconds per wall second between trials',
}


def libero_graph(args: LiberoArguments) -> typing.List[NodeSpec]:
    """
    Return sim_bridge (LIBERO, official initial states, lockstep) -> policy -> lockstep executor.

    The checkpoint's contract is checked against LIBERO here: its state joints must be what the
    bridge publishes (the 8-D state: ``eef_*`` and the fingers), its actions OSC commands, its
    views the bridge's cameras (``head``: agent view, ``wrist``) at one size, its rate the 20 Hz
    control rate. Every control step waits for the policy (lockstep): the result does not depend
    on the CPU.
    """
    from dit4dit_policy.contract import check_fits, ContractError
    from dit4dit_policy.model.checkpoint import CheckpointError, read_contract
    from dit4dit_sim.envs.libero import (
        CAMERAS, COMMAND_NAMES, COMMAND_RANGE, CONTROL_PERIOD, JOINT_NAMES)

    try:
        contract = read_contract(args.checkpoint)
        check_fits(contract, JOINT_NAMES, COMMAND_NAMES, robot='LIBERO (Panda, OSC_POSE)')
    except (CheckpointError, ContractError) as exc:
        raise ValueError(str(exc)) from None
    views = list(CAMERAS)
    published = {topics.name('camera'): views[0],
                 **{topics.camera_topic(v): v for v in views[1:]}}
    for camera in contract.cameras:
        try:
            topic = topics.camera_topic(camera.name)
        except KeyError as exc:
            raise ValueError(str(exc)) from None
        if topic not in published:
            raise ValueError(f'view {camera.name!r} ({topic}) is not a LIBERO camera; sim_bridge '
                             f'publishes {", ".join(published)}')
    sizes = {(c.height, c.width) for c in contract.cameras}
    if len(sizes) != 1:
        raise ValueError(f'the views have different sizes {sorted(sizes)}; sim_bridge renders '
                         'every LIBERO camera at one size')
    if abs(contract.action_period_s - CONTROL_PERIOD) > 1e-6:
        raise ValueError(f'the checkpoint acts at {contract.fps:g} Hz; LIBERO steps at '
                         f'{1 / CONTROL_PERIOD:g} Hz (record at that rate: the libero map)')
    chunk = json.loads((Path(args.checkpoint) / 'config.json').read_text())['action'][
        'chunk_size']                   # verified with the contract above
    if args.actions_per_query > chunk:
        raise ValueError(f'actions_per_query {args.actions_per_query} exceeds the '
                         f"checkpoint's chunk of {chunk} actions")
    bridge = _sim_bridge(args, 'held_out', start_delay_s=3.0, size=sizes.pop(),
                         camera_fps=1 / CONTROL_PERIOD, lockstep=True, environment='libero')
    bridge.parameters.update({'lockstep_period_s': CONTROL_PERIOD, 'success_hold_s': 0.0,
                              'time_limit_s': args.time_limit_s, 'lockstep_timeout_s': 0.0})
    return [
        bridge,
        _node('dit4dit_policy', 'policy_node', 'policy_node',
              'dit4dit_policy.nodes.policy_node:PolicyNode',
              {'checkpoint': args.checkpoint, 'device': args.device,
               'actions_per_query': args.actions_per_query, 'use_sim_time': True}, SIM_PARAMS),
        _node('dit4dit_control', 'lockstep_executor', 'lockstep_executor',
              'dit4dit_control.nodes.lockstep_executor:LockstepExecutorNode',
              {'joints': list(contract.action_joints), 'lower': COMMAND_RANGE[0],
               'upper': COMMAND_RANGE[1], 'use_sim_time': True}, SIM_PARAMS),
    ]
