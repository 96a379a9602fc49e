"""
A stand-in robot for the interop test, written against Unitree's own Python SDK (CycloneDDS).

    python3 unitree_sdk_peer.py SPEC_JSON

SPEC_JSON: {"domain": int, "command_topic": "rt/arm_sdk" | "rt/lowcmd", "q": [29 floats],
"mode_machine": int, "rate_hz": float, "report_hz": float, "duration_s": float}.

Publishes ``rt/lowstate`` (``unitree_hg`` LowState_) with the given joint positions and
mode_machine, subscribes to the command topic (LowCmd_) and prints one JSON line per received
command (at most ``report_hz`` a second): mode_pr, mode_machine, per-motor mode/q/kp/kd, the crc
carried and the crc Unitree's SDK recomputes. Prints ``{"ready": true}`` once its entities exist;
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

LOOPBACK_CONFIG = (
    '<CycloneDDS><Domain Id="any"><General><Interfaces>'
    '<NetworkInterface name="lo" multicast="false"/></Interfaces>'
    '<AllowMulticast>false</AllowMulticast></General>'
    '<Discovery><ParticipantIndex>auto</ParticipantIndex>'
    '<MaxAutoParticipantIndex>40</MaxAutoParticipantIndex>'
    '<Peers><Peer address="127.0.0.1"/></Peers></Discovery>'
    '</Domain></CycloneDDS>')


def main():
    spec = json.loads(sys.argv[1])
    # Any domain CycloneDDS creates on its own reads this; the SDK's is configured below.
    os.environ['CYCLONEDDS_URI'] = LOOPBACK_CONFIG
    from unitree_sdk2py.core import channel
    from unitree_sdk2py.core.channel import (
        ChannelFactoryInitialize, ChannelPublisher, ChannelSubscriber)
    from unitree_sdk2py.idl.default import unitree_hg_msg_dds__LowState_
    from unitree_sdk2py.idl.unitree_hg.msg.dds_ import LowCmd_, LowState_
    from unitree_sdk2py.utils.crc import CRC

    # The SDK builds its CycloneDDS configuration from this template (interface name filled in).
    channel.ChannelConfigHasInterface = LOOPBACK_CONFIG
    ChannelFactoryInitialize(int(spec['domain']), 'lo')
    crc = CRC()
    lock = threading.Lock()
    last_report = [0.0]
    period = 1.0 / float(spec.get('report_hz', 50.0))

    def on_command(msg):
        now = time.monotonic()
        with lock:
            if now - last_report[0] < period:
                return
            last_report[0] = now
        motors = msg.motor_cmd
        report = {
            'mode_pr': msg.mode_pr, 'mode_machine': msg.mode_machine,
            'mode': [m.mode for m in motors], 'q': [m.q for m in motors],
            'dq': [m.dq for m in motors], 'tau': [m.tau for m in motors],
            'kp': [m.kp for m in motors], 'kd': [m.kd for m in motors],
            'crc': msg.crc, 'sdk_crc': crc.Crc(msg)}
        print(json.dumps(report), flush=True)

    sub = ChannelSubscriber(spec['command_topic'], LowCmd_)
    sub.Init(on_command, 10)
    pub = ChannelPublisher('rt/lowstate', LowState_)
    pub.Init()
    state = unitree_hg_msg_dds__LowState_()
    state.mode_machine = int(spec.get('mode_machine', 5))
    state.imu_state.quaternion = [1.0, 0.0, 0.0, 0.0]
    for i, q in enumerate(spec['q']):
        state.motor_state[i].q = float(q)
        state.motor_state[i].dq = 0.01 * i
        state.motor_state[i].tau_est = -0.1 * i
    stop = threading.Event()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: stop.set())
    print(json.dumps({'ready': True}), flush=True)
    dt = 1.0 / float(spec.get('rate_hz', 200.0))
    end = time.monotonic() + float(spec.get('duration_s', 60.0))
    tick = 0
    while not stop.is_set() and time.monotonic() < end:
        tick += 1
        state.tick = tick
        pub.Write(state)
        stop.wait(dt)
    # Closing the SDK's listener-driven reader can block on its callback thread; the process
    # owns nothing that outlives it (no shared memory with CycloneDDS over UDP), so just leave.
    sys.stdout.flush()
    os._exit(0)


if __name__ == '__main__':
    main()
