"""
Closed-loop evaluation through the ROS graph: simulator -> policy_node -> action_executor -> sim.

Runs ``dit4dit_bringup.graph.sim_graph`` in this process (the simulator on its own thread: its
renderer's GL context belongs to one thread; the policy and the executor on a second executor)
over the held-out initial states, watches the episode events and the camera, and writes to
``output``: ``results.json`` (one row per episode and the success rate), ``success.png`` and
``videos/episode_<i>.mp4`` (all, the first, or none). The CLI is ``python -m
dit4dit_train.evaluate_closed_loop``.
"""

import json
from pathlib import Path
import signal
import threading
import time

from dit4dit_bringup.graph import sim_graph, SimArguments
import numpy as np

VIDEO_CHOICES = ('all', 'first', 'none')


def evaluate(args: SimArguments, output, videos: str = 'all', timeout_s: float = 0.0) -> dict:
    """Run the episodes; write and return the results (see the module docstring)."""
    from dit4dit_msgs.msg import EpisodeEvent
    from dit4dit_policy.image_codec import image_to_rgb
    import rclpy
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import Image

    from dit4dit_bringup.run_graph import build_node
    from ..lerobot_format import write_mp4

    if videos not in VIDEO_CHOICES:
        raise ValueError(f'videos {videos!r}: valid are {", ".join(VIDEO_CHOICES)}')
    output = Path(output)
    (output / 'videos').mkdir(parents=True, exist_ok=True)
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    stop = []
    previous = {s: signal.signal(s, lambda *_: stop.append(1))
                for s in (signal.SIGINT, signal.SIGTERM)}
    nodes, start = {}, time.monotonic()
    episodes, frames, current = [], {}, {'index': None}
    sim_executor = main_executor = None
    try:
        for spec in sim_graph(args):
            nodes[spec.name] = build_node(spec)
        monitor = rclpy.create_node('closed_loop_monitor')
        nodes['monitor'] = monitor

        def on_event(msg):
            if msg.event == EpisodeEvent.START:
                current['index'] = msg.episode_index
                frames[msg.episode_index] = []
                episodes.append({'episode': msg.episode_index,
                                 'initial_state': msg.initial_state_index,
                                 'instruction': msg.instruction, 'task': msg.task,
                                 'success': None, 'start': _seconds(msg.header.stamp)})
            elif episodes and episodes[-1]['episode'] == msg.episode_index:
                row = episodes[-1]
                row['success'] = msg.event == EpisodeEvent.SUCCESS
                row['outcome'] = ('start', 'success', 'failure', 'abort')[msg.event]
                row['message'] = msg.message
                row['duration_s'] = round(_seconds(msg.header.stamp) - row.pop('start'), 3)
                current['index'] = None
                print(f'[{len([e for e in episodes if "outcome" in e])}/{args.episodes}] '
                      f'{row["instruction"]!r} (held-out state {row["initial_state"]}): '
                      f'{row["outcome"]} after {row["duration_s"]:.1f} s '
                      f'{row["message"]}'.rstrip(), flush=True)

        def on_image(msg):
            index = current['index']
            keep = videos == 'all' or (videos == 'first' and index == 0)
            if index is not None and keep:
                frames[index].append(image_to_rgb(msg))
        monitor.create_subscription(EpisodeEvent, '/dit4dit/episode_event', on_event, 20)
        monitor.create_subscription(Image, '/camera/image_raw', on_image, qos_profile_sensor_data)

        sim = nodes['sim_bridge']
        fps = int(round(sim.p['camera_fps']))     # videos play at the simulated camera rate
        sim_executor = SingleThreadedExecutor()
        sim_executor.add_node(sim)
        sim_thread = threading.Thread(target=_spin, args=(sim_executor, stop), daemon=True)
        sim_thread.start()
        main_executor = MultiThreadedExecutor(num_threads=3)
        for name, node in nodes.items():
            if name != 'sim_bridge':
                main_executor.add_node(node)
        while not stop and not sim.finished:
            main_executor.spin_once(timeout_sec=0.05)
            if timeout_s and time.monotonic() - start > timeout_s:
                print('closed loop: timed out', flush=True)
                break
        # The simulator is done; give the last end event time to arrive.
        grace = time.monotonic() + 2.0
        while time.monotonic() < grace and not all('outcome' in e for e in episodes):
            main_executor.spin_once(timeout_sec=0.05)
        stop.append(1)
        sim_thread.join(timeout=10)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for executor in (sim_executor, main_executor):
            if executor is not None:
                executor.shutdown()
        for node in nodes.values():
            node.destroy_node()
        rclpy.try_shutdown()
    finished = [e for e in episodes if 'outcome' in e and e['outcome'] != 'abort']
    for row in finished:
        images = frames.get(row['episode']) or []
        if images:
            path = output / 'videos' / f'episode_{row["episode"]:03d}.mp4'
            row['video'] = str(write_mp4(path, np.stack(images), fps))
    wins = sum(bool(e['success']) for e in finished)
    result = {'checkpoint': args.checkpoint, 'task': args.task, 'strategy': args.strategy,
              'episodes': len(finished), 'successes': wins,
              'success_rate': wins / len(finished) if finished else 0.0,
              'wall_s': round(time.monotonic() - start, 1), 'rows': finished}
    (output / 'results.json').write_text(json.dumps(result, indent=2))
    _plot(finished, output / 'success.png')
    return result


def _spin(executor, stop):
    while not stop:
        executor.spin_once(timeout_sec=0.05)


def _seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def _plot(rows, path):
    """Write one bar per episode (its duration), green for success, red for failure."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4, 0.4 * len(rows) + 2), 3))
    for i, row in enumerate(rows):
        ax.bar(i, row.get('duration_s', 0.0), color='tab:green' if row['success'] else 'tab:red')
    wins = sum(bool(r['success']) for r in rows)
    ax.set_xlabel('held-out episode')
    ax.set_ylabel('duration [s]')
    ax.set_title(f'{wins}/{len(rows)} succeeded (green)')
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
