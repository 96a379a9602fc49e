"""
The LowCmd CRC equals the robot's: test vectors, an independent bit-by-bit CRC, and its cost.

The independent implementation below lays the 1000 bytes out by explicit offsets (not the
module's pack format) and runs a bit-at-a-time MSB-first CRC-32/MPEG-2 over the words serialised
big-endian; it is itself checked against the catalogue check value of CRC-32/MPEG-2.
"""

import math
import random
import struct
import time
import types

from dit4dit_g1.crc import (
    crc32_mpeg2_words, lowcmd_crc, lowcmd_words, pack_lowcmd, set_lowcmd_crc)
from hypothesis import given, settings
from hypothesis import strategies as st
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from unitree_hg.msg import LowCmd


def bitwise_mpeg2(data: bytes) -> int:
    """Return CRC-32/MPEG-2 one bit at a time (init 0xFFFFFFFF, poly 0x04C11DB7, no reflection)."""
    crc = 0xFFFFFFFF
    for byte in data:
        for bit in range(7, -1, -1):
            top = ((crc >> 31) & 1) ^ ((byte >> bit) & 1)
            crc = (crc << 1) & 0xFFFFFFFF
            if top:
                crc ^= 0x04C11DB7
    return crc


def c_layout(msg) -> bytes:
    """Return the first 1000 bytes of the aligned LowCmd C struct, written by explicit offsets."""
    buf = bytearray(1000)
    buf[0], buf[1] = msg.mode_pr, msg.mode_machine
    for i, m in enumerate(msg.motor_cmd):
        base = 4 + 28 * i
        buf[base] = m.mode
        for k, value in enumerate((m.q, m.dq, m.tau, m.kp, m.kd)):
            buf[base + 4 + 4 * k:base + 8 + 4 * k] = struct.pack('<f', value)
        buf[base + 24:base + 28] = int(m.reserve).to_bytes(4, 'little')
    for k, value in enumerate(msg.reserve):
        buf[984 + 4 * k:988 + 4 * k] = int(value).to_bytes(4, 'little')
    return bytes(buf)


def independent_crc(msg) -> int:
    raw = c_layout(msg)
    big_endian = b''.join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return bitwise_mpeg2(big_endian)


def vector_two(cls=LowCmd):
    msg = cls()
    msg.mode_pr, msg.mode_machine = 0, 5
    for i in range(29):
        cmd = msg.motor_cmd[i]
        cmd.mode, cmd.q, cmd.kp, cmd.kd = 1, 0.25 * i, 40.0, 1.0
    return msg


def test_the_independent_crc_is_crc32_mpeg2():
    assert bitwise_mpeg2(b'123456789') == 0x0376E6E7   # the catalogue check value


def test_all_zero_lowcmd():
    assert lowcmd_crc(LowCmd()) == 0xFE172F9F
    assert independent_crc(LowCmd()) == 0xFE172F9F


def test_second_reference_vector():
    assert lowcmd_crc(vector_two()) == 0x21C4F79E
    assert independent_crc(vector_two()) == 0x21C4F79E


def test_layout_is_250_words_and_padding_is_zero():
    msg = vector_two()
    raw = pack_lowcmd(msg)
    assert len(raw) == 1000 and raw == c_layout(msg)
    assert len(lowcmd_words(msg)) == 250
    assert raw[2:4] == b'\0\0' and raw[4 + 1:4 + 4] == b'\0\0\0'


def test_crc_field_is_not_covered_and_set_stores_it():
    msg = vector_two()
    msg.crc = 0xDEADBEEF
    assert lowcmd_crc(msg) == 0x21C4F79E
    assert set_lowcmd_crc(msg).crc == 0x21C4F79E


def test_duck_typed_object_gives_the_same_crc():
    ros = vector_two()
    motors = [types.SimpleNamespace(mode=m.mode, q=m.q, dq=m.dq, tau=m.tau, kp=m.kp, kd=m.kd,
                                    reserve=0) for m in ros.motor_cmd]
    duck = types.SimpleNamespace(mode_pr=0, mode_machine=5, motor_cmd=motors, reserve=[0] * 4)
    assert lowcmd_crc(duck) == lowcmd_crc(ros)


