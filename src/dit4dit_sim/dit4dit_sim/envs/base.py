"""
The one interface every simulated environment offers ``sim_bridge`` (and experts, and tests).

An environment runs one episode at a time on its own clock: ``reset`` to an initial state (a seed,
optionally naming which of the scene's ``targets`` the instruction is about), ``apply`` position
targets by joint name, ``step`` simulated seconds, then read joints, ``render`` a camera view,
and ask ``success`` / ``failure`` / ``timed_out``. ROS-free; the bridge converts and schedules.
"""

import abc
import typing

import numpy as np


class Environment(abc.ABC):
    """A simulated, episodic, language-conditioned environment (see the module docstring)."""

    name: str = ''
    interface: str = 'joint_topics'                  # or 'unitree_hg': LowState/LowCmd (a twin)
    tasks: typing.Mapping[str, typing.Any] = {}      # task id -> task (with .name)
    held_out_seeds: typing.Sequence[int] = ()        # seeds of the fixed evaluation states
    targets: typing.Tuple[str, ...] = ()             # what reset(seed, target) may name
    cameras: typing.Tuple[str, ...] = ()             # camera views; the first is the main one
    joint_names: typing.Tuple[str, ...] = ()
    instruction: str = ''                            # of the current episode
    task: typing.Any = None                          # the task of the next or current episode

    def set_task(self, name: str):
        """Switch to task ``name`` from the next reset on; ValueError lists the valid ids."""
        if name not in self.tasks:
            raise ValueError(f'unknown {self.name} task {name!r}; valid: '
                             f'{", ".join(self.tasks)}')
        self.task = self.tasks[name]
        return self.task

    @property
    @abc.abstractmethod
    def physics_dt(self) -> float:
        """Return the smallest step the environment takes [s]."""

    @property
    @abc.abstractmethod
    def time(self) -> float:
        """Return the simulated time since the episode started [s]."""

    @abc.abstractmethod
    def reset(self, seed: int, target: str = ''):
        """Start the episode of ``seed`` (``target``: one of ``targets``, or '' for the seed's)."""

    @abc.abstractmethod
    def apply(self, names: typing.Sequence[str], positions) -> None:
        """Set position targets by joint (or command) name; ValueError refuses the whole set."""

    @abc.abstractmethod
    def step(self, seconds: float) -> None:
        """Advance the simulation by ``seconds`` (a multiple of ``physics_dt``)."""

    @abc.abstractmethod
    def joint_positions(self, names=None) -> np.ndarray:
        """Return joint positions (of ``names``, default every joint)."""

    @abc.abstractmethod
    def joint_velocities(self, names=None) -> np.ndarray:
        """Return joint velocities (of ``names``, default every joint)."""

    @abc.abstractmethod
    def render(self, camera: typing.Optional[str] = None) -> np.ndarray:
        """Return camera view ``camera`` (default the first) as (H, W, 3) uint8 RGB."""

    @abc.abstractmethod
    def objects(self) -> typing.Dict[str, typing.Tuple[np.ndarray, tuple, float]]:
        """Return {name: (position, rgb colour, size)} of the task's objects."""

    @abc.abstractmethod
    def success(self) -> bool:
        """Return whether the task is achieved now."""

    @abc.abstractmethod
    def failure(self) -> str:
        """Return why the episode has failed ('' if it has not)."""

    @abc.abstractmethod
    def timed_out(self) -> bool:
        """Return whether the episode's time limit has passed."""

    def close(self) -> None:
        """Free renderers and simulator resources."""
