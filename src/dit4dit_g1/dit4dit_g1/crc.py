"""
The CRC that a Unitree G1 checks on ``unitree_hg/LowCmd`` (``rt/lowcmd``), ROS-free.

(``lowstate_crc``: the same CRC over LowState's 2092-byte layout, which the robot sets on its
state; checking it is optional for a consumer, setting it is what a robot or a twin does.)

The robot lays the command out as a naturally aligned little-endian C struct (1004 bytes, 251
32-bit words: mode_pr, mode_machine, 2 pad bytes, 35 x MotorCmd of 28 bytes, reserve[4], crc) and
runs a CRC over the first 250 words: initial value 0xFFFFFFFF, polynomial 0x04C11DB7, each word
MSB first, no reflection and no final XOR. That is CRC-32/MPEG-2 over the words serialised
big-endian. Padding bytes are zero.

Two implementations: ``crc32_mpeg2_words`` is table-driven one word at a time (four 256-entry
tables, "slicing by 4"), for any word stream; the fixed-length messages use ``FixedLengthCrc``: a
CRC with a fixed initial value and no final XOR is affine in the message bits, so the CRC of an
n-byte message is the XOR of one precomputed table entry per byte (a numpy gather and reduce,
about 20 us for LowState's 2088 bytes instead of 200 us word by word): both a 500 Hz twin and a
250 Hz bridge afford it. Works on a ``unitree_hg.msg.LowCmd`` / ``LowState`` or on any object with
the same fields (Unitree's own ``LowCmd_`` included).
"""

import math
import struct
import typing

import numpy as np

POLYNOMIAL = 0x04C11DB7
INITIAL = 0xFFFFFFFF
NUM_MOTORS = 35
NUM_WORDS = 250  # 1004-byte struct minus the crc word
# The C layout without the trailing crc word: 1000 bytes.
LOWCMD_STRUCT = struct.Struct('<2B2x' + 'B3x5fI' * NUM_MOTORS + '4I')
_WORDS = struct.Struct(f'<{NUM_WORDS}I')
# LowState (2092 bytes with its crc): version[2], mode_pr, mode_machine, tick, IMUState (13 floats,
# int16 temperature), 35 MotorState (mode, q, dq, ddq, tau_est, int16 temperature[2], vol,
# sensor[2], motorstate, reserve[4]), wireless_remote[40], reserve[4]; the crc covers the rest.
LOWSTATE_STRUCT = struct.Struct('<2I2B2xI' + '13fh2x' + 'B3x4f2hf7I' * NUM_MOTORS + '40B4I')
LOWSTATE_WORDS = LOWSTATE_STRUCT.size // 4
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


class FixedLengthCrc:
    """
    The Unitree CRC of messages of ``num_words`` words, as one table lookup per byte.

    ``table[j][b]`` is the register contribution of byte value ``b`` at byte position ``j`` of
    the big-endian word stream (the register starting from 0), ``zero_crc`` the CRC of an all-zero
    message (the initial value carried through); the CRC is their XOR.
    """

    def __init__(self, num_words: int):
        """Precompute the tables (a few milliseconds, once per message type)."""
        n = 4 * num_words
        t0 = np.array(_T0, dtype=np.uint64)
        table = np.empty((n, 256), dtype=np.uint64)
        reg = t0.copy()                                  # the last byte: one table step
        for j in range(n - 1, -1, -1):
            table[j] = reg
            reg = ((reg << np.uint64(8)) & np.uint64(0xFFFFFFFF)) ^ t0[reg >> np.uint64(24)]
        self.table = table.astype(np.uint32)
        self.rows = np.arange(n)
        self.num_words = num_words
        self.zero_crc = crc32_mpeg2_words([0] * num_words)

    def __call__(self, little_endian: bytes) -> int:
        """Return the CRC of the words packed little-endian in ``little_endian``."""
        words = np.frombuffer(little_endian, dtype='<u4')
        stream = words.astype('>u4').view(np.uint8)       # each word MSB first
        return int(np.bitwise_xor.reduce(self.table[self.rows, stream])) ^ self.zero_crc


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


_LOWCMD_CRC = FixedLengthCrc(NUM_WORDS)


def lowcmd_crc(msg) -> int:
    """Return the CRC a Unitree robot expects in ``msg.crc`` for a LowCmd-like object."""
    return _LOWCMD_CRC(pack_lowcmd(msg))


def pack_lowstate(msg) -> bytes:
    """Return the 2088 bytes of a LowState's C layout that its CRC covers (padding zero)."""
    if len(msg.motor_state) != NUM_MOTORS:
        raise ValueError(f'a LowState has {NUM_MOTORS} motor_state, got {len(msg.motor_state)}')
    imu = msg.imu_state
    values = [*msg.version, msg.mode_pr, msg.mode_machine, msg.tick, *imu.quaternion,
              *imu.gyroscope, *imu.accelerometer, *imu.rpy, imu.temperature]
    for m in msg.motor_state:
        values += (m.mode, m.q, m.dq, m.ddq, m.tau_est, *m.temperature, m.vol, *m.sensor,
                   m.motorstate, *m.reserve)
    values += [*msg.wireless_remote, *msg.reserve]
    try:
        return LOWSTATE_STRUCT.pack(*values)
    except OverflowError:   # a float beyond float32: as a C cast, +-inf on the wire
        return LOWSTATE_STRUCT.pack(*(_as_float32(v) if isinstance(v, float) else v
                                      for v in values))


_LOWSTATE_CRC = FixedLengthCrc(LOWSTATE_WORDS)
# The same layout as a numpy record, for a producer that keeps its state in arrays (a twin): fill
# it, take ``lowstate_record_crc``; no per-field Python attribute access.
MOTOR_STATE_DTYPE = np.dtype([
    ('mode', 'u1'), ('pad', 'u1', 3), ('q', '<f4'), ('dq', '<f4'), ('ddq', '<f4'),
    ('tau_est', '<f4'), ('temperature', '<i2', 2), ('vol', '<f4'), ('sensor', '<u4', 2),
    ('motorstate', '<u4'), ('reserve', '<u4', 4)])
LOWSTATE_DTYPE = np.dtype([
    ('version', '<u4', 2), ('mode_pr', 'u1'), ('mode_machine', 'u1'), ('pad', 'u1', 2),
    ('tick', '<u4'), ('quaternion', '<f4', 4), ('gyroscope', '<f4', 3),
    ('accelerometer', '<f4', 3), ('rpy', '<f4', 3), ('imu_temperature', '<i2'),
    ('pad2', 'u1', 2), ('motor_state', MOTOR_STATE_DTYPE, NUM_MOTORS),
    ('wireless_remote', 'u1', 40), ('reserve', '<u4', 4)])
assert LOWSTATE_DTYPE.itemsize == LOWSTATE_STRUCT.size


def lowstate_crc(msg) -> int:
    """Return the CRC of a LowState-like object (what the robot puts in ``msg.crc``)."""
    return _LOWSTATE_CRC(pack_lowstate(msg))


def lowstate_record_crc(record) -> int:
    """Return the CRC of a LowState kept as a ``LOWSTATE_DTYPE`` record (padding zero)."""
    return _LOWSTATE_CRC(record.tobytes())


def set_lowcmd_crc(msg):
    """Compute the CRC of ``msg``, store it in ``msg.crc`` and return ``msg``."""
    msg.crc = lowcmd_crc(msg)
    return msg
