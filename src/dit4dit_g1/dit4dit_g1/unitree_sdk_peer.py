"""
Unitree's own Python SDK (CycloneDDS) as the peer of the suite: a stand-in robot or commander.

    python -m dit4dit_g1.unitree_sdk_peer SPEC_JSON

Written against ``unitree_sdk2py`` (no rclpy; of the suite only the slot constants): what a
Unitree user's program does. Roles:

* ``"role": "robot"`` (default): publishes ``rt/lowstate`` (``unitree_hg`` LowState_) with the
  given joint positions ``q`` and ``mode_machine`` at ``rate_hz``, subscribes to
  ``command_topic`` (``rt/arm_sdk`` or ``rt/lowcmd``) and prints one JSON line per received
  command (at most ``report_hz`` a second): mode_pr, mode_machine, per-motor mode/q/kp/kd, the
  crc carried and the crc the SDK recomputes. Plays the robot for g1_bridge.
* ``"role": "commander"``: subscribes to ``rt/lowstate`` and, once one arrived, publishes a LowCmd
  on ``command_topic`` at ``rate_hz``, as Unitree's arm_sdk examples do: ``targets`` (motor slot
  -> q) with ``kp``/``kd``, every other arm_sdk motor (12-28) held where it was measured, the
  weight ``motor_cmd[29].q`` = ``weight`` on ``rt/arm_sdk``, ``mode_machine`` copied from the
  LowState, the CRC from ``unitree_sdk2py.utils.crc.CRC``. Prints one JSON line per received
  LowState (at most ``report_hz``): tick, mode_machine, q of the 29 body motors, the crc carried
  and the crc the SDK recomputes. Drives the G1 twin.

Common keys: ``domain``, ``duration_s``. Prints ``{"ready": true}`` once its entities exist;
stops on SIGINT/SIGTERM or after ``duration_s``.

DDS stays on loopback: CycloneDDS gets an ``lo``-only configuration without multicast, with
127.0.0.1 as its unicast discovery peer (Fast DDS with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
also discovers over unicast on 127.0.0.1, on the same well-known ports).
"""

import json
import os
import signal
import sys
import threading
import time

from dit4dit_g1.lowcmd import ARM_SDK_MOTORS, ARM_SDK_WEIGHT_INDEX

LOOPBACK_CONFIG = (
    '<CycloneDDS><Domain Id="any"><General><Interfaces>'
    '<NetworkInterface name="lo" multicast="false"/></Interfaces>'
    '<AllowMulticast>false</AllowMulticast></General>'
    '<Discovery><ParticipantIndex>auto</ParticipantIndex>'
    '<MaxAutoParticipantIndex>40</MaxAutoParticipantIndex>'
    '<Peers><Peer address="127.0.0.1"/></Peers></Discovery>'
    '</Domain></CycloneDDS>')
ROLES = ('robot', 'commander')


class Throttle:
    """True at most ``hz`` times a second (thread-safe: SDK callbacks run on DDS threads)."""

    def __init__(self, hz: float):
        """Allow the first call."""
        self.period, self.last, self.lock = 1.0 / hz, 0.0, threading.Lock()

    def __call__(self) -> bool:
        """Return True if a report is due now."""
        now = time.monotonic()
        with self.lock:
            if now - self.last < self.period:
                return False
            self.last = now
            return True


def robot(spec, sdk, stop):
    """Publish LowState, report every command received (the 'robot' role)."""
    crc, due = sdk['CRC'](), Throttle(float(spec.get('report_hz', 50.0)))

    def on_command(msg):
        if not due():
            return
        motors = msg.motor_cmd
        print(json.dumps({
            'mode_pr': msg.mode_pr, 'mode_machine': msg.mode_machine,
            'mode': [m.mode for m in motors], 'q': [m.q for m in motors],
            'dq': [m.dq for m in motors], 'tau': [m.tau for m in motors],
            'kp': [m.kp for m in motors], 'kd': [m.kd for m in motors],
            'crc': msg.crc, 'sdk_crc': crc.Crc(msg)}), flush=True)

    sub = sdk['ChannelSubscriber'](spec['command_topic'], sdk['LowCmd_'])
    sub.Init(on_command, 10)
    pub = sdk['ChannelPublisher']('rt/lowstate', sdk['LowState_'])
    pub.Init()
    state = sdk['default_lowstate']()
    state.mode_machine = int(spec.get('mode_machine', 5))
    state.imu_state.quaternion = [1.0, 0.0, 0.0, 0.0]
    for i, q in enumerate(spec['q']):
        state.motor_state[i].q = float(q)
        state.motor_state[i].dq = 0.01 * i
        state.motor_state[i].tau_est = -0.1 * i
    print(json.dumps({'ready': True}), flush=True)
    dt = 1.0 / float(spec.get('rate_hz', 200.0))
    end = time.monotonic() + float(spec.get('duration_s', 60.0))
    tick = 0
    while not stop.is_set() and time.monotonic() < end:
        tick += 1
        state.tick = tick
        pub.Write(state)
        stop.wait(dt)


