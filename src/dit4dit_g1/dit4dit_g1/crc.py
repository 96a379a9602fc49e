"""
The CRC that a Unitree G1 checks on ``unitree_hg/LowCmd`` (``rt/lowcmd``), ROS-free.

The robot lays the command out as a naturally aligned little-endian C struct (1004 bytes, 251
32-bit words: mode_pr, mode_machine, 2 pad bytes, 35 x MotorCmd of 28 bytes, reserve[4], crc) and
runs a CRC over the first 250 words: initial value 0xFFFFFFFF, polynomial 0x04C11DB7, each word
MSB first, no reflection and no final XOR. That is CRC-32/MPEG-2 over the words serialised
big-endian. Padding bytes are zero.

The CRC here is table-driven one word at a time (four 256-entry tables, "slicing by 4"), so packing
a message and computing its CRC costs a few tens of microseconds in CPython: a 500 Hz loop affords
it. Works on a ``unitree_hg.msg.LowCmd`` or on any object with the same fields (Unitree's own
``LowCmd_`` included).
"""

import math
import struct
import typing

POLYNOMIAL = 0x04C11DB7
INITIAL = 0xFFFFFFFF
NUM_MOTORS = 35
NUM_WORDS = 250  # 1004-byte struct minus the crc word
# The C layout without the trailing crc word: 1000 bytes.
LOWCMD_STRUCT = struct.Struct('<2B2x' + 'B3x5fI' * NUM_MOTORS + '4I')
_WORDS = struct.Struct(f'<{NUM_WORDS}I')
_FLOAT32_MAX = 3.4028234663852886e38


def _byte_table() -> typing.List[int]:
    """Return the MSB-first table: entry b is the register after shifting byte b through."""
    table = []
    for byte in range(256):
        reg = byte << 24
        for _ in range(8):
            reg = ((reg << 1) ^ POLYNOMIAL) if reg & 0x80000000 else (reg << 1)
            reg &= 0xFFFFFFFF
        table.append(reg)
    return table


def _slice_tables():
    """Return four tables T0..T3: Tk[b] is the effect of byte b followed by k zero bytes."""
    t0 = _byte_table()
    tables = [t0]
    for _ in range(3):
        prev = tables[-1]
        tables.append([((v << 8) & 0xFFFFFFFF) ^ t0[v >> 24] for v in prev])
    return tables


_T0, _T1, _T2, _T3 = _slice_tables()


def crc32_mpeg2_words(words: typing.Iterable[int], crc: int = INITIAL) -> int:
    """
    Return the Unitree CRC (CRC-32/MPEG-2, words MSB first) of a sequence of uint32 words.

    ``crc`` is the register to start from (0xFFFFFFFF for a fresh CRC), so a long message can be
    fed in parts.
    """
    t0, t1, t2, t3 = _T0, _T1, _T2, _T3
    for word in words:
        c = crc ^ word
        crc = t3[c >> 24] ^ t2[(c >> 16) & 0xFF] ^ t1[(c >> 8) & 0xFF] ^ t0[c & 0xFF]
    return crc


def _values(msg) -> list:
    """Return the field values of a LowCmd-like object in C-struct order (crc excluded)."""
    values = [msg.mode_pr, msg.mode_machine]
    for m in msg.motor_cmd:
        values += (m.mode, m.q, m.dq, m.tau, m.kp, m.kd, m.reserve)
    values.extend(msg.reserve)
    return values


def _as_float32(value) -> float:
    """Return a Python float as C casts it to float32 (out-of-range -> +-inf, NaN kept)."""
    value = float(value)
    if math.isfinite(value) and abs(value) > _FLOAT32_MAX:
        return math.copysign(math.inf, value)
    return value


def pack_lowcmd(msg) -> bytes:
    """Return the 1000 bytes of a LowCmd's C layout that the CRC covers (padding zero)."""
    if len(msg.motor_cmd) != NUM_MOTORS or len(msg.reserve) != 4:
        raise ValueError(f'a LowCmd has {NUM_MOTORS} motor_cmd and reserve[4]; got '
                         f'{len(msg.motor_cmd)} and {len(msg.reserve)}')
    values = _values(msg)
    try:
        return LOWCMD_STRUCT.pack(*values)
    except OverflowError:  # a float beyond float32: the wire carries +-inf, as a C cast does
        for k in range(NUM_MOTORS):
            base = 2 + 7 * k
            for j in range(base + 1, base + 6):
                values[j] = _as_float32(values[j])
        return LOWCMD_STRUCT.pack(*values)


def lowcmd_words(msg) -> typing.Tuple[int, ...]:
    """Return the 250 little-endian uint32 words of a LowCmd that the CRC covers."""
    return _WORDS.unpack(pack_lowcmd(msg))


def lowcmd_crc(msg) -> int:
    """Return the CRC a Unitree robot expects in ``msg.crc`` for a LowCmd-like object."""
    return crc32_mpeg2_words(_WORDS.unpack(pack_lowcmd(msg)))


def set_lowcmd_crc(msg):
    """Compute the CRC of ``msg``, store it in ``msg.crc`` and return ``msg``."""
    msg.crc = lowcmd_crc(msg)
    return msg
