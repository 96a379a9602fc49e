"""
Runtime benchmark of the nodes: ``python -m dit4dit_bringup.bench_runtime``; writes JSON.

1. Executor timing: the action executor's control timer at ``--rate`` Hz (default 500) for
   ``--seconds``, with a chunk stream and joint states fed in; period error p50/p99/max.
2. Camera frame to chunk: the policy node with a tiny untrained checkpoint; the time from a camera
   frame's stamp to the publication of the chunk computed from it, p50/p99.
"""

import argparse
import json
from pathlib import Path
import tempfile
import threading
import time

import numpy as np

JOINTS = ['left_elbow_joint', 'right_elbow_joint', 'left_shoulder_pitch_joint',
          'right_shoulder_pitch_joint']


def _pct(values_ms):
    v = np.asarray(values_ms)
    return {'p50_ms': float(np.percentile(v, 50)), 'p99_ms': float(np.percentile(v, 99)),
            'max_ms': float(v.max()), 'n': int(v.size)}


def executor_timing(profile, rate, seconds):
    """Return the control period error statistics of the executor node at ``rate`` Hz."""
    from builtin_interfaces.msg import Duration
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import JointState
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from dit4dit_control.nodes.action_executor import ActionExecutorNode

    node = ActionExecutorNode(parameter_overrides=[
        Parameter('profile', value=profile), Parameter('joints', value=JOINTS),
        Parameter('control_rate_hz', value=float(rate)), Parameter('ramp_in_s', value=0.0)])
    ticks = []
    tick = node.tick

    def timed_tick():
        ticks.append(time.perf_counter())
        tick()
    node.tick = timed_tick
    node.timer = None
    for timer in list(node.timers):
        if abs(timer.timer_period_ns - 1e9 / rate) < 1:
            node.destroy_timer(timer)
    node.create_timer(1.0 / rate, timed_tick)
    ex = SingleThreadedExecutor()
    ex.add_node(node)

    def feed():
        js = JointState(name=JOINTS, position=[0.1] * len(JOINTS))
        js.header.stamp = node.get_clock().now().to_msg()
        node._on_joints(js)
        traj = JointTrajectory(joint_names=JOINTS)
        traj.header.stamp = node.get_clock().now().to_msg()
        for k in range(16):
            traj.points.append(JointTrajectoryPoint(
                positions=[0.1 + 0.01 * k] * len(JOINTS),
                time_from_start=Duration(nanosec=int(k * 33_333_333))))
        node._on_chunk(traj)
    feed()
    node.core.enable(node._now())
    end = time.monotonic() + seconds
    last_feed = 0.0
    while time.monotonic() < end:
        ex.spin_once(timeout_sec=0.001)
        if time.monotonic() - last_feed > 0.05:
            feed()
            last_feed = time.monotonic()
    node.destroy_node()
    periods = np.diff(np.array(ticks[10:]))
    return {'rate_hz': rate, 'seconds': seconds,
            'period_error': _pct(np.abs(periods - 1.0 / rate) * 1e3),
            'achieved_rate_hz': float(1.0 / periods.mean())}


def camera_to_chunk(checkpoint, frames):
    """Return camera-stamp-to-chunk-publication latency statistics of the policy node."""
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image, JointState

    from dit4dit_common.image import rgb_to_image_fields
    from dit4dit_common.stamps import to_ns
    from dit4dit_policy.nodes.policy_node import PolicyNode

    node = PolicyNode(parameter_overrides=[
        Parameter('checkpoint', value=str(checkpoint)), Parameter('instruction', value='wave'),
        Parameter('seed', value=0)])
    done = threading.Event()
    latencies = []
    publish = node.chunk_pub.publish

    def on_chunk(msg):
        latencies.append((node.get_clock().now().nanoseconds - to_ns(msg.header.stamp)) * 1e-6)
        publish(msg)
        done.set()
    node.chunk_pub.publish = on_chunk
    image = rgb_to_image_fields(np.random.default_rng(0).integers(
        0, 255, (480, 640, 3), dtype=np.uint8))
    for _ in range(frames):
        js = JointState(name=JOINTS, position=[0.1] * len(JOINTS))
        js.header.stamp = node.get_clock().now().to_msg()
        node._on_joints(js)
        img = Image(**image)
        img.header.stamp = node.get_clock().now().to_msg()
        done.clear()
        node._on_image(0, img)
        done.wait(timeout=5.0)
    node.destroy_node()
    return {'frames': frames, 'image': [480, 640], 'latency': _pct(latencies[3:])}


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--profile', default='', help='robot profile YAML (default: the G1 '
                        'description of dit4dit_g1)')
    parser.add_argument('--rate', type=float, default=500.0)
    parser.add_argument('--seconds', type=float, default=10.0)
    parser.add_argument('--frames', type=int, default=40)
    parser.add_argument('--out', default='')
    args = parser.parse_args(argv)
    from dit4dit_g1.description import description_path
    from dit4dit_policy.testing import make_tiny_checkpoint
    import rclpy
    profile = args.profile or str(description_path())
    rclpy.init()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = make_tiny_checkpoint(Path(tmp) / 'c', JOINTS, cameras=[('head', 480, 640)])
            report = {'executor': executor_timing(profile, args.rate, args.seconds),
                      'policy': camera_to_chunk(ckpt, args.frames)}
    finally:
        rclpy.try_shutdown()
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text + '\n')
    print(text)
    e, p = report['executor'], report['policy']['latency']
    print(f"[bench_runtime] executor at {e['rate_hz']:.0f} Hz: period error p50 "
          f"{e['period_error']['p50_ms']:.3f} ms, p99 {e['period_error']['p99_ms']:.3f} ms; "
          f"camera frame -> chunk p50 {p['p50_ms']:.1f} ms, p99 {p['p99_ms']:.1f} ms")
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
