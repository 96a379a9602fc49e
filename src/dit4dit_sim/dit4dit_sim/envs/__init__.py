"""
Simulated environments behind ``sim_bridge``, ROS-free, chosen by name from ``ENVIRONMENTS``.

Every one is an ``Environment`` (``base``): ``g1_tabletop`` (MuJoCo, the G1 with Dex3 hands at
a table with coloured cubes), ``g1_twin`` (the same scene driven through Unitree's motor
commands, ``interface = 'unitree_hg'``) and ``libero`` (the LIBERO suites, Franka Panda on
robosuite). Backends
are imported only when made: MuJoCo and LIBERO are not needed by anything else in the suite.
"""

import importlib

from .base import Environment
from .render_size import checked_render_size

ENVIRONMENTS = {
    'g1_tabletop': ('dit4dit_sim.envs.g1_tabletop', 'G1Tabletop', 'TabletopConfig'),
    'libero': ('dit4dit_sim.envs.libero', 'Libero', 'LiberoConfig'),
    'g1_twin': ('dit4dit_sim.envs.g1_twin', 'G1Twin', 'TabletopConfig'),
}


def make_env(name: str, **config) -> Environment:
    """Return the environment ``name`` built with its config dataclass from ``config``."""
    if name not in ENVIRONMENTS:
        raise ValueError(f'unknown environment {name!r}; valid: {", ".join(ENVIRONMENTS)}')
    module, env_class, config_class = ENVIRONMENTS[name]
    module = importlib.import_module(module)
    return getattr(module, env_class)(getattr(module, config_class)(**config))


__all__ = ['checked_render_size', 'ENVIRONMENTS', 'Environment', 'make_env']
