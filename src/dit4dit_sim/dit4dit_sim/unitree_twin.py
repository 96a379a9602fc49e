"""
The robot's side of Unitree's low-level protocol, ROS-free: what a G1 does with LowCmd and HandCmd.

``UnitreeTwin`` takes the commands as they arrive (any object with the fields of ``unitree_hg``
LowCmd / HandCmd) and, at every physics step, turns the ones in force into joint torques, as the
motor drivers do: ``tau = kp (q_des - q) + kd (dq_des - dq) + tau_ff``, clamped to each motor's
torque limit (the G1 description's ``effort``). How it behaves is the robot's:

* A LowCmd whose CRC does not match is dropped and counted: it moves nothing. One whose
  ``mode_machine`` differs from the robot's is ignored (and counted), as Unitree's SDK does.
* Before any ``/lowcmd``, the robot's own controller holds the standing pose (the stand-in for
  the walking controller: PD with the description's gains plus gravity compensation; the base is
  fixed, the robot stands supported at the table). ``/arm_sdk`` commands blend into it motor by
  motor for the waist and arms (slots 12-28): ``tau = w tau_sdk + (1 - w) tau_controller`` with
  ``w = motor_cmd[29].q`` clamped to [0, 1]; the legs stay the controller's.
* A ``/lowcmd`` releases the controller: from then on its commands drive all 29 motors (a motor
  with mode 0 is off, no torque). Commands in force too long ago (``command_timeout_s``) leave the
  motors damped (kp = 0, the description's kd); an arm_sdk stream that stops hands the arms back
  to the controller.
* Dex3 hands: each HandCmd motor with the enable bit runs the same PD (its own torque limit); the
  timeout bit releases it (no torque); no command in force: damped.

Time (``now``, seconds of the twin's clock) is passed in, so everything is tested without DDS.
"""

from collections import Counter
from dataclasses import dataclass
import typing

from dit4dit_g1.crc import lowcmd_crc
from dit4dit_g1.description import DEX3_NUM_MOTORS, G1Description, NUM_BODY_MOTORS
from dit4dit_g1.lowcmd import ARM_SDK_MOTORS, ARM_SDK_WEIGHT_INDEX, DEX3_ENABLE, DEX3_TIMEOUT
import numpy as np

TOPICS = ('lowcmd', 'arm_sdk')
DEFAULT_MODE_MACHINE = 5        # what unitree_mujoco reports for 29-DoF scenes


@dataclass(frozen=True)
class TwinConfig:
    """How the twin behaves (validated)."""

    mode_machine: int = DEFAULT_MODE_MACHINE
    command_timeout_s: float = 0.1

    def __post_init__(self):
        """Validate."""
        if not 0 <= self.mode_machine <= 255:
            raise ValueError(f'mode_machine {self.mode_machine} is not a uint8')
        if not 0.0 < self.command_timeout_s < float('inf'):
            raise ValueError('command_timeout_s must be > 0 and finite')


@dataclass
class MotorCommands:
    """Motor commands in force: arrays per motor, and when they arrived."""

    q: np.ndarray
    dq: np.ndarray
    tau: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    enabled: np.ndarray        # bool per motor (mode / enable bit)
    stamp: float
    weight: float = 1.0        # arm_sdk blend weight (motor_cmd[29].q)

    def torques(self, q, dq) -> np.ndarray:
        """Return the PD torques of these commands at (q, dq); 0 where a motor is off."""
        tau = self.kp * (self.q - q) + self.kd * (self.dq - dq) + self.tau
        return np.where(self.enabled, tau, 0.0)


def _motor_arrays(motors, count: int):
    rows = np.array([(m.q, m.dq, m.tau, m.kp, m.kd) for m in motors[:count]], dtype=float)
    modes = np.array([m.mode for m in motors[:count]], dtype=int)
    return rows, modes


