"""
Node parameters declared once, with their descriptors: description, range, choices, read-only.

Each node module lists its parameters as a tuple of ``Param`` (its ``PARAMETERS``); ``declare``
declares them on the node and returns their values. Ranges go into the ROS descriptor, so
``ros2 param describe`` shows them and rclpy refuses an out-of-range value at declaration; choices
are checked here with an error that lists the valid ones. Parameters are read-only unless a node
reads them again at run time (a change would otherwise be accepted and silently ignored). The
graph description's parameter keys are checked against these tables by the system tests.
"""

from dataclasses import dataclass
import math
import typing


@dataclass(frozen=True)
class Param:
    """One declared parameter."""

    name: str
    default: typing.Any
    description: str
    low: typing.Optional[float] = None        # inclusive range (numbers); None: open
    high: typing.Optional[float] = None
    choices: typing.Tuple[str, ...] = ()      # valid values of a string parameter
    read_only: bool = True
    dynamic_typing: bool = False              # e.g. an empty list whose element type is open

    def __post_init__(self):
        """Validate the declaration itself."""
        if not self.description:
            raise ValueError(f'parameter {self.name}: a description is required')
        if self.choices and self.default not in self.choices:
            raise ValueError(f'parameter {self.name}: default {self.default!r} not in choices')

    def check(self, value):
        """Return ``value`` or raise ValueError naming the parameter and what is valid."""
        if self.choices and value not in self.choices:
            raise ValueError(f'parameter {self.name}={value!r}: valid are '
                             f'{", ".join(self.choices)}')
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f'parameter {self.name}={value}: must be finite')
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if (self.low is not None and value < self.low) or \
                    (self.high is not None and value > self.high):
                raise ValueError(f'parameter {self.name}={value}: must be in '
                                 f'[{_bound(self.low)}, {_bound(self.high)}]')
        return value


def _bound(value):
    return '-inf' if value is None else value


def names(table) -> typing.List[str]:
    """Return the parameter names of a table."""
    return [p.name for p in table]


def descriptor(param: Param):
    """Return the rcl_interfaces ParameterDescriptor of ``param``."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    text = param.description
    extra = {}
    if param.choices:
        text += f' One of: {", ".join(param.choices)}.'
    if isinstance(param.default, bool) or (param.low is None and param.high is None):
        pass
    elif isinstance(param.default, int):
        extra['integer_range'] = [IntegerRange(
            from_value=int(param.low if param.low is not None else -2 ** 62),
            to_value=int(param.high if param.high is not None else 2 ** 62), step=0)]
    elif isinstance(param.default, float):
        extra['floating_point_range'] = [FloatingPointRange(
            from_value=float(param.low if param.low is not None else -math.inf),
            to_value=float(param.high if param.high is not None else math.inf), step=0.0)]
    return ParameterDescriptor(description=text, read_only=param.read_only,
                               dynamic_typing=param.dynamic_typing, **extra)


def declare(node, table) -> dict:
    """
    Declare every ``Param`` of ``table`` on ``node``; return {name: value}, all checked.

    Raise ValueError with the parameter's name on a wrong type or a value out of range.
    """
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    values = {}
    for param in table:
        try:
            node.declare_parameter(param.name, param.default, descriptor(param))
        except InvalidParameterTypeException as exc:
            kind = type(param.default).__name__
            hint = ' (write 1.0, not 1)' if kind == 'float' else ''
            raise ValueError(f'parameter {param.name} must be a {kind}{hint}: {exc}') from None
        except InvalidParameterValueException as exc:
            raise ValueError(f'parameter {param.name}: {exc}') from None
        values[param.name] = param.check(node.get_parameter(param.name).value)
    return values