def commander(spec, sdk, stop):
    """Read LowState, command ``targets`` once it arrives (the 'commander' role)."""
    crc, due = sdk['CRC'](), Throttle(float(spec.get('report_hz', 50.0)))
    latest = {}

    def on_state(msg):
        latest['state'] = msg
        if not due():
            return
        print(json.dumps({
            'tick': msg.tick, 'mode_machine': msg.mode_machine,
            'q': [m.q for m in msg.motor_state[:29]], 'crc': msg.crc,
            'sdk_crc': crc.Crc(msg)}), flush=True)

    sub = sdk['ChannelSubscriber']('rt/lowstate', sdk['LowState_'])
    sub.Init(on_state, 10)
    topic = spec['command_topic']
    pub = sdk['ChannelPublisher'](topic, sdk['LowCmd_'])
    pub.Init()
    targets = {int(k): float(v) for k, v in spec['targets'].items()}
    kp, kd = float(spec.get('kp', 60.0)), float(spec.get('kd', 1.5))
    cmd = sdk['default_lowcmd']()
    print(json.dumps({'ready': True}), flush=True)
    dt = 1.0 / float(spec.get('rate_hz', 250.0))
    end = time.monotonic() + float(spec.get('duration_s', 60.0))
    held = None
    while not stop.is_set() and time.monotonic() < end:
        state = latest.get('state')
        if state is not None:
            if held is None:        # hold every other motor where it was first measured
                held = [m.q for m in state.motor_state[:29]]
            for slot in ARM_SDK_MOTORS:
                m = cmd.motor_cmd[slot]
                m.mode, m.q, m.dq, m.tau = 1, targets.get(slot, held[slot]), 0.0, 0.0
                m.kp, m.kd = kp, kd
            if topic == 'rt/arm_sdk':
                cmd.motor_cmd[ARM_SDK_WEIGHT_INDEX].q = float(spec.get('weight', 1.0))
            cmd.mode_pr, cmd.mode_machine = 0, state.mode_machine
            cmd.crc = crc.Crc(cmd)
            pub.Write(cmd)
        stop.wait(dt)


def main():
    """Run the role of the SPEC_JSON argument until stopped."""
    spec = json.loads(sys.argv[1])
    role = spec.get('role', 'robot')
    if role not in ROLES:
        print(f'role {role!r}: valid are {", ".join(ROLES)}', file=sys.stderr)
        return 2
    # Any domain CycloneDDS creates on its own reads this; the SDK's is configured below.
    os.environ['CYCLONEDDS_URI'] = LOOPBACK_CONFIG
    from unitree_sdk2py.core import channel
    from unitree_sdk2py.core.channel import (
        ChannelFactoryInitialize, ChannelPublisher, ChannelSubscriber)
    from unitree_sdk2py.idl.default import (
        unitree_hg_msg_dds__LowCmd_, unitree_hg_msg_dds__LowState_)
    from unitree_sdk2py.idl.unitree_hg.msg.dds_ import LowCmd_, LowState_
    from unitree_sdk2py.utils.crc import CRC

    # The SDK builds its CycloneDDS configuration from this template (interface name filled in).
    channel.ChannelConfigHasInterface = LOOPBACK_CONFIG
    ChannelFactoryInitialize(int(spec['domain']), 'lo')
    sdk = {'CRC': CRC, 'ChannelPublisher': ChannelPublisher,
           'ChannelSubscriber': ChannelSubscriber, 'LowCmd_': LowCmd_, 'LowState_': LowState_,
           'default_lowcmd': unitree_hg_msg_dds__LowCmd_,
           'default_lowstate': unitree_hg_msg_dds__LowState_}
    stop = threading.Event()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: stop.set())
    (robot if role == 'robot' else commander)(spec, sdk, stop)
    # Closing the SDK's listener-driven reader can block on its callback thread; the process
    # owns nothing that outlives it (no shared memory with CycloneDDS over UDP), so just leave.
    sys.stdout.flush()
    os._exit(0)


if __name__ == '__main__':
    sys.exit(main())
