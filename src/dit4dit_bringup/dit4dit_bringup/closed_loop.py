"""
Closed-loop evaluation through the ROS graph: simulator -> policy_node -> action_executor -> sim.

Runs ``dit4dit_bringup.graph.sim_graph`` in this process (the simulator on its own thread: its
renderer's GL context belongs to one thread; the policy and the executor on a second executor)
over the held-out initial states, watches the episode events and the camera (registry topics),
and writes to ``output``: ``results.json`` (one row per episode and the success rate),
``success.png`` and ``videos/episode_<i>.mp4`` (all, the first, or none). SIGINT/SIGTERM stop it
cleanly with the episodes so far. The CLI is ``python -m dit4dit_bringup.evaluate_closed_loop``.
"""

import json
from pathlib import Path
import threading
import time
import typing

import numpy as np

from .graph import sim_graph, SIM_TASKS, SimArguments, STRATEGIES

VIDEO_CHOICES = ('all', 'first', 'none')
END_GRACE_S = 2.0           # after the simulator is done, for the last end event to arrive
ANSWER_GRACE_S = 0.5        # an ended episode waits this long for answers still on their way


def add_episode_arguments(parser, output_help: str = 'directory for results and videos'):
    """Add the arguments every held-out evaluation command takes to an argparse ``parser``."""
    parser.add_argument('--checkpoint', required=True, help='checkpoint directory')
    parser.add_argument('--output', required=True, help=output_help)
    parser.add_argument('--episodes', type=int, default=20, help='held-out episodes to run')
    parser.add_argument('--first-index', type=int, default=0, help='first held-out state')
    parser.add_argument('--task', default='reach', choices=SIM_TASKS, help='g1_tabletop task')
    parser.add_argument('--strategy', default='crossfade', choices=STRATEGIES,
                        help='chunk transitions of the executor')
    parser.add_argument('--videos', default='all', choices=VIDEO_CHOICES, help='episodes to film')


class EpisodeMonitor:
    """
    Collect episode rows and camera frames from the episode events and the camera topic.

    A row also counts the policy's chunks (``chunks``) and the executor's commands
    (``commands``) stamped during its episode, for the record of how the policy was run. Answers
    travel on other topics than the events, so an ended row waits ``ANSWER_GRACE_S`` for its
    last ones before ``settle`` counts, prints and hands it to ``on_finished``. Where the
    simulator keeps its own record (``source_counts(episode_index)``, a lockstep ``sim_bridge``:
    ``steps``, ``commands``, ``lockstep_timeouts``), that replaces what listening counted.
    """

    def __init__(self, episodes: int, videos: str):
        """Keep frames of all episodes, the first, or none."""
        self.episodes, self.videos = episodes, videos
        self.rows, self.frames, self.current = [], {}, None
        self.on_finished = None       # called with each row once it is settled
        self.source_counts = None     # episode index -> counts kept by the simulator, or None
        self.stamps = {'chunks': [], 'commands': []}   # [s], of episodes not yet settled
        self._lock = threading.Lock()

    def on_chunk(self, msg):
        """Note an action chunk's observation stamp."""
        self._note('chunks', msg)

    def on_command(self, msg):
        """Note a joint command's stamp."""
        self._note('commands', msg)

    def _note(self, key, msg):
        from dit4dit_common.stamps import to_seconds

        with self._lock:           # by stamp, whenever it comes: topics do not keep order
            self.stamps[key].append(to_seconds(msg.header.stamp))

    def on_event(self, msg):
        """Start a row, or end it (``settle`` finishes it)."""
        from dit4dit_common.stamps import to_seconds
        from dit4dit_msgs.msg import EpisodeEvent

        with self._lock:
            if msg.event == EpisodeEvent.START:
                self.current = msg.episode_index
                self.frames[msg.episode_index] = []
                self.rows.append({'episode': msg.episode_index,
                                  'initial_state': msg.initial_state_index,
                                  'instruction': msg.instruction, 'task': msg.task,
                                  'success': None, '_start': to_seconds(msg.header.stamp)})
            elif self.rows and self.rows[-1]['episode'] == msg.episode_index:
                row = self.rows[-1]
                row['success'] = msg.event == EpisodeEvent.SUCCESS
                row['outcome'] = ('start', 'success', 'failure', 'abort')[msg.event]
                row['message'] = msg.message
                row['_end'] = to_seconds(msg.header.stamp)
                row['duration_s'] = round(row['_end'] - row['_start'], 3)
                row['_ended'] = time.monotonic()
                self.current = None

    def settle(self, force: bool = False):
        """Finish the rows that ended at least ``ANSWER_GRACE_S`` ago (all with ``force``)."""
        now = time.monotonic()
        with self._lock:
            ready = [r for r in self.rows if '_ended' in r and
                     (force or now - r['_ended'] >= ANSWER_GRACE_S)]
            ends = []
            for row in ready:
                start, end = row.pop('_start'), row.pop('_end')
                del row['_ended']
                ends.append(end)
                for key, times in self.stamps.items():     # what answered its states
                    row[key] = sum(1 for t in times if start - 1e-9 <= t < end - 1e-9)
                if self.source_counts is not None:
                    row.update(self.source_counts(row['episode']) or {})
            if ready:               # forget what no row waiting or running can still count
                waiting = [r['_start'] for r in self.rows if '_start' in r]
                keep = min(waiting) if waiting else max(ends)
                self.stamps = {k: [t for t in v if t >= keep - 1e-9]
                               for k, v in self.stamps.items()}
        for row in ready:
            print(f'[{len(self.finished(True))}/{self.episodes}] {row["instruction"]!r} '
                  f'(held-out state {row["initial_state"]}): {row["outcome"]} after '
                  f'{row["duration_s"]:.1f} s {row["message"]}'.rstrip(), flush=True)
            if self.on_finished is not None:
                self.on_finished(row)

    def on_image(self, msg):
        """Keep the frame if its episode is filmed."""
        from dit4dit_common.image import image_to_rgb

        index = self.current
        keep = self.videos == 'all' or (self.videos == 'first' and index == 0)
        if index is not None and keep:
            self.frames[index].append(image_to_rgb(msg))

    def finished(self, aborted=False):
        """Return the settled rows (with aborted ones if asked)."""
        return [r for r in self.rows if 'outcome' in r and '_ended' not in r and
                (aborted or r['outcome'] != 'abort')]