def test_words_interface_and_incremental_use():
    words = [random.Random(3).getrandbits(32) for _ in range(17)]
    expected = bitwise_mpeg2(b''.join(w.to_bytes(4, 'big') for w in words))
    assert crc32_mpeg2_words(words) == expected
    assert crc32_mpeg2_words(words[9:], crc32_mpeg2_words(words[:9])) == expected


def test_float_beyond_float32_is_crc_ed_as_on_the_wire():
    msg = vector_two()
    msg.motor_cmd[3].q = 1e39      # rclpy sends it as float32 +inf
    msg.motor_cmd[4].kp = -1e300
    wire = deserialize_message(serialize_message(msg), LowCmd)
    assert math.isinf(wire.motor_cmd[3].q) and wire.motor_cmd[4].kp == -math.inf
    assert lowcmd_crc(msg) == lowcmd_crc(wire) == independent_crc(wire)


def test_wrong_shape_is_refused():
    msg = types.SimpleNamespace(mode_pr=0, mode_machine=0, motor_cmd=[], reserve=[0] * 4)
    with pytest.raises(ValueError):
        lowcmd_crc(msg)


FLOATS = st.floats(width=32, allow_nan=True, allow_infinity=True)
MOTOR = st.tuples(st.integers(0, 255), FLOATS, FLOATS, FLOATS, FLOATS, FLOATS,
                  st.integers(0, 2**32 - 1))


@st.composite
def lowcmds(draw):
    msg = LowCmd()
    msg.mode_pr = draw(st.integers(0, 255))
    msg.mode_machine = draw(st.integers(0, 255))
    for cmd, values in zip(msg.motor_cmd, draw(st.lists(MOTOR, min_size=35, max_size=35))):
        cmd.mode, cmd.q, cmd.dq, cmd.tau, cmd.kp, cmd.kd, cmd.reserve = values
    msg.reserve = draw(st.lists(st.integers(0, 2**32 - 1), min_size=4, max_size=4))
    msg.crc = draw(st.integers(0, 2**32 - 1))
    return msg


@settings(max_examples=60, deadline=None)
@given(lowcmds())
def test_random_lowcmds_match_the_independent_crc(msg):
    assert lowcmd_crc(msg) == independent_crc(msg)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), max_size=300))
def test_random_words_match_the_bitwise_crc(words):
    data = b''.join(w.to_bytes(4, 'big') for w in words)
    assert crc32_mpeg2_words(words) == bitwise_mpeg2(data)


def test_matches_unitree_sdk_crc_helper_when_installed():
    crc_module = pytest.importorskip(
        'unitree_sdk2py.utils.crc', reason='unitree_sdk2py (unitree-sdk2py-dimos) not installed')
    default = pytest.importorskip('unitree_sdk2py.idl.default')
    sdk_crc = crc_module.CRC()
    rng = random.Random(7)
    for _ in range(20):
        sdk = default.unitree_hg_msg_dds__LowCmd_()
        sdk.mode_pr, sdk.mode_machine = rng.randint(0, 1), rng.randint(0, 255)
        for m in sdk.motor_cmd:
            m.mode = rng.randint(0, 1)
            m.q, m.dq, m.tau, m.kp, m.kd = (rng.uniform(-50, 50) for _ in range(5))
        assert lowcmd_crc(sdk) == sdk_crc.Crc(sdk)   # the SDK's LowCmd_ has the same fields


def test_pack_and_crc_cost_per_message_is_well_under_half_a_millisecond():
    msg = vector_two()
    for _ in range(20):
        lowcmd_crc(msg)
    samples = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(100):
            lowcmd_crc(msg)
        samples.append((time.perf_counter() - start) / 100)
    per_message = sorted(samples)[len(samples) // 2]
    print(f'pack + CRC: {per_message * 1e6:.1f} us per LowCmd')
    assert per_message < 0.5e-3
