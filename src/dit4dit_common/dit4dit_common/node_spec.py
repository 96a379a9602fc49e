"""
A node of a graph description, and the ``name:=value`` argument style, without ROS.

Graph descriptions (``dit4dit_bringup.graph``, the expert-parity graph of ``dit4dit_sim``) are
lists of ``NodeSpec``; launch files turn them into ``launch_ros`` actions, the in-process runners
build them with ``dit4dit_common.runner.build_node``, and ``ros_arguments`` gives the command line
of a node run as its own process.
"""

import dataclasses
from dataclasses import dataclass, field
import typing


@dataclass
class NodeSpec:
    """One node of a graph."""

    package: str
    executable: str                 # ros2 run / launch executable
    name: str
    node_class: str                 # 'module:Class' for in-process composition; '' (C++ node):
    #                                 ros2 launch / ros2 run only
    parameters: typing.Dict[str, typing.Any] = field(default_factory=dict)
    remappings: typing.List[typing.Tuple[str, str]] = field(default_factory=list)
    namespace: str = ''
    required: bool = True           # the scenario ends (non-zero) if this process dies
    stop_budget_s: float = 5.0      # time it may take to stop after SIGINT (e.g. a ramp down)
    nice: int = 0                   # CPU niceness as its own process: best-effort work (policy
    #                                 inference) yields the CPU to the control path

    def __post_init__(self):
        """Validate."""
        if not 0 <= self.nice <= 19:
            raise ValueError(f'{self.name}: nice {self.nice} must be in 0..19 (only lower '
                             'priority: raising it needs privileges)')

    @property
    def prefix(self) -> typing.List[str]:
        """Return the command prefix that applies ``nice`` ([] for none)."""
        return ['nice', '-n', str(self.nice)] if self.nice else []

    @property
    def module(self) -> str:
        """Return the module that runs this node as a process (``python -m``), or ''."""
        return self.node_class.split(':')[0]


def ros_arguments(spec: NodeSpec, params_file=None) -> typing.List[str]:
    """Return the --ros-args list that applies a NodeSpec's name, namespace and remappings."""
    args = ['--ros-args', '-r', f'__node:={spec.name}']
    if spec.namespace:
        args += ['-r', f'__ns:=/{spec.namespace.strip("/")}']
    for src, dst in spec.remappings:
        args += ['-r', f'{src}:={dst}']
    if params_file:
        args += ['--params-file', str(params_file)]
    return args


def parse_name_value(items, cls):
    """Parse ``name:=value`` items (values as YAML) into the validated dataclass ``cls``."""
    import yaml

    fields = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for item in items:
        key, sep, value = item.partition(':=')
        if not sep or key not in fields:
            raise ValueError(f'argument {item!r}: use name:=value with name in '
                             f'{", ".join(sorted(fields))}')
        values[key] = yaml.safe_load(value) if value else ''
    return cls(**values)


def launch_arguments(cls, configurations) -> dict:
    """
    Return the field values of the arguments dataclass ``cls`` from launch configuration texts.

    Launch arguments arrive as text: ints and floats are converted, booleans must read true or
    false (``bool('false')`` would be True), anything else stays text.
    """
    values = {}
    for f in dataclasses.fields(cls):
        text = configurations[f.name]
        name = f.type if isinstance(f.type, str) else f.type.__name__
        if name == 'bool':
            if text.lower() not in ('true', 'false'):
                raise ValueError(f'{f.name}: {text!r} is not true or false')
            values[f.name] = text.lower() == 'true'
        else:
            values[f.name] = {'int': int, 'float': float}.get(name, str)(text)
    return values


def launch_default(value) -> str:
    """Return a field default as launch-argument text (booleans lower case)."""
    return str(value).lower() if isinstance(value, bool) else str(value)
