"""
The one G1 description: joints by Unitree motor slot, limits, gains, ramps, Dex3 hands.

``config/g1_29dof_dex3.yaml`` is a robot profile (``dit4dit_common.robot_profile``) that is also
the G1 driver's source of truth: the bridge's wire tables (joint name per LowCmd slot, position
limits, kp/kd, the Dex3 hands' names, limits and gains, the arm_sdk ramp times) are derived here
from it, and so are the parameters that the graph gives the executor and the bridge. Nothing
restates them: the tests compare every other mention (Unitree's SDK, the wire layout) with it.

ROS-free (numpy, yaml); ``ament_index_python`` only to find the installed file by name.
"""

from dataclasses import dataclass
from pathlib import Path
import typing

from dit4dit_common.paths import share_dir
from dit4dit_common.robot_profile import load_profile, ProfileError, RobotProfile
import numpy as np

DEFAULT = 'g1_29dof_dex3'
NUM_BODY_MOTORS = 29      # LowCmd/LowState slots 0-28 drive the body of the 29-DoF G1
DEX3_NUM_MOTORS = 7       # HandCmd/HandState slots of one Dex3-1 hand
DEX3_SIDES = ('left', 'right')


def config_dir() -> Path:
    """Return the directory of the packaged descriptions (installed share/, or the source)."""
    return share_dir('dit4dit_g1', __file__, 'config')


def description_path(name_or_path: str = DEFAULT) -> Path:
    """Return the YAML file of a packaged description (by name) or of a path."""
    path = Path(str(name_or_path)).expanduser()
    if path.suffix:
        return path
    path = config_dir() / f'{name_or_path}.yaml'
    if not path.is_file():
        names = sorted(p.stem for p in config_dir().glob('*.yaml'))
        raise ProfileError(f'unknown G1 description {name_or_path!r}; packaged: '
                           f'{", ".join(names)} (or give the path of a YAML file)')
    return path


@dataclass(frozen=True)
class Dex3Hand:
    """One Dex3-1 hand: joint names, limits and gains in wire order (HandCmd slot 0-6)."""

    side: str
    names: typing.Tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    effort: np.ndarray                      # torque limit per wire slot [N.m]


@dataclass(frozen=True)
class G1Description:
    """The G1's wire tables, derived from a validated profile (see the module docstring)."""

    profile: RobotProfile
    path: Path
    body_names: typing.Tuple[str, ...]      # joint name per body motor slot 0-28
    lower: np.ndarray                       # [29] position limits per slot [rad]
    upper: np.ndarray
    kp: np.ndarray                          # [29] gains per slot
    kd: np.ndarray
    effort: np.ndarray                      # [29] motor torque limits per slot [N.m]
    hands: typing.Dict[str, Dex3Hand]       # the Dex3 hands the description has
    max_velocity: float                     # execution cap [rad/s] the bridge enforces again
    ramp_up_s: float                        # arm_sdk weight 0 -> 1
    ramp_down_s: float                      # arm_sdk weight 1 -> 0 (and lowcmd damping time)

    @classmethod
    def from_profile(cls, profile: RobotProfile, path='') -> 'G1Description':
        """Check that ``profile`` describes a 29-DoF G1 (and Dex3 hands); build the tables."""
        body = sorted((j for j in profile.joints if not j.hand), key=lambda j: j.motor)
        slots = [j.motor for j in body]
        if slots != list(range(NUM_BODY_MOTORS)):
            missing = sorted(set(range(NUM_BODY_MOTORS)) - set(slots))
            extra = sorted(set(slots) - set(range(NUM_BODY_MOTORS)))
            raise ProfileError(f'{profile.name}: a G1 description names one body joint per '
                               f'motor slot 0-{NUM_BODY_MOTORS - 1}; missing slots {missing}, '
                               f'extra {extra}')
        hands = {}
        for side in DEX3_SIDES:
            joints = sorted((j for j in profile.joints if j.hand == side), key=lambda j: j.motor)
            if not joints:
                continue
            if [j.motor for j in joints] != list(range(DEX3_NUM_MOTORS)):
                raise ProfileError(f'{profile.name}: the {side} Dex3 hand needs one joint per '
                                   f'wire slot 0-{DEX3_NUM_MOTORS - 1}, got '
                                   f'{[j.motor for j in joints]}')
            arrays = profile.arrays([j.name for j in joints])
            hands[side] = Dex3Hand(side, tuple(j.name for j in joints), arrays['lower'],
                                   arrays['upper'], arrays['kp'], arrays['kd'], arrays['effort'])
        missing = [k for k in ('arm_sdk_ramp_up_s', 'arm_sdk_ramp_down_s')
                   if k not in profile.execution]
        if missing:
            raise ProfileError(f'{profile.name}: a G1 description needs execution.'
                               f'{" and execution.".join(missing)}')
        no_effort = [j.name for j in profile.joints if not j.effort > 0]
        if no_effort:
            raise ProfileError(f'{profile.name}: a G1 description gives every motor its torque '
                               f'limit (effort); missing for {", ".join(no_effort[:4])}')
        arrays = profile.arrays([j.name for j in body])
        for arr in arrays.values():
            arr.flags.writeable = False
        return cls(profile=profile, path=Path(str(path)),
                   body_names=tuple(j.name for j in body), lower=arrays['lower'],
                   upper=arrays['upper'], kp=arrays['kp'], kd=arrays['kd'],
                   effort=arrays['effort'], hands=hands,
                   max_velocity=float(profile.execution['max_velocity']),
                   ramp_up_s=float(profile.execution['arm_sdk_ramp_up_s']),
                   ramp_down_s=float(profile.execution['arm_sdk_ramp_down_s']))

    def slot(self, name: str) -> int:
        """Return the body motor slot of joint ``name``; ProfileError if it is not a body joint."""
        try:
            return self.body_names.index(name)
        except ValueError:
            raise ProfileError(f'{name} is not a body joint of {self.profile.name}') from None

    def hand_of(self, name: str) -> typing.Optional[typing.Tuple[str, int]]:
        """Return (side, wire slot) of a Dex3 joint, or None."""
        for side, hand in self.hands.items():
            if name in hand.names:
                return side, hand.names.index(name)
        return None

    def policy_sides(self) -> typing.Tuple[str, ...]:
        """Return the hands whose joints the policy may command (profile policy_joints)."""
        wanted = set(self.profile.policy_joints)
        return tuple(s for s, h in self.hands.items() if wanted & set(h.names))


def load_description(name_or_path: str = DEFAULT) -> G1Description:
    """Load and check a G1 description (packaged name or path)."""
    path = description_path(name_or_path)
    return G1Description.from_profile(load_profile(path), path)
