"""
Evaluate a checkpoint closed loop in simulation, through the ROS graph, on held-out episodes.

G1 tabletop (the default):

    python -m dit4dit_bringup.evaluate_closed_loop --checkpoint DIR --output runs/eval \
        [--episodes 20] [--task reach] [--strategy crossfade] [--videos all|first|none]

The camera renders at the size and rate of the checkpoint's contract (what it was trained on).
Writes ``results.json`` (per-episode outcome and the success rate), ``success.png`` and one mp4
per episode; prints a line per episode and a summary (``dit4dit_bringup.closed_loop``). A
checkpoint that does not fit the simulated G1 exits 2 with the joints named.

LIBERO, the benchmark's protocol (``dit4dit_bringup.libero_benchmark``):

    python -m dit4dit_bringup.evaluate_closed_loop --env libero --checkpoint DIR \
        --output runs/libero --suite libero_spatial [--tasks 0 1 2] [--trials-per-task 50] \
        [--device cuda]

Each task's official initial states, the suite's step limits, lockstep (the simulation waits
for the policy), a chunk of ``--actions-per-query`` actions per query; resumable (the same
``--output`` continues); ``results.json``, ``table.md``, ``success.png``, sample videos.
"""

import argparse
import sys

ENVIRONMENTS = ('g1_tabletop', 'libero')


def main(argv=None):
    """Command-line entry point (also ``ros2 run dit4dit_bringup evaluate_closed_loop``)."""
    from .closed_loop import add_episode_arguments

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--env', default='g1_tabletop', choices=ENVIRONMENTS,
                        help='simulation: the G1 tabletop or the LIBERO benchmark')
    add_episode_arguments(parser)
    parser.set_defaults(videos=None)      # all G1 episodes; the first trial of each LIBERO task
    parser.add_argument('--real-time-factor', type=float, default=1.0,
                        help='simulated seconds per wall second')
    parser.add_argument('--lockstep', action='store_true',
                        help='step the simulation only when a command answers the observation')
    parser.add_argument('--timeout-s', type=float, default=0.0,
                        help='give up after (0: never; LIBERO: per task)')
    parser.add_argument('--device', default='cpu', help='torch device for inference (cuda:0)')
    libero = parser.add_argument_group('LIBERO (--env libero)')
    libero.add_argument('--suite', default='libero_spatial',
                        help='libero_spatial, libero_object, libero_goal or libero_10')
    libero.add_argument('--tasks', type=int, nargs='+', help='task indices (default: all 10)')
    libero.add_argument('--trials-per-task', type=int, default=50,
                        help='official initial states 0..N-1 of each task (the benchmark: 50)')
    libero.add_argument('--actions-per-query', type=int, default=0,
                        help='actions run open loop per query (0: the official 8)')
    libero.add_argument('--time-limit-s', type=float, default=0.0,
                        help="simulated seconds per trial (0: the suite's published limit)")
    args = parser.parse_args(argv)
    args.videos = args.videos or ('first' if args.env == 'libero' else 'all')
    from dit4dit_common.runner import StartError

    try:
        if args.env == 'libero':
            return _libero(args)
        from .closed_loop import evaluate
        from .graph import SimArguments
        sim = SimArguments(checkpoint=args.checkpoint, task=args.task, episodes=args.episodes,
                           first_index=args.first_index, strategy=args.strategy,
                           real_time_factor=args.real_time_factor, lockstep=args.lockstep,
                           device=args.device)
        result = evaluate(sim, args.output, videos=args.videos, timeout_s=args.timeout_s)
    except (ValueError, StartError) as exc:
        print(f'evaluate_closed_loop: {exc}', file=sys.stderr, flush=True)
        return 2
    print(f'closed loop: {result["successes"]}/{result["episodes"]} succeeded '
          f'({100 * result["success_rate"]:.0f} %) in {result["wall_s"]:.0f} s; results '
          f'{args.output}/results.json, videos {args.output}/videos', flush=True)
    return 0 if result['episodes'] == args.episodes else 1


def _libero(args) -> int:
    from .libero_benchmark import run_benchmark

    result = run_benchmark(args.checkpoint, args.suite, args.output, tasks=args.tasks,
                           trials_per_task=args.trials_per_task, device=args.device,
                           videos=args.videos, actions_per_query=args.actions_per_query or None,
                           time_limit_s=args.time_limit_s, timeout_s=args.timeout_s)
    summary = result['summary']
    rate = summary['suites'].get(args.suite, {}).get('success_rate', 0.0)
    print(f'libero: {args.suite} {result["successes"]}/{result["trials"]} trials succeeded '
          f'({100 * rate:.1f} %) of {result["planned_trials"]} planned; table '
          f'{args.output}/table.md, results {args.output}/results.json', flush=True)
    return 0 if result['trials'] == result['planned_trials'] else 1


if __name__ == '__main__':
    sys.exit(main())
