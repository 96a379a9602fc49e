"""Parameters declared once with descriptors: ranges, choices, read-only, clear errors."""

from dit4dit_common.params import declare, descriptor, names, Param
import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter

TABLE = (
    Param('rate_hz', 250.0, 'Rate [Hz].', low=1.0, high=500.0),
    Param('mode', 'arm_sdk', 'Mode.', choices=('arm_sdk', 'lowcmd')),
    Param('count', 3, 'Count.', low=0),
    Param('gain', 0.5, 'A gain changed at run time.', read_only=False),
    Param('names', [''], 'Names.'),
)


def _node(context, **values):
    return Node('params_test', context=context,
                parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])


def test_values_defaults_and_descriptors(context):
    node = _node(context, rate_hz=100.0, names=['a', 'b'])
    try:
        p = declare(node, TABLE)
        assert p == {'rate_hz': 100.0, 'mode': 'arm_sdk', 'count': 3, 'gain': 0.5,
                     'names': ['a', 'b']}
        d = node.describe_parameter('rate_hz')
        assert d.read_only and d.floating_point_range[0].to_value == 500.0
        assert 'One of: arm_sdk, lowcmd' in node.describe_parameter('mode').description
        assert not node.describe_parameter('gain').read_only
        assert node.describe_parameter('count').integer_range[0].from_value == 0
        assert names(TABLE) == ['rate_hz', 'mode', 'count', 'gain', 'names']
    finally:
        node.destroy_node()


@pytest.mark.parametrize('values, message', [
    ({'rate_hz': 1000.0}, 'parameter rate_hz'),
    ({'rate_hz': 250}, r'rate_hz must be a float \(write 1.0, not 1\)'),
    ({'mode': 'walk'}, "parameter mode='walk': valid are arm_sdk, lowcmd"),
    ({'count': -1}, 'parameter count'),
    ({'rate_hz': float('nan')}, 'parameter rate_hz'),
])
def test_bad_values_are_refused_naming_the_parameter(context, values, message):
    node = _node(context, **values)
    try:
        with pytest.raises(ValueError, match=message):
            declare(node, TABLE)
    finally:
        node.destroy_node()


def test_a_declaration_needs_a_description_and_a_valid_default():
    with pytest.raises(ValueError, match='a description is required'):
        Param('x', 1.0, '')
    with pytest.raises(ValueError, match='not in choices'):
        Param('x', 'c', 'X.', choices=('a', 'b'))
    assert descriptor(Param('flag', True, 'A flag.', low=0, high=1)).integer_range == []
