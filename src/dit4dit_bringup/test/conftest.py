"""
Keep every DDS participant of these tests on loopback and off the default domain.

`make test` already exports both variables (and a domain held for the run); this covers a plain
`pytest` run by a developer, which must never multicast on the machine's network.
"""

from dit4dit_common.testing import context, loopback  # noqa: F401 (context: a fixture)

loopback()

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

    class LaunchConfiguration(Action):
        def perform(self, launch_context):
            return launch_context.launch_configurations[self.args[0]]

    modules = {'launch': {'LaunchDescription': Action},
               'launch.actions': {n: type(n, (Action,), {}) for n in (
                   'DeclareLaunchArgument', 'OpaqueFunction', 'ExecuteProcess', 'Shutdown')},
               'launch.substitutions': {'LaunchConfiguration': LaunchConfiguration},
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


@pytest.fixture
def launch(load_launch_file):
    """
    Return a function giving the actions a launch file starts for the arguments it is given.

    Arguments not given take their declared defaults; the returned object has ``declared``
    ({name: DeclareLaunchArgument kwargs}) and ``actions`` (what the OpaqueFunction returned).
    """
    import types

    def run(path, **values):
        module = load_launch_file(path)
        entities = module.generate_launch_description().args[0]
        declared = {e.args[0]: e.kwargs for e in entities
                    if type(e).__name__ == 'DeclareLaunchArgument'}
        (opaque,) = [e for e in entities if type(e).__name__ == 'OpaqueFunction']
        config = {name: kw['default_value'] for name, kw in declared.items()}
        config.update({k: str(v) for k, v in values.items()})
        launch_context = types.SimpleNamespace(launch_configurations=config, is_shutdown=False)
        return types.SimpleNamespace(declared=declared,
                                     actions=opaque.kwargs['function'](launch_context))
    return run
