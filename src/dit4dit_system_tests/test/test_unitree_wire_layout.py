"""
The unitree_hg / unitree_api interfaces match Unitree's wire layout field for field.

DDS decodes CDR positionally and matches types by name, so a field out of order or an array of the
wrong length silently corrupts every command. The expected tables below are written from Unitree's
published IDL (unitree_sdk2 ``idl/hg``, unitree_ros2 after the 2025-08 Dex3 change); the
natural-alignment C struct sizes (MotorCmd 28, LowCmd 1004, LowState 2092 bytes) are the ones the
robot's CRC is computed over. They hold whichever unitree_hg is installed (ours or Unitree's).
"""

import importlib

import pytest

EXPECTED = {
    'unitree_hg/MotorCmd': [
        ('mode', 'uint8'), ('q', 'float'), ('dq', 'float'), ('tau', 'float'), ('kp', 'float'),
        ('kd', 'float'), ('reserve', 'uint32')],
    'unitree_hg/MotorState': [
        ('mode', 'uint8'), ('q', 'float'), ('dq', 'float'), ('ddq', 'float'),
        ('tau_est', 'float'), ('temperature', 'int16[2]'), ('vol', 'float'),
        ('sensor', 'uint32[2]'), ('motorstate', 'uint32'), ('reserve', 'uint32[4]')],
    'unitree_hg/IMUState': [
        ('quaternion', 'float[4]'), ('gyroscope', 'float[3]'), ('accelerometer', 'float[3]'),
        ('rpy', 'float[3]'), ('temperature', 'int16')],
    'unitree_hg/LowCmd': [
        ('mode_pr', 'uint8'), ('mode_machine', 'uint8'),
        ('motor_cmd', 'unitree_hg/MotorCmd[35]'), ('reserve', 'uint32[4]'), ('crc', 'uint32')],
    'unitree_hg/LowState': [
        ('version', 'uint32[2]'), ('mode_pr', 'uint8'), ('mode_machine', 'uint8'),
        ('tick', 'uint32'), ('imu_state', 'unitree_hg/IMUState'),
        ('motor_state', 'unitree_hg/MotorState[35]'), ('wireless_remote', 'uint8[40]'),
        ('reserve', 'uint32[4]'), ('crc', 'uint32')],
    'unitree_hg/PressSensorState': [
        ('pressure', 'float[12]'), ('temperature', 'float[12]'), ('lost', 'uint32'),
        ('reserve', 'uint32')],
    'unitree_hg/HandCmd': [
        ('motor_cmd', 'sequence<unitree_hg/MotorCmd>'), ('reserve', 'uint32[4]')],
    'unitree_hg/HandState': [
        ('motor_state', 'sequence<unitree_hg/MotorState>'),
        ('press_sensor_state', 'sequence<unitree_hg/PressSensorState>'),
        ('imu_state', 'unitree_hg/IMUState'), ('power_v', 'float'), ('power_a', 'float'),
        ('system_v', 'float'), ('device_v', 'float'), ('error', 'uint32[2]'),
        ('reserve', 'uint32[2]')],
    'unitree_hg/BmsCmd': [('cmd', 'uint8'), ('reserve', 'uint8[40]')],
    'unitree_hg/BmsState': [
        ('version_high', 'uint8'), ('version_low', 'uint8'), ('fn', 'uint8'),
        ('cell_vol', 'uint16[40]'), ('bmsvoltage', 'uint32[3]'), ('current', 'int32'),
        ('soc', 'uint8'), ('soh', 'uint8'), ('temperature', 'int16[12]'), ('cycle', 'uint16'),
        ('manufacturer_date', 'uint16'), ('bmsstate', 'uint32[5]'), ('reserve', 'uint32[3]')],
    'unitree_hg/MainBoardState': [
        ('fan_state', 'uint16[6]'), ('temperature', 'int16[6]'), ('value', 'float[6]'),
        ('state', 'uint32[6]')],
    'unitree_api/RequestIdentity': [('id', 'int64'), ('api_id', 'int64')],
    'unitree_api/RequestLease': [('id', 'int64')],
    'unitree_api/RequestPolicy': [('priority', 'int32'), ('noreply', 'boolean')],
    'unitree_api/RequestHeader': [
        ('identity', 'unitree_api/RequestIdentity'), ('lease', 'unitree_api/RequestLease'),
        ('policy', 'unitree_api/RequestPolicy')],
    'unitree_api/Request': [
        ('header', 'unitree_api/RequestHeader'), ('parameter', 'string'),
        ('binary', 'sequence<uint8>')],
    'unitree_api/ResponseStatus': [('code', 'int32')],
    'unitree_api/ResponseHeader': [
        ('identity', 'unitree_api/RequestIdentity'), ('status', 'unitree_api/ResponseStatus')],
    'unitree_api/Response': [
        ('header', 'unitree_api/ResponseHeader'), ('data', 'string'),
        ('binary', 'sequence<int8>')],
}
SCALAR_SIZES = {'uint8': 1, 'int16': 2, 'uint16': 2, 'float': 4, 'int32': 4, 'uint32': 4}


def _cls(name):
    package, msg = name.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), msg)


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_field_order_types_and_lengths(name):
    assert list(_cls(name).get_fields_and_field_types().items()) == EXPECTED[name]


def _c_layout(type_name):
    """Return (size, alignment) of a fixed-size type laid out as a naturally aligned C struct."""
    base, _, count = type_name.partition('[')
    n = int(count[:-1]) if count else 1
    if base in SCALAR_SIZES:
        return SCALAR_SIZES[base] * n, SCALAR_SIZES[base]
    offset, align = 0, 1
    for _, field_type in _cls(base).get_fields_and_field_types().items():
        size, field_align = _c_layout(field_type)
        offset += -offset % field_align
        offset += size
        align = max(align, field_align)
    offset += -offset % align
    return offset * n, align


@pytest.mark.parametrize('name, size', [
    ('unitree_hg/MotorCmd', 28), ('unitree_hg/LowCmd', 1004), ('unitree_hg/LowState', 2092)])
def test_c_struct_sizes_the_crc_is_computed_over(name, size):
    assert _c_layout(name)[0] == size
