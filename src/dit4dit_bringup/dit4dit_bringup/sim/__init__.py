"""
Simulated environments behind ``sim_bridge``, ROS-free, chosen by name from ``ENVIRONMENTS``.

``g1_tabletop`` (MuJoCo, the G1 with Dex3 hands at a table with coloured cubes) and ``libero``
(the LIBERO suites, Franka Panda on robosuite). Backends are imported only when made: MuJoCo and
LIBERO are not needed by anything else in the suite.
"""

import importlib

ENVIRONMENTS = {
    'g1_tabletop': ('dit4dit_bringup.sim.g1_tabletop', 'G1Tabletop', 'TabletopConfig'),
    'libero': ('dit4dit_bringup.sim.libero', 'Libero', 'LiberoConfig'),
}


def make_env(name: str, **config):
    """Return the environment ``name`` built with its config dataclass from ``config``."""
    if name not in ENVIRONMENTS:
        raise ValueError(f'unknown environment {name!r}; valid: {", ".join(ENVIRONMENTS)}')
    module, env_class, config_class = ENVIRONMENTS[name]
    module = importlib.import_module(module)
    return getattr(module, env_class)(getattr(module, config_class)(**config))


def checked_render_size(size, max_height: int, max_width: int):
    """Return ``size`` as (height, width) ints, or raise if outside 16x16 .. the maximum."""
    h, w = (int(v) for v in size)
    if not (16 <= h <= max_height and 16 <= w <= max_width):
        raise ValueError(f'render_size {size} must be within 16x16 .. {max_height}x{max_width}')
    return h, w
