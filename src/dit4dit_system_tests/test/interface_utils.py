"""
Fill every field of a ROS message with distinctive values, and turn messages into plain data.

Driven by the generated classes' own type information (``SLOT_TYPES``), so a test built on it
covers every field of every nested message without listing them by hand.
"""

import array
import importlib
import string

import numpy as np
from rosidl_parser.definition import (
    AbstractNestedType, AbstractString, Array, BasicType, BoundedSequence, NamespacedType)

INT_RANGES = {
    'int8': (-2**7, 2**7 - 1), 'uint8': (0, 2**8 - 1), 'int16': (-2**15, 2**15 - 1),
    'uint16': (0, 2**16 - 1), 'int32': (-2**31, 2**31 - 1), 'uint32': (0, 2**32 - 1),
    'int64': (-2**63, 2**63 - 1), 'uint64': (0, 2**64 - 1),
}


def message_class(type_name):
    """Return the class for 'pkg/msg/Name', 'pkg/srv/Name' or a rosidl NamespacedType."""
    if isinstance(type_name, NamespacedType):
        namespaces, name = type_name.namespaces, type_name.name
    else:
        *namespaces, name = type_name.split('/')
    return getattr(importlib.import_module('.'.join(namespaces)), name)


def random_value(slot_type, rng, sequence_length=3):
    """Return a random value of a rosidl type that survives a CDR round trip exactly."""
    if isinstance(slot_type, NamespacedType):
        return fill(message_class(slot_type)(), rng, sequence_length)
    if isinstance(slot_type, AbstractString):
        return ''.join(rng.choice(string.ascii_letters) for _ in range(rng.randint(1, 12)))
    if isinstance(slot_type, AbstractNestedType):
        if isinstance(slot_type, Array):
            size = slot_type.size
        elif isinstance(slot_type, BoundedSequence):
            size = min(sequence_length, slot_type.maximum_size)
        else:
            size = sequence_length
        return [random_value(slot_type.value_type, rng, sequence_length) for _ in range(size)]
    assert isinstance(slot_type, BasicType), slot_type
    name = slot_type.typename
    if name == 'boolean':
        return rng.random() < 0.5
    if name in ('float', 'double'):
        return rng.randint(-80000, 80000) / 64.0  # exact in float32
    if name in INT_RANGES:
        return rng.randint(*INT_RANGES[name])
    raise NotImplementedError(f'basic type {name}')


def fill(msg, rng, sequence_length=3):
    """Set every field of ``msg`` (recursively) to random values; return ``msg``."""
    for name, slot_type in zip(msg.get_fields_and_field_types(), msg.SLOT_TYPES):
        setattr(msg, name, random_value(slot_type, rng, sequence_length))
    return msg


def to_plain(value):
    """Return a message as nested dicts and lists of Python scalars (to compare, or as JSON)."""
    if hasattr(value, 'get_fields_and_field_types'):
        fields = value.get_fields_and_field_types()
        return {name: to_plain(getattr(value, name)) for name in fields}
    if isinstance(value, (list, tuple, array.array, np.ndarray)):
        return [to_plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return list(value)
    if isinstance(value, np.generic):
        return value.item()
    return value