def evaluate(args: SimArguments, output, videos: str = 'all', timeout_s: float = 0.0) -> dict:
    """Run the episodes; write and return the results (see the module docstring)."""
    if videos not in VIDEO_CHOICES:
        raise ValueError(f'videos {videos!r}: valid are {", ".join(VIDEO_CHOICES)}')
    output = Path(output)
    start = time.monotonic()
    finished, _ = run_episodes(
        sim_graph(args), args.episodes, videos, timeout_s,
        video_path=lambda row: output / 'videos' / f'episode_{row["episode"]:03d}.mp4')
    wins = sum(bool(e['success']) for e in finished)
    result = {'checkpoint': args.checkpoint, 'task': args.task, 'strategy': args.strategy,
              'episodes': len(finished), 'successes': wins,
              'success_rate': wins / len(finished) if finished else 0.0,
              'wall_s': round(time.monotonic() - start, 1), 'rows': finished}
    output.mkdir(parents=True, exist_ok=True)
    (output / 'results.json').write_text(json.dumps(result, indent=2))
    _plot(finished, output / 'success.png')
    return result


def run_episodes(specs, episodes: int, videos: str, timeout_s: float = 0.0, on_finished=None,
                 video_path=None) -> typing.Tuple[typing.List[dict], bool]:
    """
    Run a simulation graph (``specs``, with a ``sim_bridge``) until its episodes have ended.

    Each finished episode's row goes to ``on_finished(row)`` as it ends, its film (if kept) to
    ``video_path(row)``; return (the finished rows, whether a stop signal cut the run short).
    """
    from dit4dit_common import topics
    from dit4dit_common.runner import build_node, Graph
    from dit4dit_msgs.msg import EpisodeEvent
    import rclpy
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState
    from trajectory_msgs.msg import JointTrajectory

    from dit4dit_train.lerobot_format import write_mp4

    monitor = EpisodeMonitor(episodes, videos)
    start = time.monotonic()
    factories = {s.name: (lambda s=s: build_node(s)) for s in specs}
    factories['monitor'] = lambda: rclpy.create_node('closed_loop_monitor')
    sim_done = threading.Event()
    with Graph(factories, name='evaluate_closed_loop', separate=('sim_bridge',),
               make_executor=lambda: MultiThreadedExecutor(num_threads=3)) as graph:
        sim = graph.nodes['sim_bridge']
        fps = int(round(sim.p['camera_fps']))     # videos play at the simulated camera rate
        monitor.source_counts = sim.lockstep_counts

        def finished(row):
            images = monitor.frames.pop(row['episode'], None) or []
            if images and video_path is not None:
                path = Path(video_path(row))
                path.parent.mkdir(parents=True, exist_ok=True)
                row['video'] = str(write_mp4(path, np.stack(images), fps))
            if on_finished is not None and row['outcome'] != 'abort':
                on_finished(row)
        monitor.on_finished = finished
        node = graph.nodes['monitor']
        node.create_subscription(EpisodeEvent, topics.name('episode_event'), monitor.on_event,
                                 20)
        node.create_subscription(Image, topics.name('camera'), monitor.on_image,
                                 qos_profile_sensor_data)
        node.create_subscription(JointTrajectory, topics.name('action_chunk'), monitor.on_chunk,
                                 20)
        node.create_subscription(JointState, topics.name('joint_command'), monitor.on_command,
                                 100)
        sim_executor = SingleThreadedExecutor()
        sim_executor.add_node(sim)

        def spin_sim():
            while not graph.stop and not sim_done.is_set():
                sim_executor.spin_once(timeout_sec=0.05)
        sim_thread = threading.Thread(target=spin_sim, daemon=True)
        sim_thread.start()

        def done():
            monitor.settle()
            return sim.finished or (timeout_s and time.monotonic() - start > timeout_s)
        try:
            graph.spin(until=done)
            if timeout_s and not sim.finished and not graph.stop:
                print('closed loop: timed out', flush=True)
            grace = time.monotonic() + END_GRACE_S

            def settled():
                monitor.settle()
                return time.monotonic() > grace or all(
                    'outcome' in r and '_ended' not in r for r in monitor.rows)
            graph.spin(until=settled)
            monitor.settle(force=True)
        finally:
            interrupted = bool(graph.stop)
            sim_done.set()
            sim_thread.join(timeout=10)
            sim_executor.shutdown()
    return monitor.finished(), interrupted


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
