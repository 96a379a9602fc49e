"""
Robot profiles: joints, Unitree motor indices, limits, gains, home pose, policy joints.

A profile is YAML, validated on load so that a typo cannot reach a motor: unique names and motor
slots, lower < upper, positive velocities, a gain group for every joint, a home pose inside the
limits, and policy joints that exist. The G1 one is the G1 description of ``dit4dit_g1``
(``dit4dit_g1.description`` finds it by name); here profiles are loaded by path only, so the
packages that read them (control, the G1 driver, bringup) depend on none of each other.
"""

from dataclasses import dataclass, field
import math
from pathlib import Path
import typing

import numpy as np
import yaml


class ProfileError(ValueError):
    """A robot profile is invalid."""


# execution: what the executor and the bridges enforce. Required keys, then optional ones (the
# arm_sdk ramps only mean something on a Unitree robot; its driver requires them).
EXECUTION_REQUIRED = ('max_velocity', 'max_acceleration', 'ramp_in_s')
EXECUTION_OPTIONAL = ('arm_sdk_ramp_up_s', 'arm_sdk_ramp_down_s')


@dataclass(frozen=True)
class Joint:
    """One joint of the robot."""

    name: str
    motor: int                      # LowCmd/LowState slot, or the Dex3 wire index for hands
    lower: float
    upper: float
    velocity: float                 # URDF velocity limit [rad/s]
    group: str
    hand: str = ''                  # 'left' or 'right' for Dex3 joints, '' for the body
    effort: float = 0.0             # motor torque limit [N.m] (URDF effort; 0: not given)


@dataclass
class RobotProfile:
    """A validated robot profile."""

    name: str
    joints: typing.List[Joint]
    gains: typing.Dict[str, typing.Dict[str, float]]
    policy_joints: typing.List[str]
    execution: typing.Dict[str, float] = field(default_factory=dict)
    home: typing.Dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        """Validate."""
        names = [j.name for j in self.joints]
        dupes = sorted({n for n in names if names.count(n) > 1})
        _check(not dupes, f'duplicate joint names: {", ".join(dupes)}')
        for part in ('', 'left', 'right'):
            slots = [j.motor for j in self.joints if j.hand == part]
            _check(len(slots) == len(set(slots)),
                   f'two joints share a motor slot ({part or "body"})')
            limit = 35 if not part else 7
            _check(all(0 <= s < limit for s in slots),
                   f'motor slots must be in [0, {limit}) for {part or "the body"}')
        for j in self.joints:
            _check(j.lower < j.upper, f'{j.name}: lower {j.lower} >= upper {j.upper}')
            _check(j.velocity > 0, f'{j.name}: velocity limit must be > 0')
            _check(j.effort >= 0, f'{j.name}: effort (torque limit) must be >= 0')
            _check(j.group in self.gains, f'{j.name}: no gains for group {j.group!r}')
            _check(j.hand in ('', 'left', 'right'), f'{j.name}: hand must be left or right')
        for group, g in self.gains.items():
            _check(set(g) == {'kp', 'kd'} and g['kp'] >= 0 and g['kd'] >= 0,
                   f'gains.{group} must be {{kp: >= 0, kd: >= 0}}')
        unknown = [n for n in list(self.policy_joints) + list(self.home) if n not in names]
        _check(not unknown, f'unknown joints: {", ".join(unknown)}')
        _check(self.policy_joints, 'policy_joints must not be empty')
        for name, q in self.home.items():
            j = self.joint(name)
            _check(j.lower <= q <= j.upper, f'home {name}={q} outside [{j.lower}, {j.upper}]')
        valid = EXECUTION_REQUIRED + EXECUTION_OPTIONAL
        unknown = sorted(set(self.execution) - set(valid))
        _check(not unknown, f'execution: unknown key(s) {", ".join(unknown)}; valid: '
               f'{", ".join(valid)}')
        missing = [k for k in EXECUTION_REQUIRED if k not in self.execution]
        _check(not missing, f'execution: missing {", ".join(missing)}')
        for key, value in self.execution.items():
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value) and value >= 0
            _check(ok, f'execution.{key} must be a finite number >= 0, got {value!r}')
        for key in ('max_velocity', 'max_acceleration'):
            _check(self.execution[key] > 0, f'execution.{key} must be > 0')

    def joint(self, name: str) -> Joint:
        """Return the joint called ``name``."""
        for j in self.joints:
            if j.name == name:
                return j
        raise ProfileError(f'no joint {name!r} in profile {self.name}')

    def arrays(self, names=None) -> dict:
        """Return lower, upper, velocity, effort, kp, kd, home, motor of ``names`` (or policy)."""
        joints = [self.joint(n) for n in (names or self.policy_joints)]
        return {
            'lower': np.array([j.lower for j in joints]),
            'upper': np.array([j.upper for j in joints]),
            'velocity': np.array([j.velocity for j in joints]),
            'effort': np.array([j.effort for j in joints]),
            'kp': np.array([self.gains[j.group]['kp'] for j in joints]),
            'kd': np.array([self.gains[j.group]['kd'] for j in joints]),
            'home': np.array([self.home.get(j.name, 0.0) for j in joints]),
            'motor': np.array([j.motor for j in joints]),
        }

    def execution_limits(self, names=None):
        """Return per-joint (max_velocity, max_acceleration): execution caps within the URDF."""
        urdf = self.arrays(names)['velocity']
        vel = np.minimum(urdf, self.execution['max_velocity'])
        acc = np.full_like(vel, self.execution['max_acceleration'])
        return vel, acc


def _check(cond, msg):
    if not cond:
        raise ProfileError(msg)


def profile_from_dict(data: dict) -> RobotProfile:
    """Build a profile from plain data; unknown keys are refused."""
    _check(isinstance(data, dict), 'profile: expected a mapping')
    valid = set(RobotProfile.__dataclass_fields__)
    unknown = sorted(set(data) - valid)
    _check(not unknown, f'profile: unknown key(s) {", ".join(unknown)}; valid: '
           f'{", ".join(sorted(valid))}')
    joints = []
    for i, entry in enumerate(data.get('joints') or []):
        try:
            joints.append(Joint(**entry))
        except TypeError as exc:
            raise ProfileError(f'joints[{i}]: {exc}') from exc
    return RobotProfile(**{**data, 'joints': joints, 'home': data.get('home') or {}})


def load_profile(path) -> RobotProfile:
    """Load a profile from a YAML file (ProfileError if it is missing or invalid)."""
    path = Path(str(path)).expanduser()
    if not path.suffix:
        raise ProfileError(f'profile {path}: give the path of a YAML file (a G1 description by '
                           'name: dit4dit_g1.description.description_path(name))')
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ProfileError(f'{path}: {exc}') from exc
    return profile_from_dict(data)
