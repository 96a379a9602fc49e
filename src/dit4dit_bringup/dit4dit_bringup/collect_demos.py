"""
Collect scripted demonstrations in the tabletop simulation as a rosbag, in one process.

    python -m dit4dit_bringup.collect_demos output:=bags/reach_000 task:=reach episodes:=50
    ros2 launch launch/collect_demos.launch.py output:=bags/reach_000 ...   # full ROS 2 install

Runs the graph of ``dit4dit_bringup.graph.collect_graph`` (sim_bridge on training initial states,
scripted_expert, bag_recorder with the ``sim`` preset) until ``episodes`` have ended, closes the
bag and prints one line per episode and a summary. The recorder is required: if it cannot start
(an existing output, a missing parent directory) nothing is simulated, and if writing fails the
collection stops at once; either way the exit code is non-zero. SIGINT/SIGTERM stop the
collection and still close the bag. The bag converts with ``python -m dit4dit_train.convert BAG
--map g1_tabletop --output DATASET``.
"""

import sys
import time

from dit4dit_common.node_spec import parse_name_value

from .graph import collect_graph, CollectArguments

SETTLE_S = 0.5              # let the last messages of the last episode reach the recorder


def collect(args: CollectArguments, timeout_s: float = 0.0) -> dict:
    """Run the collection; return {'episodes', 'successes', 'bag', 'summary', 'wall_s', ...}."""
    from dit4dit_common.runner import build_node, Graph

    start = time.monotonic()
    # One thread: MuJoCo's EGL context belongs to the thread that rendered first.
    factories = {s.name: (lambda s=s: build_node(s)) for s in collect_graph(args)}
    reported = 0
    with Graph(factories, name='collect_demos') as graph:
        sim, recorder = graph.nodes['sim_bridge'], graph.nodes['bag_recorder']

        def report():
            nonlocal reported
            for index, success in sim.results[reported:]:
                reported += 1
                print(f'[{reported}/{args.episodes}] initial state {index}: '
                      f'{"success" if success else "failure"}', flush=True)
            return False

        graph.spin(until=lambda: report() or sim.finished or recorder.failed or (
            timeout_s and time.monotonic() - start > timeout_s))
        if recorder.failed:
            print(f'collect_demos: the recorder failed ({recorder.error}): stopping',
                  file=sys.stderr, flush=True)
        elif not graph.stop:
            end = time.monotonic() + SETTLE_S
            graph.spin(until=lambda: time.monotonic() > end)
        results = list(sim.results)
    stats = recorder.stats
    wins = sum(s for _, s in results)
    return {'episodes': len(results), 'successes': wins, 'bag': args.output,
            'summary': recorder.summary, 'wall_s': time.monotonic() - start,
            'error': stats.error if stats is not None else 'the bag was not closed',
            'interrupted': bool(graph.stop)}


def main(argv=None):
    """Command-line entry point (``ros2 run dit4dit_bringup collect_demos``)."""
    from dit4dit_common.runner import StartError

    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_name_value(argv, CollectArguments)
    except ValueError as exc:
        print(f'collect_demos: {exc}', file=sys.stderr)
        return 2
    try:
        result = collect(args)
    except StartError as exc:
        print(f'collect_demos: cannot start {exc}', file=sys.stderr, flush=True)
        return 2
    print(result['summary'])
    print(f'collect_demos: {result["successes"]}/{result["episodes"]} episodes succeeded in '
          f'{result["wall_s"]:.0f} s; bag {result["bag"]}', flush=True)
    return 1 if result['error'] or result['episodes'] < args.episodes else 0


if __name__ == '__main__':
    sys.exit(main())
