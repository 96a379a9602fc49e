"""
Collect scripted demonstrations in the tabletop simulation as a rosbag, in one process.

    python -m dit4dit_train.collect_demos output:=bags/reach_000 task:=reach episodes:=50
    ros2 launch launch/collect_demos.launch.py output:=bags/reach_000 ...   # full ROS 2 install

Runs the graph of ``dit4dit_bringup.graph.collect_graph`` (sim_bridge on training initial states,
scripted_expert, bag_recorder with the ``sim`` preset) until ``episodes`` have ended, closes the
bag and prints one line per episode and a summary. The bag converts with ``python -m
dit4dit_train.convert BAG --map g1_tabletop --output DATASET``.
"""

import signal
import sys
import time

from dit4dit_bringup.graph import collect_graph, CollectArguments
from dit4dit_bringup.run_graph import build_node, parse_name_value


def collect(args: CollectArguments, timeout_s: float = 0.0) -> dict:
    """Run the collection; return {'episodes', 'successes', 'bag', 'summary', 'wall_s'}."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    stop = []
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda *_: stop.append(1)) for s in signals}
    nodes, start = {}, time.monotonic()
    try:
        for spec in collect_graph(args):
            nodes[spec.name] = build_node(spec)
        # One thread: MuJoCo's EGL context belongs to the thread that rendered first.
        executor = SingleThreadedExecutor()
        for node in nodes.values():
            executor.add_node(node)
        sim, recorder = nodes['sim_bridge'], nodes['bag_recorder']
        reported = 0
        while not stop and not sim.finished and not recorder.finished():
            executor.spin_once(timeout_sec=0.05)
            for index, success in sim.results[reported:]:
                reported += 1
                print(f'[{reported}/{args.episodes}] initial state {index}: '
                      f'{"success" if success else "failure"}', flush=True)
            if timeout_s and time.monotonic() - start > timeout_s:
                print('collect_demos: timed out', flush=True)
                break
        end = time.monotonic() + 0.5            # let the last messages reach the recorder
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        stats, summary = recorder.stop()
        results = list(sim.results)
        executor.shutdown()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for node in nodes.values():
            node.destroy_node()
        rclpy.try_shutdown()
    wins = sum(s for _, s in results)
    return {'episodes': len(results), 'successes': wins, 'bag': args.output,
            'summary': summary, 'wall_s': time.monotonic() - start, 'error': stats.error}


def main(argv=None):
    """Command-line entry point (``ros2 run dit4dit_train collect_demos``)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_name_value(argv, CollectArguments)
    except ValueError as exc:
        print(f'collect_demos: {exc}', file=sys.stderr)
        return 2
    result = collect(args)
    print(result['summary'])
    print(f'collect_demos: {result["successes"]}/{result["episodes"]} episodes succeeded in '
          f'{result["wall_s"]:.0f} s; bag {result["bag"]}', flush=True)
    return 1 if result['error'] or result['episodes'] < args.episodes else 0


if __name__ == '__main__':
    sys.exit(main())
