"""
A scripted pick-and-place oracle for LIBERO-Spatial ("pick up the black bowl ... on the plate").

The plan (which object goes onto which) comes from the task's BDDL goal, without an environment
(``plan_for_task``). Each action is computed only from what a ROS node sees: the end-effector
position, the two finger positions and the objects' positions (``Libero.objects``), plus the
oracle's own phase. It grips the bowl's rim from above with the fingers across the wall, on the
side (-y or +y) with more room around it, lifts it, carries it over the target keeping the grasp
offset, lowers it onto the target and lets go; a missed grasp (fingers closed on nothing, or the
bowl not lifted) is retried from the other side. Actions are robosuite OSC_POSE deltas (1 = 5 cm
per 0.05 s step), the orientation is never commanded, the gripper is -1 open / +1 closed.
``run_direct`` drives the environment with it directly (no ROS). ROS-free.
"""

import re
import typing

import numpy as np

from ..envs.libero import all_tasks, COMMAND_NAMES, Libero, LiberoConfig, parse_task_id

RIM = 0.055              # grasp point: bowl centre +- this in y [m] (the rim; radius ~5.3 cm)
GRASP_HEIGHT = 0.035     # grip site above the bowl's origin when gripping [m]
ABOVE = 0.10             # approach height above the grasp point [m]
CARRY = 0.16             # bowl origin above the target's while carrying [m]
LIFT = 0.10              # ... and at least this far above where it was picked up [m]
PLACE = 0.035            # bowl origin above the target's when letting go [m]
FAST, SLOW = 0.8, 0.35   # action caps for free motion and near contact (1 = 5 cm per step)
STEP = 0.05              # OSC_POSE output limit per control step [m]
GAIN = 1.5               # action per metre of error, in units of STEP
FINGERS_EMPTY = 0.004    # finger opening (q1 - q2) below which a grasp missed [m]
SUPPORT = 0.06           # an object this close below the bowl (horizontally) holds it up [m]
DEFAULT_SIZE = 0.1       # object size when only positions are given [m]


def plan_for_task(task: str) -> typing.Tuple[str, str]:
    """Return (object, target) of a task's goal ``(On object target)``; ValueError otherwise."""
    parse_task_id(task)
    text = all_tasks()[task].bddl_file.read_text()
    goal = text[text.index('(:goal'):]
    relations = re.findall(r'\((On|In)\s+(\S+)\s+([^\s()]+)\s*\)', goal, flags=re.IGNORECASE)
    if len(relations) != 1:
        raise ValueError(f'task {task!r}: the oracle needs one On/In goal, the BDDL has '
                         f'{len(relations)}: {goal.strip()[:200]!r}')
    return relations[0][1], relations[0][2]


def _is_entry(value) -> bool:
    """Return True for a ``Libero.objects`` entry (position, rgb, size), not a bare position."""
    return isinstance(value, tuple) and len(value) == 3 and np.ndim(value[0]) == 1


def _position(value) -> np.ndarray:
    """Return the position of an ``objects`` value: a ``Libero.objects`` entry or a position."""
    return np.asarray(value[0] if _is_entry(value) else value, dtype=float)[:3]


def _size(value) -> float:
    """Return the size of an ``objects`` value (``DEFAULT_SIZE`` for a bare position) [m]."""
    return float(value[2]) if _is_entry(value) else DEFAULT_SIZE


