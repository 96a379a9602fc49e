"""
``g1_twin``: the G1 tabletop driven the way the real robot is, through Unitree's motor commands.

The scene, tasks, held-out states and head camera are ``g1_tabletop``'s, with the position
actuators removed: every joint is driven by the torque of its motor, computed at each physics
step by ``dit4dit_sim.unitree_twin.UnitreeTwin`` from the LowCmd / HandCmd in force. The base is
fixed (the robot stands supported at the table); the twin's own controller (the stand-in for the
walking controller) holds the standing pose, the tabletop's ``HOME``, with gravity compensation.
Joint order on the wire is the G1 description's (Unitree's motor slots), not MuJoCo's.

ROS-free; ``sim_bridge`` speaks ``unitree_hg`` for it (``interface = 'unitree_hg'``).
"""

import typing

from dit4dit_g1.description import G1Description, load_description
import numpy as np

from .g1_tabletop import G1Tabletop, HOME, TabletopConfig
from ..unitree_twin import TwinConfig, UnitreeTwin


class G1Twin(G1Tabletop):
    """See the module docstring."""

    name = 'g1_twin'
    interface = 'unitree_hg'

    def __init__(self, config: typing.Optional[TabletopConfig] = None,
                 description: typing.Optional[G1Description] = None,
                 twin: TwinConfig = TwinConfig()):
        """Build the torque-driven scene and the motor model of ``description`` (default G1)."""
        config = config or TabletopConfig()
        if config.actuation != 'torque':
            config = TabletopConfig(task=config.task, render_size=config.render_size,
                                    physics_dt=config.physics_dt, actuation='torque')
        super().__init__(config)
        self.description = description or load_description()
        d = self.description
        missing = [n for n in d.body_names if n not in self._vadr]
        if missing:
            raise ValueError(f'the G1 description names joints the scene lacks: {missing[:4]}')
        self.body_dofs = np.array([self._vadr[n] for n in d.body_names])
        self.body_qpos = np.array([self._qadr[n] for n in d.body_names])
        self.hand_dofs = {side: np.array([self._vadr[n] for n in hand.names])
                          for side, hand in d.hands.items()}
        self.hand_qpos = {side: np.array([self._qadr[n] for n in hand.names])
                          for side, hand in d.hands.items()}
        stand = np.array([HOME.get(n, 0.0) for n in d.body_names])
        self.motors = UnitreeTwin(d, stand, twin)
        self.body_tau = np.zeros(len(d.body_names))
        self.hand_tau = {side: np.zeros(len(dofs)) for side, dofs in self.hand_dofs.items()}
        self.clock = 0.0             # time of the twin's clock (never reset, unlike ``time``)
        self._imu = self.model.site('imu_in_pelvis').id

    def reset(self, seed: int, target: str = ''):
        """Start an episode (the tabletop's), the robot's controller holding the standing pose."""
        state = super().reset(seed, target)
        self.motors.reset()
        return state

    def apply(self, names, positions) -> None:
        """Refuse: the twin takes Unitree motor commands, not joint targets."""
        raise ValueError('g1_twin takes unitree_hg LowCmd / HandCmd (the robot interface), not '
                         'joint position targets')

    def step(self, seconds: float) -> None:
        """Advance by ``seconds``: each physics step with the motor torques of that moment."""
        mj, model, data = self._mj, self.model, self.data
        dt = model.opt.timestep
        for _ in range(max(1, int(round(seconds / dt)))):
            q, dq = data.qpos[self.body_qpos], data.qvel[self.body_dofs]
            gravity = data.qfrc_bias[self.body_dofs]
            self.body_tau = self.motors.body_torques(q, dq, gravity, self.clock)
            data.qfrc_applied[self.body_dofs] = self.body_tau
            for side, dofs in self.hand_dofs.items():
                tau = self.motors.hand_torques(side, data.qpos[self.hand_qpos[side]],
                                               data.qvel[dofs], self.clock)
                self.hand_tau[side] = tau
                data.qfrc_applied[dofs] = tau
            mj.mj_step(model, data)
            self.clock += dt

    # -- what LowState and HandState report ----------------------------------------------------
    def body_state(self):
        """Return (q, dq, tau) of the 29 body motors in Unitree's slot order."""
        data = self.data
        return data.qpos[self.body_qpos].copy(), data.qvel[self.body_dofs].copy(), \
            self.body_tau.copy()

    def hand_state(self, side: str):
        """Return (q, dq, tau) of a Dex3 hand's 7 motors in wire order."""
        data = self.data
        return data.qpos[self.hand_qpos[side]].copy(), data.qvel[self.hand_dofs[side]].copy(), \
            self.hand_tau[side].copy()

    def imu(self):
        """
        Return the pelvis IMU: quaternion (w, x, y, z), gyroscope, accelerometer, rpy.

        The base is fixed: no rotation rate, and the accelerometer reads gravity's reaction in
        the IMU's frame (what a resting IMU measures).
        """
        rotation = self.data.site_xmat[self._imu].reshape(3, 3)
        quat = np.empty(4)
        self._mj.mju_mat2Quat(quat, self.data.site_xmat[self._imu])
        w, x, y, z = quat
        rpy = np.array([np.arctan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y)),
                        np.arcsin(np.clip(2 * (w * y - z * x), -1.0, 1.0)),
                        np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))])
        return quat, np.zeros(3), rotation.T @ -self.model.opt.gravity, rpy
