"""
Does the ROS bridge cost the LIBERO scripted expert anything? Run it both ways and compare.

    python -m dit4dit_sim.expert_parity --tasks libero_spatial/0,libero_spatial/1 \
        --episodes 2 --output parity.json

For every task, the oracle first steps the environment directly (``libero_expert.run_direct``),
then the same oracle runs as the ``libero_expert`` node against ``sim_bridge`` (in lockstep,
both cameras published) on the same held-out initial states, all in this process over rclpy.
Prints one line per episode and a summary, writes the table as JSON, and exits 1 when the success
rate through ROS is below the direct one.
"""

import argparse
from dataclasses import dataclass
import json
from pathlib import Path
import sys
import time
import typing

from dit4dit_common.node_spec import NodeSpec


@dataclass
class ExpertArguments:
    """A LIBERO scripted expert through ROS, validated."""

    task: str = 'libero_spatial/0'
    episodes: int = 2
    first_index: int = 0
    render_size: int = 128
    camera_fps: float = 10.0
    lockstep: bool = True

    def __post_init__(self):
        """Validate."""
        if self.episodes < 1 or self.first_index < 0:
            raise ValueError('episodes must be >= 1 and first_index >= 0')
        if not 16 <= self.render_size <= 1024 or not self.camera_fps > 0:
            raise ValueError('render_size must be in [16, 1024] and camera_fps > 0')


def expert_graph(args: ExpertArguments) -> typing.List[NodeSpec]:
    """Return sim_bridge (LIBERO, held-out initial states) + the libero_expert node."""
    return [
        NodeSpec('dit4dit_sim', 'sim_bridge', 'sim_bridge',
                 'dit4dit_sim.nodes.sim_bridge:SimBridgeNode',
                 {'environment': 'libero', 'task': args.task, 'split': 'held_out',
                  'render_height': args.render_size, 'render_width': args.render_size,
                  'camera_fps': args.camera_fps, 'auto_reset': True,
                  'first_index': args.first_index, 'max_episodes': args.episodes,
                  # The direct loop's success test: the first step at which the goal holds.
                  'success_hold_s': 0.0, 'lockstep': args.lockstep, 'start_delay_s': 1.0}),
        NodeSpec('dit4dit_sim', 'libero_expert', 'libero_expert',
                 'dit4dit_sim.nodes.libero_expert:LiberoExpertNode', {'use_sim_time': True}),
    ]


def run_ros(args: ExpertArguments, timeout_s: float = 0.0) -> dict:
    """Run ``expert_graph(args)`` until its episodes end; return results and counters."""
    from dit4dit_common.runner import build_node, Graph

    start = time.monotonic()
    # One thread: the simulator's EGL context belongs to the thread that rendered first.
    specs = {spec.name: (lambda spec=spec: build_node(spec)) for spec in expert_graph(args)}
    with Graph(specs, name='expert_parity') as graph:
        sim = graph.nodes['sim_bridge']
        graph.spin(until=lambda: sim.finished or (
            timeout_s and time.monotonic() - start > timeout_s))
        return {'results': list(sim.results), 'commands': graph.nodes['libero_expert'].commands,
                'lockstep_timeouts': sim.lockstep_timeouts, 'wall_s': time.monotonic() - start}


def compare(tasks, episodes: int, first_index: int = 0, lockstep: bool = True,
            render_size: int = 128, log=print) -> dict:
    """Run every task both ways; return the table (see the module docstring)."""
    from .experts.libero_expert import run_direct

    rows = []
    indices = list(range(first_index, first_index + episodes))
    for task in tasks:
        t0 = time.monotonic()
        direct = run_direct(task, indices)
        t1 = time.monotonic()
        ros = run_ros(ExpertArguments(task=task, episodes=episodes, first_index=first_index,
                                      render_size=render_size, lockstep=lockstep))
        by_index = dict(ros['results'])
        for index, ok in zip(indices, direct):
            row = {'task': task, 'initial_state': index, 'direct': bool(ok),
                   'ros': bool(by_index.get(index, False))}
            rows.append(row)
            log(f'{task} initial state {index}: direct {"success" if ok else "failure"}, '
                f'ROS {"success" if row["ros"] else "failure"}')
        log(f'{task}: direct {sum(direct)}/{len(direct)} in {t1 - t0:.0f} s, ROS '
            f'{sum(by_index.values())}/{len(indices)} in {ros["wall_s"]:.0f} s '
            f'({ros["commands"]} commands, {ros["lockstep_timeouts"]} lockstep timeouts)')
    n = len(rows)
    summary = {'episodes': n, 'direct_successes': sum(r['direct'] for r in rows),
               'ros_successes': sum(r['ros'] for r in rows),
               'agreeing_episodes': sum(r['direct'] == r['ros'] for r in rows)}
    summary['direct_rate'] = summary['direct_successes'] / max(n, 1)
    summary['ros_rate'] = summary['ros_successes'] / max(n, 1)
    return {'lockstep': lockstep, 'render_size': render_size, 'rows': rows, **summary}


def main(argv=None):
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--tasks', default='libero_spatial/0',
                        help='comma-separated LIBERO task ids (suite/index)')
    parser.add_argument('--episodes', type=int, default=2, help='held-out initial states per task')
    parser.add_argument('--first-index', type=int, default=0)
    parser.add_argument('--render-size', type=int, default=128)
    parser.add_argument('--no-lockstep', action='store_true',
                        help='run the bridge on its real-time-factor clock instead')
    parser.add_argument('--output', default='', help='JSON file for the table')
    args = parser.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(',') if t.strip()]
    table = compare(tasks, args.episodes, args.first_index, not args.no_lockstep,
                    args.render_size)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(table, indent=2) + '\n')
    print(f'expert_parity: direct {table["direct_successes"]}/{table["episodes"]}, through ROS '
          f'{table["ros_successes"]}/{table["episodes"]}; {table["agreeing_episodes"]} episodes '
          'agree', flush=True)
    return 1 if table['ros_successes'] < table['direct_successes'] else 0


if __name__ == '__main__':
    sys.exit(main())