class UnitreeTwin:
    """See the module docstring."""

    def __init__(self, description: G1Description, stand_pose, config: TwinConfig = TwinConfig()):
        """Hold the standing pose (29 positions by motor slot) with the controller's gains."""
        self.description, self.config = description, config
        self.stand_pose = np.asarray(stand_pose, dtype=float)
        if self.stand_pose.shape != (NUM_BODY_MOTORS,):
            raise ValueError(f'stand_pose needs {NUM_BODY_MOTORS} positions')
        self.effort = description.effort
        self.hand_effort = {side: hand.effort for side, hand in description.hands.items()}
        self.commands: typing.Dict[str, typing.Optional[MotorCommands]] = dict.fromkeys(TOPICS)
        self.hand_commands: typing.Dict[str, typing.Optional[MotorCommands]] = dict.fromkeys(
            description.hands)
        self.released = False         # a /lowcmd took over from the robot's own controller
        self.rejected: typing.Counter[str] = Counter()
        self.accepted: typing.Counter[str] = Counter()
        self.mode = 'controller'      # what drives the body now (for LowState/diagnostics)

    def reset(self):
        """Forget every command: the robot's controller holds the standing pose again."""
        self.commands = dict.fromkeys(TOPICS)
        self.hand_commands = dict.fromkeys(self.hand_commands)
        self.released = False

    # -- commands ------------------------------------------------------------------------------
    def on_lowcmd(self, topic: str, msg, now: float) -> str:
        """Take a LowCmd from ``topic`` ('lowcmd' or 'arm_sdk'); return why it was refused."""
        if topic not in TOPICS:
            raise ValueError(f'topic {topic!r}: valid are {", ".join(TOPICS)}')
        reason = ''
        if len(msg.motor_cmd) <= ARM_SDK_WEIGHT_INDEX:
            reason = 'malformed'
        elif lowcmd_crc(msg) != msg.crc:
            reason = 'crc'
        elif msg.mode_machine != self.config.mode_machine:
            reason = 'mode_machine'
        if reason:
            self.rejected[reason] += 1
            return reason
        rows, modes = _motor_arrays(msg.motor_cmd, NUM_BODY_MOTORS)
        if not np.all(np.isfinite(rows)):
            self.rejected['non_finite'] += 1
            return 'non_finite'
        weight = float(msg.motor_cmd[ARM_SDK_WEIGHT_INDEX].q)
        self.commands[topic] = MotorCommands(
            rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4], modes == 1, now,
            min(1.0, max(0.0, weight)) if np.isfinite(weight) else 0.0)
        self.accepted[topic] += 1
        if topic == 'lowcmd':
            self.released = True
        return ''

    def on_handcmd(self, side: str, msg, now: float) -> str:
        """Take a Dex3 HandCmd for ``side``; return why it was refused ('' if taken)."""
        if side not in self.hand_commands:
            raise ValueError(f'side {side!r}: the twin has Dex3 hands '
                             f'{", ".join(self.hand_commands)}')
        if len(msg.motor_cmd) < DEX3_NUM_MOTORS:
            self.rejected['hand_malformed'] += 1
            return 'hand_malformed'
        rows, modes = _motor_arrays(msg.motor_cmd, DEX3_NUM_MOTORS)
        if not np.all(np.isfinite(rows)):
            self.rejected['hand_non_finite'] += 1
            return 'hand_non_finite'
        enabled = ((modes & 0x70) == DEX3_ENABLE) & ((modes & DEX3_TIMEOUT) == 0)
        self.hand_commands[side] = MotorCommands(
            rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4], enabled, now)
        self.accepted[f'hand_{side}'] += 1
        return ''

    def _fresh(self, commands: typing.Optional[MotorCommands], now: float) -> bool:
        return commands is not None and now - commands.stamp <= self.config.command_timeout_s

    # -- torques -------------------------------------------------------------------------------
    def body_torques(self, q, dq, gravity, now: float) -> np.ndarray:
        """
        Return the 29 body motor torques at (q, dq) for this physics step.

        ``gravity``: the torques that hold the body against gravity (the controller compensates
        them; the motor drivers do not).
        """
        q, dq = np.asarray(q, dtype=float), np.asarray(dq, dtype=float)
        d = self.description
        if self.released:
            lowcmd = self.commands['lowcmd']
            if self._fresh(lowcmd, now):
                self.mode = 'lowcmd'
                tau = lowcmd.torques(q, dq)
            else:
                self.mode = 'damped'
                tau = -d.kd * dq
            return np.clip(tau, -self.effort, self.effort)
        tau = d.kp * (self.stand_pose - q) - d.kd * dq + np.asarray(gravity, dtype=float)
        self.mode = 'controller'
        sdk = self.commands['arm_sdk']
        if self._fresh(sdk, now):
            self.mode = 'arm_sdk'
            slots = list(ARM_SDK_MOTORS)
            blended = sdk.torques(q, dq)[slots]
            w = np.where(sdk.enabled[slots], sdk.weight, 0.0)
            tau[slots] = w * blended + (1.0 - w) * tau[slots]
        return np.clip(tau, -self.effort, self.effort)

    def hand_torques(self, side: str, q, dq, now: float) -> np.ndarray:
        """Return the 7 motor torques of a Dex3 hand at (q, dq) for this physics step."""
        q, dq = np.asarray(q, dtype=float), np.asarray(dq, dtype=float)
        command = self.hand_commands[side]
        hand = self.description.hands[side]
        tau = command.torques(q, dq) if self._fresh(command, now) else -hand.kd * dq
        return np.clip(tau, -self.hand_effort[side], self.hand_effort[side])

    def counters(self) -> typing.Dict[str, int]:
        """Return accepted and rejected message counts (keys 'accepted_*', 'rejected_*')."""
        out = {f'accepted_{k}': v for k, v in self.accepted.items()}
        out.update({f'rejected_{k}': v for k, v in self.rejected.items()})
        return out
