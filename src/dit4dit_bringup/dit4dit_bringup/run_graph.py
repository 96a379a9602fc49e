"""
Run the robot graph without ``ros2 launch``: ``python -m dit4dit_bringup.run_graph``.

    python -m dit4dit_bringup.run_graph checkpoint:=runs/g1/checkpoint control_mode:=arm_sdk
    python -m dit4dit_bringup.run_graph checkpoint:=... --processes   # one process per node
    python -m dit4dit_bringup.run_graph checkpoint:=... --print       # show the graph

Arguments are those of ``g1.launch.py`` (``name:=value``) and the graph is the same description
(``dit4dit_bringup.graph``), checked before anything starts: a checkpoint that does not fit the
robot exits 2 with the joints named. By default every node runs in this process; ``--processes``
starts one process per node. Either way a signal (one SIGINT, two, SIGTERM) stops every node
gracefully (the bridge ramps down first), a process that dies ends the graph with its exit code,
and nothing is left running.
"""

import argparse
import dataclasses
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from dit4dit_common.node_spec import parse_name_value, ros_arguments
import yaml

from .graph import g1_graph, G1Arguments

EXIT_POLL_S = 0.2


def run_in_process(specs) -> int:
    """Build every Python node in this process and spin them together until stopped."""
    from dit4dit_common.runner import build_node, Graph, StartError
    from rclpy.executors import MultiThreadedExecutor

    external = [s for s in specs if not s.node_class]
    for spec in external:
        print(f'run_graph: {spec.package}/{spec.executable} ({spec.name}) is not a Python node: '
              'use --processes with a ROS 2 install (ros2 run), or ros2 launch', file=sys.stderr)
    if external:
        return 2
    factories = {s.name: (lambda s=s: build_node(s)) for s in specs}
    try:
        with Graph(factories, name='run_graph', make_executor=MultiThreadedExecutor) as graph:
            graph.spin()
    except StartError as exc:
        print(f'run_graph: cannot start {exc}', file=sys.stderr, flush=True)
        return 2
    return graph.exit_code


def process_command(spec, params_file):
    """Return the command line that runs ``spec`` as its own process, or None if impossible."""
    if spec.module:
        command = [sys.executable, '-m', spec.module]
    elif shutil.which('ros2'):
        command = ['ros2', 'run', spec.package, spec.executable]
    else:
        return None
    return [*spec.prefix, *command, *ros_arguments(spec, params_file)]


class ProcessGraph:
    """
    Every node of ``specs`` as its own process, stopped together (a context manager).

    Entering writes each node's parameters to a file and starts the processes (output to
    ``log_dir/<node>.log`` when given, else inherited); nothing starts if a node cannot be run
    here. ``exited()`` names the processes that have ended. Leaving stops the running ones with
    one SIGINT each and their own stop budget (the bridge's ramp down), SIGKILL only after it.
    """

    def __init__(self, specs, log_dir=None):
        """Remember what to start."""
        self.specs, self.log_dir = list(specs), log_dir
        self.procs = []
        self._tmp = None

    def __enter__(self):
        """Start the processes (RuntimeError, nothing started, if one cannot be run here)."""
        self._tmp = tempfile.TemporaryDirectory(prefix='dit4dit_graph_')
        commands = []
        for spec in self.specs:
            params = f'{self._tmp.name}/{spec.name}.yaml'
            with open(params, 'w') as f:
                # one file per process: '/**' matches the node whatever its namespace
                yaml.safe_dump({'/**': {'ros__parameters': spec.parameters}}, f)
            command = process_command(spec, params)
            if command is None:
                self._tmp.cleanup()
                raise RuntimeError(f'cannot start {spec.name}: {spec.package} is not a Python '
                                   'node and ros2 is not installed')
            commands.append((spec, command))
        for spec, command in commands:
            out = None
            if self.log_dir is not None:
                out = open(Path(self.log_dir) / f'{spec.name}.log', 'w')
            self.procs.append((spec, subprocess.Popen(command, stdout=out,
                                                      stderr=subprocess.STDOUT if out else None)))
            if out is not None:
                out.close()
        return self

    def exited(self):
        """Return [(spec, return code)] of the processes that have ended."""
        return [(spec, p.returncode) for spec, p in self.procs if p.poll() is not None]

    def __exit__(self, *exc):
        """Stop every process (see the class docstring)."""
        stop_processes(self.procs)
        self._tmp.cleanup()
        return False


def run_processes(specs) -> int:
    """
    Start one process per node; stop all when one exits or on a signal; return the exit code.

    A node process that exits ends the run with its code (a required process that stops with
    0 still ends it: the graph is not whole any more). On SIGINT/SIGTERM every process gets one
    SIGINT and its own stop budget; SIGKILL only after that.
    """
    from dit4dit_common.runner import StopRequest

    with StopRequest('run_graph') as stop:
        try:
            with ProcessGraph(specs) as graph:
                return _watch(graph, stop)
        except RuntimeError as exc:          # a node that cannot run here: nothing started
            print(f'run_graph: {exc}', file=sys.stderr)
            return 2


def _watch(graph, stop) -> int:
    """Wait for a stop request or a process that exits; return the graph's exit code."""
    while not stop:
        done = graph.exited()
        if done:
            spec, returncode = done[0]
            print(f'run_graph: {spec.name} exited with {returncode}: stopping the graph',
                  file=sys.stderr, flush=True)
            return returncode or 1
        time.sleep(EXIT_POLL_S)
    return 0


def stop_processes(procs):
    """SIGINT every running process, wait for each within its stop budget, then SIGKILL."""
    for _, p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for spec, p in procs:
        try:
            p.wait(timeout=spec.stop_budget_s + 2.0)
        except subprocess.TimeoutExpired:
            print(f'run_graph: {spec.name} did not stop within {spec.stop_budget_s:g} s: killed',
                  file=sys.stderr, flush=True)
            p.kill()
            p.wait()


def main(argv=None):
    """Command-line entry point (also ``ros2 run dit4dit_bringup run_graph``)."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('arguments', nargs='*', help='name:=value (see g1.launch.py)')
    parser.add_argument('--processes', action='store_true', help='one process per node')
    parser.add_argument('--print', action='store_true', help='print the graph and exit')
    args = parser.parse_args(argv)
    try:
        specs = g1_graph(parse_name_value(args.arguments, G1Arguments))
    except ValueError as exc:
        print(f'run_graph: {exc}', file=sys.stderr, flush=True)
        return 2
    if args.print:
        print(yaml.safe_dump([dataclasses.asdict(s) for s in specs], sort_keys=False))
        return 0
    return run_processes(specs) if args.processes else run_in_process(specs)


if __name__ == '__main__':
    sys.exit(main())
