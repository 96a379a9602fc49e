"""
Evaluate a checkpoint closed loop in simulation, through the ROS graph, on held-out episodes.

    python -m dit4dit_bringup.evaluate_closed_loop --checkpoint DIR --output runs/eval \
        [--episodes 20] [--task reach] [--strategy crossfade] [--videos all|first|none]

The camera renders at the size and rate of the checkpoint's contract (what it was trained on).
Writes ``results.json`` (per-episode outcome and the success rate), ``success.png`` and one mp4
per episode; prints a line per episode and a summary (``dit4dit_bringup.closed_loop``). A
checkpoint that does not fit the simulated G1 exits 2 with the joints named.
"""

import argparse
import sys


def main(argv=None):
    """Command-line entry point (also ``ros2 run dit4dit_bringup evaluate_closed_loop``)."""
    from .closed_loop import add_episode_arguments

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    add_episode_arguments(parser)
    parser.add_argument('--real-time-factor', type=float, default=1.0,
                        help='simulated seconds per wall second')
    parser.add_argument('--lockstep', action='store_true',
                        help='step the simulation only when a command answers the observation')
    parser.add_argument('--timeout-s', type=float, default=0.0, help='give up after (0: never)')
    args = parser.parse_args(argv)
    from dit4dit_common.runner import StartError

    from .closed_loop import evaluate
    from .graph import SimArguments
    try:
        sim = SimArguments(checkpoint=args.checkpoint, task=args.task, episodes=args.episodes,
                           first_index=args.first_index, strategy=args.strategy,
                           real_time_factor=args.real_time_factor, lockstep=args.lockstep)
        result = evaluate(sim, args.output, videos=args.videos, timeout_s=args.timeout_s)
    except (ValueError, StartError) as exc:
        print(f'evaluate_closed_loop: {exc}', file=sys.stderr, flush=True)
        return 2
    print(f'closed loop: {result["successes"]}/{result["episodes"]} succeeded '
          f'({100 * result["success_rate"]:.0f} %) in {result["wall_s"]:.0f} s; results '
          f'{args.output}/results.json, videos {args.output}/videos', flush=True)
    return 0 if result['episodes'] == args.episodes else 1


if __name__ == '__main__':
    sys.exit(main())
