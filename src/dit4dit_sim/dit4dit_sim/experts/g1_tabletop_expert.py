"""
Scripted experts for ``g1_tabletop``: inverse kinematics on one G1 arm with MuJoCo's Jacobians.

The expert picks the arm on the named cube's side, walks the finger tips through task waypoints
(above the cube then down onto it for ``reach``; behind it, low, then through it for ``push``) and
returns 14 arm joint targets per control period, moved at most ``max_speed`` per joint (the
executor's cap on the robot), so its demonstrations are motions the executor would also produce.
IK: damped least squares on the finger-tip position with a pull toward the home pose in the null
space, on a private copy of the simulator state (the simulation itself is never touched).
ROS-free.
"""

from dataclasses import dataclass
import typing

import numpy as np

from ..envs.g1_tabletop import ARM_JOINTS, CUBE_HALF, G1Tabletop, HOME


# Tighter IK ranges: rolling a shoulder inward past ~0 drives its yaw link into the torso.
IK_RANGES = {'left_shoulder_roll_joint': (0.0, 1.5), 'right_shoulder_roll_joint': (-1.5, 0.0)}


@dataclass
class ExpertConfig:
    """Expert settings."""

    max_speed: float = 0.5        # rad/s per joint (Unitree's arm examples use 0.5)
    tolerance: float = 0.015      # waypoint reached when the palm is this close [m]
    damping: float = 0.05         # IK damping (lambda)
    iterations: int = 20          # IK iterations per plan call
    home_gain: float = 0.05       # null-space pull toward the home pose


def waypoints(task: str, cube: np.ndarray, side: str) -> typing.List[np.ndarray]:
    """Return the palm waypoints for ``task`` on a cube at ``cube`` (world frame)."""
    inward = -1.0 if side == 'left' else 1.0      # keep the palm a little toward the body centre
    if task == 'reach':
        return [cube + (-0.04, 0.0, 0.10), cube + (-0.03, 0.0, CUBE_HALF + 0.01)]
    if task == 'push':
        # The Dex3 palm faces the body's midline: come down beside the cube on the outer side,
        # then sweep the palm inward through it.
        low = 0.04
        return [cube + (0.03, -0.08 * inward, 0.10), cube + (0.03, -0.07 * inward, low),
                cube + (0.03, 0.08 * inward, low)]
    raise ValueError(f'no expert for task {task!r}')


class TabletopExpert:
    """Plan arm joint targets for the current episode of a ``G1Tabletop`` (module docstring)."""

    def __init__(self, env: G1Tabletop, config: typing.Optional[ExpertConfig] = None):
        """Bind to ``env``; call ``reset`` after each ``env.reset``."""
        import mujoco

        self._mj = mujoco
        self.env = env
        self.config = config or ExpertConfig()
        self._data = mujoco.MjData(env.model)
        self.joints = ARM_JOINTS
        self.target: typing.Optional[np.ndarray] = None
        self.side = 'right'
        self.points: typing.List[np.ndarray] = []
        self.stage = 0

    def reset(self):
        """Plan the waypoints of the episode that ``env`` has just been reset to."""
        env = self.env
        cube = env.cube_position(env.state.target)
        self.side = 'left' if cube[1] > 0.05 else 'right'
        self.points = waypoints(env.task.name, cube, self.side)
        self.stage = 0
        self.target = env.joint_positions(self.joints)

    @property
    def done(self) -> bool:
        """Return True once the last waypoint has been reached."""
        return self.stage >= len(self.points)

    def act(self, dt: float) -> np.ndarray:
        """Return the 14 arm joint targets (``ARM_JOINTS`` order) for the next ``dt`` seconds."""
        env = self.env
        tip = env.tip_position(self.side)
        if not self.done and np.linalg.norm(tip - self.points[self.stage]) < \
                self.config.tolerance:
            self.stage += 1
        goal = self.points[min(self.stage, len(self.points) - 1)]
        solution = self._solve(goal)
        step = self.config.max_speed * dt
        self.target = self.target + np.clip(solution - self.target, -step, step)
        return self.target.copy()

    def _solve(self, goal: np.ndarray) -> np.ndarray:
        """Return arm joint positions that put the active palm at ``goal`` (best effort)."""
        mj, env, cfg = self._mj, self.env, self.config
        model, data = env.model, self._data
        data.qpos[:] = env.data.qpos
        arm = [j for j in self.joints if j.startswith(self.side)]
        index = [self.joints.index(j) for j in arm]
        qadr = np.array([model.jnt_qposadr[model.joint(j).id] for j in arm])
        dadr = np.array([model.jnt_dofadr[model.joint(j).id] for j in arm])
        ranges = [IK_RANGES.get(j, model.jnt_range[model.joint(j).id]) for j in arm]
        lo, hi = np.array([r[0] for r in ranges]), np.array([r[1] for r in ranges])
        home = np.array([HOME.get(j, 0.0) for j in arm])
        site = model.site(f'{self.side}_tip').id
        # From the commanded pose, not the measured one: a hand held back by a contact must not
        # drag the plan with it.
        data.qpos[qadr] = self.target[index]
        jac = np.zeros((3, model.nv))
        for _ in range(cfg.iterations):
            mj.mj_kinematics(model, data)
            mj.mj_comPos(model, data)
            error = goal - data.site_xpos[site]
            mj.mj_jacSite(model, data, jac, None, site)
            j = jac[:, dadr]
            inverse = j.T @ np.linalg.inv(j @ j.T + cfg.damping ** 2 * np.eye(3))
            q = data.qpos[qadr]
            null = (np.eye(len(arm)) - inverse @ j) @ (home - q) * cfg.home_gain
            data.qpos[qadr] = np.clip(q + inverse @ error + null, lo, hi)
        solution = self.target.copy()
        solution[index] = data.qpos[qadr]
        return solution