class LiberoOracle:
    """Phase machine of the pick-and-place (module docstring); one per episode."""

    PHASES = ('approach', 'descend', 'grasp', 'lift', 'carry', 'lower', 'release', 'retreat')

    def __init__(self, plan: typing.Tuple[str, str], max_retries: int = 2):
        """Pick ``plan[0]`` and place it on ``plan[1]`` (names as in ``objects()``)."""
        self.object, self.target = plan
        self.max_retries = max_retries
        self.phase = 'approach'
        self.side = 0.0            # -1 or +1: which rim the fingers take (chosen at the first act)
        self.retries = 0
        self.count = 0             # control steps spent in the current phase
        self.lift_z = 0.0          # the bowl's height when the grasp closed
        self.grip_z = 0.0          # the grip site's height then
        self.carry_z = 0.0         # the bowl's height while carried
        self.offset = np.zeros(3)  # grip site minus bowl origin, measured once gripped
        self._last_opening = None

    @property
    def done(self) -> bool:
        """Return True once the object has been released and the gripper raised."""
        return self.phase == 'done'

    def choose_side(self, objects) -> float:
        """Return the rim side (-1 or +1, in y) with more room around the grasp point."""
        item = _position(objects[self.object])
        best, best_room = -1.0, -np.inf
        for side in (-1.0, 1.0):
            point = item + (0.0, side * RIM, 0.0)
            room = np.inf
            for name, value in objects.items():
                if name in ('eef', self.object):
                    continue
                pos, radius = _position(value), 0.5 * _size(value)
                if np.linalg.norm((pos - item)[:2]) < SUPPORT and pos[2] < item[2] - 0.02:
                    continue                                  # what the object stands on
                room = min(room, float(np.linalg.norm((pos - point)[:2])) - radius)
            if room > best_room + 1e-6:
                best, best_room = side, room
        return best

    def _next(self, phase: str) -> None:
        self.phase, self.count = phase, 0

    def _retry(self) -> None:
        self.retries += 1
        self.side = -self.side
        self._next('approach' if self.retries <= self.max_retries else 'done')

    def act(self, eef, fingers, objects) -> np.ndarray:
        """
        Return the next 7-D action from the observation.

        ``eef``: grip-site position; ``fingers``: the two finger joint positions; ``objects``:
        name -> ``Libero.objects`` entry (position, rgb, size) or bare position, holding the plan's
        two names. Sizes steer the choice of rim side (``choose_side``): without them every
        object counts as ``DEFAULT_SIZE`` across and a bulky neighbour (the cabinet) is missed.
        """
        eef = np.asarray(eef, dtype=float)[:3]
        fingers = np.asarray(fingers, dtype=float)
        opening = float(fingers[0] - fingers[1])
        item, target = _position(objects[self.object]), _position(objects[self.target])
        if not self.side:
            self.side = self.choose_side(objects)
        grasp = item + (0.0, self.side * RIM, GRASP_HEIGHT)
        self.count += 1
        gripper, cap, goal = -1.0, FAST, eef
        # Each phase: its goal, then whether it is over (tolerances [m]; step limits guard stalls).
        if self.phase == 'approach':
            goal = grasp + (0.0, 0.0, ABOVE)
            if np.linalg.norm(goal - eef) < 0.012 or self.count > 80:
                self._next('descend')
        if self.phase == 'descend':
            goal, cap = grasp, SLOW
            if np.linalg.norm(goal - eef) < 0.006 or self.count > 40:
                self._next('grasp')
                self._last_opening = None
        if self.phase == 'grasp':
            goal, gripper = grasp, 1.0
            settled = self._last_opening is not None and abs(opening - self._last_opening) < 2e-4
            self._last_opening = opening
            if (self.count >= 6 and settled) or self.count > 20:
                if opening < FINGERS_EMPTY:
                    self._retry()
                else:
                    self.lift_z, self.grip_z, self.offset = item[2], eef[2], eef - item
                    self.carry_z = max(target[2] + CARRY, item[2] + LIFT)
                    self._next('lift')
        if self.phase == 'lift':
            gripper, cap = 1.0, SLOW if self.count < 6 else FAST
            goal = np.array([*(item + self.offset)[:2], self.carry_z + self.offset[2]])
            if opening < FINGERS_EMPTY or (
                    eef[2] > self.grip_z + 0.05 and item[2] < self.lift_z + 0.02):
                self._retry()                                 # slipped out
            elif abs(goal[2] - eef[2]) < 0.02 or self.count > 40:
                self._next('carry')
        if self.phase == 'carry':
            gripper = 1.0
            goal = np.array([*target[:2], self.carry_z]) + (eef - item)
            if np.linalg.norm((target - item)[:2]) < 0.015 or self.count > 100:
                self._next('lower')
        if self.phase == 'lower':
            gripper, cap = 1.0, SLOW
            goal = target + (0.0, 0.0, PLACE) + (eef - item)
            if item[2] < target[2] + PLACE + 0.008 or self.count > 40:
                self._next('release')
        if self.phase == 'release':
            goal = eef
            if self.count >= 6:
                self._next('retreat')
        if self.phase == 'retreat':
            goal = eef + (0.0, 0.0, 0.1)
            if self.count > 10:
                self._next('done')
        if self.phase == 'done':
            goal = eef
        action = np.zeros(7)
        action[:3] = np.clip(GAIN * (goal - eef) / STEP, -cap, cap)
        action[6] = gripper
        return action


def run_direct(task_id: str, indices: typing.Iterable[int], render: bool = False,
               on_episode: typing.Optional[typing.Callable[[int, bool, int], None]] = None,
               env: typing.Optional[Libero] = None) -> typing.List[bool]:
    """
    Run the oracle on held-out initial states ``indices`` of ``task_id`` with no ROS in between.

    Each episode ends at the first success or the task's time limit; ``render`` also draws both
    cameras every step (as a data recorder would). ``on_episode(index, success, steps)`` is called
    after each. Pass ``env`` to reuse one (its task is switched); otherwise one is made and closed.
    """
    plan = plan_for_task(task_id)
    own = env is None
    if own:
        env = Libero(LiberoConfig(task=task_id))
    else:
        env.set_task(task_id)
    fingers = ('panda_finger_joint1', 'panda_finger_joint2')
    results = []
    try:
        for index in indices:
            env.reset(env.held_out_seeds[int(index)])
            oracle = LiberoOracle(plan)
            success = False
            while not env.timed_out():
                objects = env.objects()
                action = oracle.act(objects['eef'][0], env.joint_positions(fingers), objects)
                env.apply(COMMAND_NAMES, action)
                env.step(env.physics_dt)
                if render:
                    for camera in env.cameras:
                        env.render(camera)
                if env.success():
                    success = True
                    break
            steps = int(round(env.time / env.physics_dt))
            results.append(success)
            if on_episode is not None:
                on_episode(int(index), success, steps)
    finally:
        if own:
            env.close()
    return results
