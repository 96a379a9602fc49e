"""
Keep the DDS participants of these tests on loopback and off the default domain.

`make test` exports both variables (with a domain held for the run); this covers a plain `pytest`
run, which must never discover or multicast beyond this machine.
"""

import os
import random

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(10, 99)))


import pytest  # noqa: E402


@pytest.fixture
def load_launch_file(monkeypatch):
    """
    Return ``load(path)``: import a launch file with stand-ins for ``launch`` / ``launch_ros``.

    ``launch`` is not installable here. Each stand-in action keeps its ``args`` and ``kwargs``,
    so a test can read what the launch file would start; skips when the file is not beside
    this source tree (an installed-package run).
    """
    import importlib.util
    import sys
    import types

    class Action:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs
    modules = {'launch': {'LaunchDescription': Action},
               'launch.actions': {n: type(n, (Action,), {}) for n in (
                   'DeclareLaunchArgument', 'OpaqueFunction', 'ExecuteProcess', 'Shutdown')},
               'launch_ros': {}, 'launch_ros.actions': {'Node': type('Node', (Action,), {})}}
    for name, attrs in modules.items():
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attrs))

    def load(path):
        if not path.is_file():
            pytest.skip(f'{path} is not next to this source tree')
        spec = importlib.util.spec_from_file_location(path.stem.replace('.', '_'), path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load
