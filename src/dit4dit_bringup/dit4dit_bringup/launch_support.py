"""
What every launch file of the suite does with a graph description: start it safely, or not at all.

* ``preflight`` runs before any process starts: every executable must be installed (a missing
  ``robot_state_publisher`` or ``ros2 bag`` is an error naming the fix, not a half-started graph).
* ``node_actions`` turns NodeSpecs into ``launch_ros`` Node actions whose SIGTERM timeout is the
  node's own stop budget (the G1 bridge's ramp-down, a recorder's flush), so ``ros2 launch``
  never escalates to SIGTERM/SIGKILL in the middle of a ramp, and whose ``nice`` becomes a
  ``nice -n`` prefix.
* ``on_exit``: a required process that exits while the launch is running ends the launch; with a
  non-zero exit the launch itself fails (raising inside launch makes it shut every process down
  and return 1). A process listed in ``finishes`` ending with 0 is the scenario's normal end.

The ``launch`` imports live inside the functions: this module imports without a ROS 2 install.
"""

import shutil
import typing

from dit4dit_common.node_spec import NodeSpec

SIGKILL_AFTER_S = 5.0      # after SIGTERM, before SIGKILL (launch's own default)


class RequiredProcessExited(RuntimeError):
    """A process the scenario needs has died; launch shuts everything down and returns 1."""


def executable_installed(package: str, executable: str) -> str:
    """Return '' if ``package``'s ``executable`` is installed (ament index), else the problem."""
    try:
        from ament_index_python.packages import get_package_prefix, PackageNotFoundError
    except ImportError:
        return 'ament_index_python is not installed (source a ROS 2 install)'
    try:
        prefix = get_package_prefix(package)
    except PackageNotFoundError:
        return f'package {package} is not installed'
    from pathlib import Path
    if not (Path(prefix) / 'lib' / package / executable).exists():
        return f'{package} has no executable {executable}'
    return ''


def preflight(specs: typing.Sequence[NodeSpec], extra: typing.Sequence[str] = ()):
    """Raise RuntimeError naming every executable that is missing, before anything starts."""
    problems = [f'{s.name}: {why}' for s in specs
                for why in [executable_installed(s.package, s.executable)] if why]
    problems += [f'{cmd}: not on PATH' for cmd in extra if shutil.which(cmd) is None]
    if problems:
        raise RuntimeError('cannot start the launch (nothing was started):\n  ' +
                           '\n  '.join(problems))


def on_exit(name: str, finishes: bool):
    """Return the ``on_exit`` callable of a required process called ``name``."""
    def handler(event, context):
        if context.is_shutdown:
            return None                  # the launch is stopping anyway: exits are expected
        code = event.returncode
        if finishes and code == 0:
            from launch.actions import Shutdown
            return [Shutdown(reason=f'{name} finished')]
        raise RequiredProcessExited(f'required process {name} exited with code {code}: '
                                    'stopping the launch')
    return handler


def node_actions(specs: typing.Sequence[NodeSpec], finishes: typing.Sequence[str] = ()):
    """Return launch_ros Node actions for ``specs`` (see the module docstring)."""
    from launch_ros.actions import Node

    return [Node(package=s.package, executable=s.executable, name=s.name,
                 namespace=s.namespace or None, parameters=[s.parameters],
                 prefix=' '.join(s.prefix) or None,
                 remappings=s.remappings, output='screen',
                 sigterm_timeout=str(s.stop_budget_s), sigkill_timeout=str(SIGKILL_AFTER_S),
                 **({'on_exit': on_exit(s.name, s.name in finishes)} if s.required else {}))
            for s in specs]


def declare_arguments(cls, descriptions: typing.Dict[str, str], choices=None):
    """Return DeclareLaunchArgument actions for every field of the arguments dataclass ``cls``."""
    import dataclasses

    from dit4dit_common.node_spec import launch_default
    from launch.actions import DeclareLaunchArgument

    choices = choices or {}
    return [DeclareLaunchArgument(
        f.name, default_value=launch_default(f.default), description=descriptions[f.name],
        **({'choices': list(choices[f.name])} if f.name in choices else {}))
        for f in dataclasses.fields(cls)]
